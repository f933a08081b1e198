"""A local stand-in for Agora (ConvoAI v2 REST + NCS webhooks) for tests and development.

``sandbox.app.create_sandbox_app()`` builds the Flask app; ``python -m sandbox`` serves it.
Nothing is imported here, so ``sandbox.defaults`` stays cheap for the service to import.
"""
