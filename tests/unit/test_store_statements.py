"""The call path's statements (store/statements.py): compiled once per dialect with their
constants bound in, and run on the driver connection with SQLAlchemy's errors (store.base.run)."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from calls import lifecycle
from calls.plan import NewCall
from store import Store
from store.base import run
from store.engine import make_engine
from store.statements import Prepared, statements


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_every_statement_is_compiled_with_its_in_lists_expanded(dialect: str) -> None:
    built = statements(dialect)
    prepared = vars(built)
    assert prepared and all(isinstance(p, Prepared) for p in prepared.values())
    for name, statement in prepared.items():
        assert "POSTCOMPILE" not in statement.sql, name
    # The live states are values of the statement, not something each execution must give.
    assert set(lifecycle.LIVE_STATES) <= set(built.live_call.values.values())


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_inserts_name_only_the_columns_they_write(dialect: str) -> None:
    """A column an INSERT does not name keeps its default instead of getting NULL."""
    built = statements(dialect)
    assert set(built.insert_call.values) == {f.name for f in dataclasses.fields(NewCall)}
    assert "variables" not in built.insert_call.sql
    assert set(built.insert_event.values) == {"call_id", "at", "source", "kind", "detail"}


def _new_call(call_id: str, at: float) -> dict[str, object]:
    return {"id": call_id, "channel": "ch-1", "caller_uid": 111, "state": lifecycle.STARTING,
            "agent_name": "agent-x", "persona": None, "join_seq": 1, "created_at": at,
            "retry_at": None, "updated_at": at, "caller_joined_at": at, "ended_at": None,
            "end_reason": None, "join_notice_id": "notice-+15550100"}


def test_a_live_call_is_found_only_in_a_live_state(store: Store) -> None:
    sql = store._sql
    with store._write() as conn:
        run(conn, sql.insert_call, _new_call("call-1", store.clock()))
        assert run(conn, sql.live_call, {"channel": "ch-1"}).fetchone()[0] == "call-1"
        run(conn, sql.update_state, {"call_id": "call-1", "state": lifecycle.ENDED,
                                     "grace_until": None, "now": store.clock()})
        assert run(conn, sql.live_call, {"channel": "ch-1"}).fetchone() is None


def test_driver_errors_are_sqlalchemy_errors_without_the_values(store: Store) -> None:
    """The store turns SQLAlchemy's errors into StoreUnavailable (or lets a bug be one): a raw
    driver error would escape both, and its message would carry the caller's data."""
    with pytest.raises(sa.exc.IntegrityError) as raised, store._write() as conn:
        run(conn, store._sql.insert_call, _new_call("call-1", store.clock()))
        run(conn, store._sql.insert_call, _new_call("call-1", store.clock()))
    assert "+15550100" not in str(raised.value)
    assert store.get_call("call-1") is None  # the transaction was rolled back


def test_a_forgotten_value_is_an_error_not_a_null(store: Store) -> None:
    with pytest.raises(sa.exc.ArgumentError, match="grace_until"), store._write() as conn:
        run(conn, store._sql.insert_call, _new_call("call-1", store.clock()))
        run(conn, store._sql.update_state, {"call_id": "call-1", "state": lifecycle.ENDED,
                                            "now": store.clock()})
    assert store.get_call("call-1") is None


def test_a_postgresql_url_is_driven_by_psycopg_3() -> None:
    """Whatever SQLAlchemy's default driver for postgresql:// (psycopg2 before 2.1)."""
    engine = make_engine("postgresql://user@127.0.0.1:1/db")
    assert (engine.url.drivername, engine.dialect.driver) == ("postgresql+psycopg", "psycopg")
