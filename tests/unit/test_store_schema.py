"""The tables the code declares are the tables the migrations build."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from calls import migrate
from calls.store import metadata


def test_migrations_build_exactly_the_declared_schema(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()


def test_every_migration_can_be_undone(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    migrate.upgrade(engine)
    migrate.upgrade(engine, "head")
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
        conn.commit()
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_a_new_sqlite_file_gets_small_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    import sqlite3

    from calls.store import SQLITE_PAGE_SIZE, make_engine

    def created(path: Path) -> tuple[int, str]:
        engine = make_engine(f"sqlite:///{path}")
        migrate.upgrade(engine)
        engine.dispose()
        con = sqlite3.connect(path)
        try:
            return (con.execute("PRAGMA page_size").fetchone()[0],
                    con.execute("PRAGMA journal_mode").fetchone()[0])
        finally:
            con.close()

    assert created(tmp_path / "new.db") == (SQLITE_PAGE_SIZE, "wal")
    old = tmp_path / "old.db"
    con = sqlite3.connect(old)
    con.execute("PRAGMA page_size=4096")
    con.execute("CREATE TABLE kept (x)")
    con.close()
    assert created(old) == (4096, "wal")


def test_the_agent_and_gateway_id_indexes_skip_nulls_and_serve_lookups(
        database_url: str) -> None:
    # The indexes skip the NULLs every new call has (0005); equality lookups must still use them
    # (checked on SQLite's planner; PostgreSQL's prefers a scan on a table this small).
    engine = sa.create_engine(database_url)
    migrate.upgrade(engine)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        for column in ("agent_id", "gateway_callid"):
            if sqlite:
                plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN SELECT id FROM calls WHERE {column} = ?", ("x",)))
                assert f"USING INDEX ix_calls_{column}" in plan, plan
            definition = conn.execute(sa.text(
                "SELECT sql FROM sqlite_master WHERE name = :name" if sqlite else
                "SELECT indexdef FROM pg_indexes WHERE indexname = :name"),
                {"name": f"ix_calls_{column}"}).scalar_one()
            assert f"{column} IS NOT NULL" in definition, definition
    engine.dispose()
