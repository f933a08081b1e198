"""The composition root: builds the service from its parts (factory.app.create_app) and hands
gunicorn's arbiter its log formatter (factory.gunicorn). Nothing imports it but the entry points
(app.py, gunicorn.conf.py) and the tests. Its modules are imported by name: the arbiter loads
factory.gunicorn without the app."""
