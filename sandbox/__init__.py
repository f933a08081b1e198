"""A local stand-in for Agora (ConvoAI v2 REST + NCS webhooks) for tests and development.

``sandbox.app.create_sandbox_app()`` builds the Flask app; ``python -m sandbox`` serves it.
The service never imports this package: it reads its sandbox-mode placeholders from config.py.
"""
