"""Alembic environment: runs on the connection that calls.migrate hands over.

Run migrations with ``flask db upgrade`` (or let the service do it at start-up); both go through
calls.migrate, which holds a lock so instances starting together do not race.
"""

from alembic import context

from store import metadata
from store.schema import declared

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through 'flask db upgrade', not the alembic command")

context.configure(connection=connection, target_metadata=metadata, include_object=declared,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
