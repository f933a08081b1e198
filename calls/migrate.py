"""Schema migrations (Alembic), run under a lock so instances starting together do not race.

Every worker and every command starts by asking whether the schema is current, and almost always
it is: that question is a look at ``alembic_version``, compared with :data:`HEAD_REVISION`.
Alembic itself is imported only when a migration runs (importing it costs about 100 ms of CPU,
paid by each of a deployment's workers and commands, and by the ~200 processes of the test
suite).
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click
import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
#: An arbitrary constant naming this service's migration lock in pg_advisory_lock.
_PG_LOCK_KEY = 0x70686F6E65  # "phone"
#: The newest revision in migrations/versions, read from the files' names: each migration's
#: revision id is its file's four-digit prefix (0013_bookings_updated_at.py is "0013"), so a new
#: one moves it. test_the_head_revision_is_alembics compares it with what Alembic reads from the
#: files themselves (a migration named otherwise fails that test).
HEAD_REVISION = max(path.name[:4]
                    for path in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to call from several processes at once."""
    if revision == "head" and _at_head(engine):
        # Every worker of every instance asks at start-up; once the schema is there, one
        # query answers instead of Alembic loading its environment and every revision file.
        logger.info("db.migrated", extra={"revision": revision, "dialect": engine.dialect.name})
        return
    # Imported here, not at the top: see the module's docstring.
    from alembic import command

    with engine.connect() as conn, _migration_lock(engine, conn):
        command.upgrade(alembic_config(conn), revision)
        conn.commit()
    logger.info("db.migrated", extra={"revision": revision, "dialect": engine.dialect.name})


def alembic_config(conn: Connection | None = None) -> Config:
    """Alembic's configuration for migrations/, running on ``conn`` when given (see env.py)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if conn is not None:
        config.attributes["connection"] = conn
    return config


def current_revision(conn: Connection) -> str | None:
    """The revision the database records (None before the first migration). Read as Alembic
    reads it: its one-row table, absent until it first migrates."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return versions[0] if len(versions) == 1 else None


def _at_head(engine: Engine) -> bool:
    """Whether the database records the latest revision. A schema part-way there (another
    instance migrating now) records an earlier one, so the caller takes the lock and waits."""
    with engine.connect() as conn:
        current = current_revision(conn)
        conn.rollback()
    return current == HEAD_REVISION


@contextmanager
def _migration_lock(engine: Engine, conn: Connection) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        # The connection's STORE_TIMEOUT_S limits are for webhooks: a migration may wait for
        # another instance's migration, and a schema change may take longer than a webhook.
        conn.execute(text("SET lock_timeout = 0"))
        conn.execute(text("SET statement_timeout = 0"))
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
            # Back to the connection's own limits before it returns to the pool.
            conn.execute(text("RESET lock_timeout"))
            conn.execute(text("RESET statement_timeout"))
            conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        lock_path = Path(database).with_suffix(".migrate.lock")
        with open(lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
        return
    yield


def init_app(app: Flask) -> None:
    @app.cli.group("db")
    def db_group() -> None:
        """Database schema commands."""

    @db_group.command("upgrade")
    @click.argument("revision", default="head")
    def upgrade_command(revision: str) -> None:
        """Apply schema migrations up to REVISION (default: the latest)."""
        upgrade(current_app.extensions["store"].engine, revision)
        click.echo(f"database is at {revision}")
