"""The tables the code declares are the tables the migrations build."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from calls import migrate
from calls.store import metadata


def test_migrations_build_exactly_the_declared_schema(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'schema.db'}")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_every_migration_can_be_undone(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'schema.db'}")
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


def test_lookups_by_agent_or_gateway_id_use_the_partial_indexes(tmp_path: Path) -> None:
    # The indexes skip the NULLs every new call has (0005); equality lookups must still use them.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'schema.db'}")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        for column in ("agent_id", "gateway_callid"):
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN SELECT id FROM calls WHERE {column} = ?", ("x",)))
            assert f"USING INDEX ix_calls_{column}" in plan, plan
        sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = "
                                   "'ix_calls_agent_id'").scalar_one()
    assert "WHERE agent_id IS NOT NULL" in sql
