"""What every part of the store shares: its records, its error, and its transactions.

Every change of a call's state is a conditional update (``... WHERE state IN (...)``) or happens
while the channel's participant row is locked, so two workers racing on one call cannot both start
an agent. SQLite takes the database write lock at the start of each write transaction (``BEGIN
IMMEDIATE``, behind the write gate); PostgreSQL locks rows with ``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from calls.plan import WORK_LEASE_S
from store.engine import DEFAULT_STORE_TIMEOUT_S, WriteGateTimeout, make_engine, write_gate
from store.schema import calls
from store.statements import Prepared, Statements, statements

#: The operator's event types (calls/outbox.py), by the short name the store writes them under.
EVENT_TYPES = {"started": "call.started", "ended": "call.ended",
               "transcript": "transcript.ready", "escalated": "call.escalated",
               "analyzed": "call.analyzed", "booking_created": "booking.created",
               "booking_changed": "booking.changed", "booking_cancelled": "booking.cancelled"}


class StoreUnavailable(Exception):
    """The database could not be reached or stayed locked; nothing was recorded."""


class CallRecord(NamedTuple):
    """A row of the calls table. A named tuple rather than a frozen dataclass: every read of the
    table makes these (the sweeper, every few seconds, all open calls), and a tuple is built
    several times faster."""

    id: str
    channel: str
    caller_uid: int
    state: str
    agent_name: str
    agent_id: str | None
    persona: str | None
    join_seq: int | None
    created_at: float
    agent_started_at: float | None
    ended_at: float | None
    end_reason: str | None
    last_error: str | None
    grace_until: float | None
    retry_at: float | None
    updated_at: float
    direction: str | None = None
    caller_number: str | None = None
    called_number: str | None = None
    gateway_callid: str | None = None
    variables: str | None = None
    caller_joined_at: float | None = None
    goodbye_at: float | None = None
    join_notice_id: str | None = None

    @property
    def their_number(self) -> str | None:
        """The person's own number: the caller's on a call in, the number we rang on a call
        out (then ``caller_number`` is the business's own caller id)."""
        return self.called_number if self.direction == "outbound" else self.caller_number

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()


CALL_COLUMNS = tuple(c.name for c in calls.columns)
# A row of `SELECT <CALL_COLUMNS>` is a CallRecord's positional arguments.
assert CALL_COLUMNS == CallRecord._fields


def record(mapping: Any) -> CallRecord:
    """A CallRecord from a row's mapping (or any mapping of the calls table's columns)."""
    return CallRecord._make([mapping.get(name) for name in CALL_COLUMNS])


class StoreBase:
    """The engine, the clock and the transactions the store's parts are written with."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self.dialect = engine.dialect.name
        #: The statements on every call's path, built once per dialect.
        self._sql: Statements = statements(self.dialect)
        #: SQLite engines made by make_engine queue their writers (store/engine.py).
        self._gate = write_gate(engine)
        #: Write call.started/call.ended/transcript.ready into the outbox (EVENTS_WEBHOOK_URL).
        self.emit_events = False
        #: How long a worker owns a pending start or stop (WORK_LEASE_S).
        self.work_lease_s = WORK_LEASE_S

    @classmethod
    def from_url(cls, url: str, *, clock: Callable[[], float] = time.time,
                 timeout_s: float = DEFAULT_STORE_TIMEOUT_S) -> Any:
        """A store on ``url`` whose operations wait at most about ``timeout_s`` for a lock or
        for the database (STORE_TIMEOUT_S), then fail with StoreUnavailable."""
        return cls(make_engine(url, timeout_s=timeout_s), clock=clock)

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        if self._gate is not None:
            try:
                self._gate.acquire()
            except (WriteGateTimeout, OSError) as exc:  # OSError: its side file will not open
                raise StoreUnavailable(str(exc)) from None
        try:
            with self.engine.begin() as conn:
                yield conn
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise StoreUnavailable(short_error(exc)) from exc
        finally:
            if self._gate is not None:
                self._gate.release()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect().execution_options(readonly=True) as conn, conn.begin():
                yield conn
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise StoreUnavailable(short_error(exc)) from exc

    def check(self) -> None:
        """Raise StoreUnavailable unless the database answers and has our tables."""
        with self._read() as conn:
            conn.execute(sa.select(sa.func.count()).select_from(calls).where(sa.false()))

    # -- the timeline and the operator's events ----------------------------------------------

    def record_event(self, call_id: str, source: str, kind: str,
                     detail: dict[str, Any] | None = None) -> None:
        with self._write() as conn:
            self._event(conn, call_id, self.clock(), source, kind, detail)

    def _event(self, conn: Connection, call_id: str, at: float, source: str, kind: str,
               detail: dict[str, Any] | None) -> None:
        run(conn, self._sql.insert_event, {
            "call_id": call_id, "at": at, "source": source, "kind": kind,
            "detail": json.dumps(detail, separators=(",", ":")) if detail else None})

    def _emit(self, conn: Connection, kind: str, call_id: str | None, now: float, *,
              event_id: str | None = None, payload: str = "{}") -> None:
        """Queue an operator event in the current transaction. Its id is made from the call
        and the kind (or given), so the same change recorded twice is still one event."""
        if self.emit_events:
            run(conn, self._sql.insert_outbox, {
                "id": event_id or f"evt_{call_id}_{kind}", "type": EVENT_TYPES[kind],
                "call_id": call_id, "payload": payload, "created_at": now, "attempts": 0,
                "next_attempt_at": now})


def run(conn: Connection, prepared: Prepared, params: Mapping[str, Any] | None = None) -> Any:
    """Execute one of the path's statements (store/statements.py) in ``conn``'s transaction, on
    its driver connection; returns the driver's cursor (rows are plain tuples, in the
    statement's column order). A driver error is raised as SQLAlchemy's own, as
    ``conn.execute`` would (``OperationalError`` for a locked or lost database, and so on).
    A lost PostgreSQL connection is not marked invalid here: the pool's pre-ping finds it at
    the next checkout."""
    missing = prepared.required - params.keys() if params else prepared.required
    if missing:  # as SQLAlchemy would: a forgotten value is a bug, not a NULL
        raise sa.exc.ArgumentError(f"a value is required for {', '.join(sorted(missing))}")
    values = {**prepared.values, **params} if params else prepared.values
    dbapi = conn.dialect.loaded_dbapi
    try:
        return conn.connection.driver_connection.execute(prepared.sql, values)  # type: ignore[union-attr]
    except dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(prepared.sql, values, exc, dbapi.Error,
                                         hide_parameters=True, dialect=conn.dialect) from exc


#: How many values one ``IN (...)`` lists (a long list of keys or numbers goes in chunks).
IN_CHUNK = 200


def chunked(values: Iterable[str]) -> Iterator[list[str]]:
    """``values`` without repeats, in lists of at most IN_CHUNK."""
    items = sorted(set(values))
    for i in range(0, len(items), IN_CHUNK):
        yield items[i:i + IN_CHUNK]


def values_present(conn: Connection, column: sa.Column[Any], values: Iterable[str]) -> set[str]:
    """Which of ``values`` the table of ``column`` holds in it."""
    found: set[str] = set()
    for chunk in chunked(values):
        found.update(conn.execute(sa.select(column).where(column.in_(chunk))).scalars())
    return found


def short_error(exc: BaseException) -> str:
    """The first line of a database error, without the SQL statement or parameters."""
    original = getattr(exc, "orig", None) or exc
    return str(original).splitlines()[0][:200]
