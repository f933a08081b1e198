"""The tables the code declares are the tables the migrations build."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from calls import migrate
from store import metadata
from store.schema import declared
from tests.conftest import REAL_UPGRADE, fresh_database


@pytest.fixture
def database_url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty database, brought up by the migrations themselves: not the suite's shortcuts
    (a PostgreSQL database whose rows are cleared, a SQLite file copied from a migrated one)."""
    monkeypatch.setattr(migrate, "upgrade", REAL_UPGRADE)
    if database_url.startswith("postgresql"):
        return fresh_database(database_url, empty=True)
    return database_url


def test_migrations_build_exactly_the_declared_schema(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        # Less the full-text objects only a migration can make (store.schema.declared).
        context = MigrationContext.configure(conn, opts={"include_object": declared})
        assert compare_metadata(context, metadata) == []
    engine.dispose()


def test_the_head_revision_is_alembics() -> None:
    """Start-up trusts HEAD_REVISION to say whether a database needs migrating; a migration
    added without moving it would leave every existing database behind, unmigrated."""
    assert migrate.HEAD_REVISION == ScriptDirectory.from_config(
        migrate.alembic_config()).get_current_head()


def test_the_recorded_revision_is_read_as_alembic_reads_it(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        assert migrate.current_revision(conn) is None
    migrate.upgrade(engine, "0005")
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == "0005" == \
            MigrationContext.configure(conn).get_current_revision()
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.HEAD_REVISION
        # A table with no row, or with several (branches), is not "at head": start-up migrates.
        conn.execute(sa.text("DELETE FROM alembic_version"))
        assert migrate.current_revision(conn) is None
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('0012'), ('0013')"))
        assert migrate.current_revision(conn) is None
        conn.rollback()
    engine.dispose()


def test_every_migration_can_be_undone(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    migrate.upgrade(engine)
    migrate.upgrade(engine, "head")
    from alembic import command

    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "base")
        conn.commit()
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_a_new_sqlite_file_gets_small_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    import sqlite3

    from store import SQLITE_PAGE_SIZE, make_engine

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


def test_0006_keeps_every_row_and_the_timeline_of_older_calls(database_url: str) -> None:
    # Rows written under 0005 survive the rebuild (SQLite) or the constraint drop (PostgreSQL);
    # a call made before 0006 keeps its stored caller_joined entry, once.
    from store import Store

    engine = sa.create_engine(database_url)
    migrate.upgrade(engine, "0005")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO calls (id, channel, caller_uid, state, agent_name, created_at, "
            "updated_at, join_seq, agent_id) VALUES ('old1', 'ch', 111, 'ended', 'pa-old1', 1.0,"
            " 2.0, 5, 'agent-old')"))
        conn.execute(sa.text(
            "INSERT INTO call_events (call_id, at, source, kind, detail) VALUES "
            "('old1', 1.0, 'ncs', 'caller_joined', '{\"seq\": 5}')"))
        conn.execute(sa.text("INSERT INTO participants VALUES ('ch', 111, 6, false, 3.0)"))
        conn.execute(sa.text("INSERT INTO notices VALUES ('n-1', 1, 103, 1.0)"))
    migrate.upgrade(engine)
    store = Store(engine)
    old = store.get_call("old1")
    assert (old.agent_name, old.agent_id, old.join_notice_id) == ("pa-old1", "agent-old", None)
    assert [e["kind"] for e in store.timeline("old1")] == ["caller_joined"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT last_seq FROM participants")).scalar_one() == 6
        assert conn.execute(sa.text("SELECT notice_id FROM notices")).scalar_one() == "n-1"
        if engine.dialect.name == "sqlite":
            # The partial indexes of 0005 were rebuilt with the table, predicates and all.
            definition = conn.execute(sa.text(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_calls_agent_id'")).scalar_one()
            assert "agent_id IS NOT NULL" in definition
    engine.dispose()


def test_0007_keys_notices_by_product_and_keeps_every_row(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    migrate.upgrade(engine, "0006")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO notices VALUES ('1:2:103', 1, 103, 1.0)"))
    migrate.upgrade(engine)
    inspector = sa.inspect(engine)
    assert inspector.get_pk_constraint("notices")["constrained_columns"] == [
        "product_id", "notice_id"]
    assert [i["column_names"] for i in inspector.get_indexes("notices")] == [["received_at"]]
    with engine.begin() as conn:
        # The same id under ConvoAI's product is a row of its own now.
        conn.execute(sa.text("INSERT INTO notices VALUES ('1:2:103', 17, 101, 2.0)"))
        assert conn.execute(sa.text(
            "SELECT product_id FROM notices ORDER BY product_id")).scalars().all() == [1, 17]
        if engine.dialect.name == "sqlite":
            create = conn.execute(sa.text(
                "SELECT sql FROM sqlite_master WHERE name = 'notices'")).scalar_one()
            assert create.rstrip().endswith("WITHOUT ROWID"), create
    engine.dispose()


def test_undoing_0007_keeps_the_first_notice_of_each_id(database_url: str) -> None:
    from alembic import command

    engine = sa.create_engine(database_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO notices VALUES ('shared', 17, 101, 1.0), "
                             "('shared', 1, 103, 2.0), ('alone', 1, 104, 3.0)"))
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0006")
        conn.commit()
    assert sa.inspect(engine).get_pk_constraint("notices")["constrained_columns"] == [
        "notice_id"]
    with engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT notice_id, product_id FROM notices ORDER BY notice_id")).all() == [
            ("alone", 1), ("shared", 17)]
    engine.dispose()


def test_the_join_commit_writes_no_page_it_does_not_need(database_url: str) -> None:
    # 0006: notices and participants live in their primary key's B-tree (SQLite), and no
    # index is kept of calls.agent_name, which the call id already makes unique.
    engine = sa.create_engine(database_url)
    migrate.upgrade(engine)
    inspector = sa.inspect(engine)
    assert not [u for u in inspector.get_unique_constraints("calls")
                if u["column_names"] == ["agent_name"]]
    assert not [i for i in inspector.get_indexes("calls") if i["column_names"] == ["agent_name"]]
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            for table in ("notices", "participants"):
                create = conn.execute(sa.text(
                    "SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table}).scalar_one()
                assert create.rstrip().endswith("WITHOUT ROWID"), create
            assert conn.execute(sa.text(
                "SELECT COUNT(*) FROM sqlite_master WHERE tbl_name = 'calls' "
                "AND name LIKE 'sqlite_autoindex_%'")).scalar_one() == 1  # the primary key's
    engine.dispose()


def _open_new_files(paths: list[str], barrier: Any, errors: Any) -> None:
    from store import make_engine

    for path in paths:
        engine = make_engine(f"sqlite:///{path}")
        barrier.wait(60)  # then all open the same new file at once
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
            errors.put(f"{type(exc).__name__}: {exc}".splitlines()[0])
        finally:
            engine.dispose()


def test_workers_opening_a_new_sqlite_file_at_once_all_get_a_connection(
        tmp_path: Path) -> None:
    # Gunicorn's workers boot together and each opens the database. On a file that does not
    # exist yet, switching it to WAL can answer "database is locked" without waiting; before
    # make_engine retried, this failed in about one round in six (and a worker failed to boot).
    # Fresh interpreters ("spawn"): a fork of this multi-threaded test process could inherit a
    # lock another thread holds and hang.
    context = multiprocessing.get_context("spawn")
    errors, workers = context.Queue(), 4
    barrier = context.Barrier(workers)
    paths = [str(tmp_path / f"new-{round_}.db") for round_ in range(40)]
    processes = [context.Process(target=_open_new_files, args=(paths, barrier, errors),
                                 daemon=True) for _ in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [process.exitcode for process in processes] == [0] * workers
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == []
