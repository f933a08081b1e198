"""The store: calls, participants and processed notices, with atomic state transitions.

It is the only memory shared between workers and machines. Every change of a call's state is a
conditional update (``... WHERE state IN (...)``) or happens while the channel's participant row is
locked, so two workers racing on one call cannot both start an agent. SQLite (the default) takes
the database write lock at the start of each write transaction (``BEGIN IMMEDIATE``); PostgreSQL
locks the participant row with ``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from calls import guards, lifecycle
from calls.lifecycle import CallerEvent, CallerJoined, Decision, LiveCall, Participant
from calls.write_gate import WriteGate, WriteGateTimeout

logger = logging.getLogger(__name__)
metadata = sa.MetaData()

calls = sa.Table(
    "calls",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("channel", sa.String(128), nullable=False, index=True),
    sa.Column("caller_uid", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    # Unique by construction (the prefix and the call's id), so no index of its own (0006).
    sa.Column("agent_name", sa.String(64), nullable=False),
    sa.Column("agent_id", sa.String(64)),
    sa.Column("persona", sa.String(64)),
    sa.Column("join_seq", sa.BigInteger),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("agent_started_at", sa.Float),
    sa.Column("ended_at", sa.Float),
    sa.Column("end_reason", sa.String(64)),
    sa.Column("last_error", sa.String(500)),
    sa.Column("grace_until", sa.Float),
    # When the sweeper may take over the call's pending work (a start or stop whose worker may
    # have died). Set whenever a worker takes the work on.
    sa.Column("retry_at", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
    # The phone side (migration 0002): inbound or outbound, the two numbers when the gateway
    # told us, its call id (for endcall/transfer), the persona's template variables of this
    # call (JSON), and when the caller was first seen in the channel.
    sa.Column("direction", sa.String(16)),
    sa.Column("caller_number", sa.String(64)),
    sa.Column("called_number", sa.String(64)),
    sa.Column("gateway_callid", sa.String(128)),
    sa.Column("variables", sa.Text),
    sa.Column("caller_joined_at", sa.Float),
    # When the reconciler had the agent say goodbye at the persona's max_call_s (0004).
    sa.Column("goodbye_at", sa.Float),
    # The notice of the join that began the call (0006): with join_seq and created_at it is the
    # timeline's caller_joined entry, which therefore costs the join's commit no row of its own.
    sa.Column("join_notice_id", sa.String(128)),
    # Only rows that have the id (0005): a new call has neither, and an index entry for NULL
    # would be one more page for its commit to write.
    *(sa.Index(f"ix_calls_{column}", column,
               sqlite_where=sa.text(f"{column} IS NOT NULL"),
               postgresql_where=sa.text(f"{column} IS NOT NULL"))
      for column in ("agent_id", "gateway_callid")),
)

numbers = sa.Table(
    "numbers",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("did", sa.String(32), nullable=False),
    sa.Column("display", sa.String(64)),
    sa.Column("pin", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(128), nullable=False, index=True),
    sa.Column("region", sa.String(16), nullable=False),
    sa.Column("persona", sa.String(64)),
    sa.Column("label", sa.String(200)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("released_at", sa.Float),
)

lines = sa.Table(
    "lines",
    metadata,
    sa.Column("number", sa.String(32), primary_key=True),
    sa.Column("persona", sa.String(64)),
    sa.Column("label", sa.String(200)),
    sa.Column("variables", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    # JSON {pin: persona}: a line whose callers enter a PIN can reach several personas.
    sa.Column("pins", sa.Text),
)

participants = sa.Table(
    "participants",
    metadata,
    sa.Column("channel", sa.String(128), primary_key=True),
    sa.Column("uid", sa.BigInteger, primary_key=True),
    sa.Column("last_seq", sa.BigInteger),
    sa.Column("present", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # Keyed by its primary key alone (SQLite): one B-tree to write instead of two (0006).
    sqlite_with_rowid=False,
)

notices = sa.Table(
    "notices",
    metadata,
    sa.Column("notice_id", sa.String(128), nullable=False),
    sa.Column("product_id", sa.Integer, nullable=False),
    sa.Column("event_type", sa.Integer, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False, index=True),
    # A noticeId is unique within its product only, as far as Agora documents (0007): a
    # ConvoAI notice must never pass for a copy of an RTC one with the same id.
    sa.PrimaryKeyConstraint("product_id", "notice_id"),
    sqlite_with_rowid=False,
)

call_events = sa.Table(
    "call_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(32), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(48), nullable=False),
    sa.Column("detail", sa.Text),
)


#: Events for the operator's EVENTS_WEBHOOK_URL, written in the transaction of the change they
#: report and delivered later by the periodic runner (calls/outbox.py).
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("call_id", sa.String(32), index=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, index=True),
    sa.Column("delivered_at", sa.Float),
    sa.Column("last_error", sa.String(300)),
)

#: Named leases: a job that must run in one worker at a time (the reconciler) holds one.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

#: Fixed-window counters shared by every worker (web/security.py's rate limits).
rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("window_start", sa.Float, nullable=False),
    sa.Column("hits", sa.Integer, nullable=False),
)


#: The operator's event types (calls/outbox.py), by the short name the store writes them under.
EVENT_TYPES = {"started": "call.started", "ended": "call.ended",
               "transcript": "transcript.ready"}


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

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()


class Notice(NamedTuple):
    """A processed NCS notice, as the notices table keeps it for spotting copies."""

    notice_id: str
    product_id: int
    event_type: int
    received_at: float

    def params(self) -> dict[str, Any]:
        return {"notice_id": self.notice_id, "product_id": self.product_id,
                "event_type": self.event_type, "now": self.received_at}


@dataclass(frozen=True)
class Applied:
    """What one caller event did, after the transaction committed."""

    decision: Decision
    call_id: str | None = None
    #: the call whose agent must now be started (made by this event, or before the caller came)
    start: CallRecord | None = None
    #: (call id, agent id) to stop now
    stop: tuple[str, str] | None = None
    #: the cost guard that kept the new call from getting an agent (calls/guards.py)
    refused: str | None = None
    #: the event's notice, to record with the outcome of ``start`` (Store.agent_started,
    #: Store.start_failed or Store.record_notice)
    notice: Notice | None = None


#: STORE_TIMEOUT_S's default: the longest an operation waits for a lock or for the database.
DEFAULT_STORE_TIMEOUT_S = 5.0
#: PostgreSQL's statement_timeout is the lock timeout plus this.
STATEMENT_TIMEOUT_MARGIN_MS = 1000

#: How long a worker owns a call's pending start or stop before the sweeper may take it over.
#: It exceeds the longest a join can take inside its budget (retries plus per-request timeouts).
WORK_LEASE_S = 30.0
#: The page size of a SQLite file this store creates. Every row a call writes touches a leaf page
#: in each of about fifteen tables and indexes, and a commit appends every touched page to the
#: write-ahead log whole: 1 KiB pages (SQLite's default before 3.12) write a quarter of the bytes
#: of 4 KiB ones. Measured with bench/webhook_latency.py on this project's 2-core machine: commits
#: slower than 1 ms fell from about 2 % to about 0.5 % of calls, because the kernel had less to
#: write back. It applies to new files only: SQLite fixes a file's page size when it is created.
SQLITE_PAGE_SIZE = 1024


class Store:
    """Calls and notices in a SQL database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self.dialect = engine.dialect.name
        self._sql = _HotPathSql(self.dialect)
        dbapi = engine.dialect.loaded_dbapi
        self._driver_errors: tuple[type[BaseException], ...] = (dbapi.OperationalError,
                                                                 dbapi.InterfaceError)
        #: SQLite engines made by make_engine queue their writers (calls/write_gate.py).
        self._gate = _WRITE_GATES.get(engine)
        #: Write call.started/call.ended/transcript.ready into the outbox (EVENTS_WEBHOOK_URL).
        self.emit_events = False

    @classmethod
    def from_url(cls, url: str, *, clock: Callable[[], float] = time.time,
                 timeout_s: float = DEFAULT_STORE_TIMEOUT_S) -> Store:
        """A store on ``url`` whose operations wait at most about ``timeout_s`` for a lock or
        for the database (STORE_TIMEOUT_S), then fail with StoreUnavailable."""
        return cls(make_engine(url, timeout_s=timeout_s), clock=clock)

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        self._enter_gate()
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise StoreUnavailable(_short(exc)) from exc
        finally:
            self._leave_gate()

    def _enter_gate(self) -> None:
        if self._gate is not None:
            try:
                self._gate.acquire()
            except WriteGateTimeout as exc:
                raise StoreUnavailable(str(exc)) from None

    def _leave_gate(self) -> None:
        if self._gate is not None:
            self._gate.release()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect().execution_options(readonly=True) as conn, conn.begin():
                yield conn
        except sa.exc.OperationalError as exc:
            raise StoreUnavailable(_short(exc)) from exc

    def check(self) -> None:
        """Raise StoreUnavailable unless the database answers and has our tables."""
        with self._read() as conn:
            conn.execute(sa.select(sa.func.count()).select_from(calls).where(sa.false()))

    # -- caller events -----------------------------------------------------------------------

    def apply_caller_event(
        self,
        event: CallerEvent,
        *,
        grace_s: float,
        agent_name_prefix: str,
        new_id: Callable[[], str],
        persona: str | None = None,
        product_id: int = 1,
        event_type: int = 0,
        limits: guards.Limits | None = None,
    ) -> Applied:
        """Record the notice and apply the event to the channel's live call, atomically, under
        the store's write lock; returns what it did once committed. A call that needs an agent
        is committed as ``starting`` with its work lease: the join goes out after the commit.

        This is the webhook's hot path, so its statements are plain SQL written once per
        dialect and handed straight to the driver."""
        now = self.clock()
        notice = Notice(event.notice_id, product_id, event_type, now)
        with self._hot_write() as cursor:

            def run(statement: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
                cursor.execute(statement, params)
                if cursor.description is None:
                    return None
                # Read to the end: on SQLite a RETURNING statement left unfinished would keep
                # the transaction from committing.
                rows = cursor.fetchall()
                return rows[0] if rows else None

            return self._decide_caller_event(
                run, event, notice, grace_s=grace_s, agent_name_prefix=agent_name_prefix,
                new_id=new_id, persona=persona, limits=limits)

    def _decide_caller_event(
        self,
        run: Callable[[str, dict[str, Any]], tuple[Any, ...] | None],
        event: CallerEvent,
        notice: Notice,
        *,
        grace_s: float,
        agent_name_prefix: str,
        new_id: Callable[[], str],
        persona: str | None,
        limits: guards.Limits | None,
    ) -> Applied:
        """apply_caller_event's statements, run inside its transaction."""
        now = notice.received_at
        sql = self._sql
        if run(sql.notice_seen, {"product_id": notice.product_id,
                                 "notice_id": notice.notice_id}) is not None:
            return Applied(Decision(outcome="duplicate_notice", applied=False))
        # PostgreSQL: creating or touching the participant row locks it until commit, so
        # every event of this channel's caller is decided one at a time. SQLite: a plain
        # read, as BEGIN IMMEDIATE already holds the database's write lock.
        seen = run(sql.read_participant, {
            "channel": event.channel, "uid": event.uid, "absent": False, "now": now})
        participant = None if seen is None or seen[0] is None else Participant(
            last_seq=seen[0], present=bool(seen[1]), updated_at=seen[2])
        live_row = run(sql.live_call, {"channel": event.channel})
        live = LiveCall(*live_row) if live_row else None
        decision = lifecycle.decide(event, participant, live, now=now, grace_s=grace_s)
        if not decision.applied:
            run(sql.remember_notice, notice.params())
            return Applied(decision, call_id=live.id if live else None)
        run(sql.save_participant, {
            "seq": event.seq, "now": now, "channel": event.channel, "uid": event.uid,
            "present": isinstance(event, CallerJoined)})
        stop = None
        start = None
        if live is not None and isinstance(event, CallerJoined):
            run(sql.caller_seen, {"id": live.id, "now": now})
        if live is not None and decision.change is not None:
            change = decision.change
            if change.state in (lifecycle.STOPPING, lifecycle.ENDED):
                run(sql.end_call, {"id": live.id, "state": change.state, "now": now,
                                   "grace_until": change.grace_until,
                                   "end_reason": change.end_reason,
                                   "retry_at": now + WORK_LEASE_S
                                   if change.state == lifecycle.STOPPING else None})
                if change.state == lifecycle.ENDED:
                    self._emit(run, "ended", live.id, now)
            else:
                run(sql.update_call_state, {"id": live.id, "state": change.state,
                                            "grace_until": change.grace_until, "now": now})
            run(sql.insert_event, {"call_id": live.id, "at": now, "source": "ncs",
                                   "kind": decision.outcome,
                                   "detail": _notice_detail(event.seq, event.notice_id)})
            if decision.stop_agent_id:
                stop = (live.id, decision.stop_agent_id)
        if decision.start_live_call and live is not None:
            row = run(sql.call_by_id, {"id": live.id})
            assert row is not None  # read under the same lock a moment ago
            start = CallRecord(*row)
        new_call = None
        refused = None
        if decision.new_call:
            if limits is not None and limits.active:
                if sql.admission_lock:
                    # PostgreSQL: one admission at a time, or two callers on different
                    # channels could both see the last free place.
                    run(sql.admission_lock, {})
                refused = guards.refusal_reason(self._usage(run, now, limits), limits)
            new_call_id = new_id()
            new_call = CallRecord(
                id=new_call_id, channel=event.channel, caller_uid=event.uid,
                state=lifecycle.REFUSED if refused else lifecycle.STARTING,
                agent_name=f"{agent_name_prefix}-{new_call_id}", agent_id=None,
                persona=persona, join_seq=event.seq, created_at=now, agent_started_at=None,
                ended_at=now if refused else None, end_reason=refused, last_error=None,
                grace_until=None, retry_at=None if refused else now + WORK_LEASE_S,
                updated_at=now, caller_joined_at=now, join_notice_id=event.notice_id)
            # An id already taken (new_id may derive it from the event) is replaced by new_id's
            # next one.
            while run(sql.call_exists, {"id": new_call.id}) is not None:
                replacement = new_id()
                new_call = new_call._replace(id=replacement,
                                             agent_name=f"{agent_name_prefix}-{replacement}")
            new_call_id = new_call.id
            # The row is the timeline's caller_joined entry too (Store.timeline).
            run(sql.insert_call, new_call._asdict())
            if refused:
                run(sql.insert_event, {"call_id": new_call_id, "at": now,
                                       "source": "service", "kind": "call_refused",
                                       "detail": json.dumps({"reason": refused})})
                self._emit(run, "ended", new_call_id, now)
            else:
                start = new_call
        if start is None:
            run(sql.remember_notice, notice.params())
        call_id = new_call.id if new_call else (live.id if live else None)
        # An agent to start: its notice is written with the start's outcome, after the join
        # has gone out (until then a copy of this event is a duplicate by its clientSeq).
        return Applied(decision, call_id=call_id, start=start, stop=stop, refused=refused,
                       notice=notice if start is not None else None)

    def _usage(self, run: Callable[[str, dict[str, Any]], tuple[Any, ...] | None],
               now: float, limits: guards.Limits | None = None) -> guards.Usage:
        """What the limits in force need: each query runs only when its limit is set (the
        day's agent time reads every call of the day)."""
        open_calls = seconds = 0
        if limits is None or limits.max_concurrent_calls:
            (open_calls,) = run(self._sql.count_open, {}) or (0,)
        if limits is None or limits.daily_agent_minutes:
            (seconds,) = run(self._sql.agent_seconds_since, {
                "now": now, "day": guards.utc_day_start(now)}) or (0,)
        return guards.Usage(open_calls=int(open_calls), agent_seconds_today=float(seconds or 0))

    def usage(self, limits: guards.Limits | None = None) -> guards.Usage:
        """Calls open now and agent seconds spent today (for the SIP lookup and outbound)."""
        with self._read() as conn:
            def run(statement: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
                return tuple(conn.exec_driver_sql(statement, params).one())

            return self._usage(run, self.clock(), limits)

    @contextmanager
    def _hot_write(self) -> Iterator[Any]:
        """A write transaction on the pooled driver connection itself, for the hot path: the
        same transaction as _write, without SQLAlchemy's per-statement machinery. Yields the
        cursor; leaving the block commits, an exception in it rolls back."""
        self._enter_gate()
        try:
            try:
                raw = self.engine.raw_connection()
            except (sa.exc.OperationalError, *self._driver_errors) as exc:
                # A pool that cannot connect raises the driver's own error, unwrapped.
                raise StoreUnavailable(_short(exc)) from exc
            try:
                cursor = raw.cursor()
                try:
                    if self.dialect == "sqlite":
                        cursor.execute("BEGIN IMMEDIATE")
                    yield cursor
                    raw.commit()
                except BaseException:
                    with suppress(*self._driver_errors):
                        raw.rollback()  # a broken connection is discarded by the pool
                    raise
                finally:
                    cursor.close()
            except self._driver_errors as exc:
                raise StoreUnavailable(_short(exc)) from exc
            finally:
                raw.close()  # back to the pool
        finally:
            self._leave_gate()

    # -- agent start and stop outcomes -------------------------------------------------------

    def agent_started(self, call_id: str, agent_id: str, *, notice: Notice | None = None) -> str:
        """Record a join that Agora accepted (and ``notice``, the event that asked for it).
        Returns "active", or "stop" when the call ended while the join was in flight (the
        caller must then stop the agent). On every call's path, so it runs on the driver
        connection like apply_caller_event."""
        now = self.clock()
        sql = self._sql
        with self._hot_write() as cursor:
            cursor.execute(sql.agent_started, {"id": call_id, "agent_id": agent_id, "now": now})
            if cursor.fetchone() is not None:
                outcome, kind = "active", "agent_started"
                self._emit(cursor.execute, "started", call_id, now)
            else:
                cursor.execute(sql.agent_started_late, {"id": call_id, "agent_id": agent_id,
                                                        "now": now,
                                                        "retry_at": now + WORK_LEASE_S})
                outcome, kind = "stop", "agent_started_after_leave"
            cursor.execute(sql.insert_event, {
                "call_id": call_id, "at": now, "source": "service", "kind": kind,
                "detail": json.dumps({"agent_id": agent_id}, separators=(",", ":"))})
            if notice is not None:
                # Last, after the call row: every transaction that writes a caller's notice
                # takes the call row's lock first (PostgreSQL), so none waits on the other.
                cursor.execute(sql.remember_notice, notice.params())
        return outcome

    def start_failed(self, call_id: str, *, state: str, reason: str,
                     notice: Notice | None = None) -> None:
        """The agent could not be started: the call ends as ``refused`` or ``failed``."""
        now = self.clock()
        with self._write() as conn:
            conn.execute(
                calls.update().where(calls.c.id == call_id, calls.c.state.in_(
                    lifecycle.OPEN_STATES))
                .values(state=state, last_error=reason[:500], ended_at=now, retry_at=None,
                        end_reason=sa.func.coalesce(calls.c.end_reason, state), updated_at=now)
            )
            self._event(conn, call_id, now, "service", f"agent_{state}", {"reason": reason})
            self._emit(conn.exec_driver_sql, "ended", call_id, now)
            if notice is not None:
                # After the call row, as in agent_started.
                conn.exec_driver_sql(self._sql.remember_notice, notice.params())

    def record_notice(self, notice: Notice) -> None:
        """Remember a processed notice whose event started nothing after all."""
        with self._write() as conn:
            conn.exec_driver_sql(self._sql.remember_notice, notice.params())

    def agent_stopped(self, call_id: str, *, already_gone: bool = False) -> None:
        now = self.clock()
        with self._hot_write() as cursor:
            cursor.execute(self._sql.agent_stopped, {"id": call_id, "now": now})
            self._emit(cursor.execute, "ended", call_id, now)
            cursor.execute(self._sql.insert_event, {
                "call_id": call_id, "at": now, "source": "service", "kind": "agent_stopped",
                "detail": json.dumps({"already_gone": already_gone}, separators=(",", ":"))})

    def stop_failed(self, call_id: str, error: str, *, retry_in: float) -> None:
        now = self.clock()
        with self._write() as conn:
            conn.execute(calls.update().where(calls.c.id == call_id).values(
                last_error=error[:500], retry_at=now + retry_in, updated_at=now))
            self._event(conn, call_id, now, "service", "agent_stop_failed", {"error": error})

    def apply_agent_event(self, *, notice_id: str, event_type: int, kind: str,
                          call_id: str | None, agent_id: str | None,
                          detail: dict[str, Any] | None, agent_left: bool) -> str:
        """Record one of ConvoAI's own notifications on its call's timeline. When the agent has
        left (its idle timeout, an error, or our own stop), an open call of that agent ends."""
        now = self.clock()
        with self._write() as conn:
            if conn.exec_driver_sql(self._sql.insert_notice, {
                    "notice_id": notice_id, "product_id": 17, "event_type": event_type,
                    "now": now}).first() is None:
                return "duplicate_notice"
            if call_id:
                where = calls.c.id == call_id
            elif agent_id:
                where = calls.c.agent_id == agent_id
            else:
                return "unknown_call"
            row = conn.execute(sa.select(calls.c.id, calls.c.state, calls.c.agent_id)
                               .where(where).with_for_update()).first()
            if row is None:
                return "unknown_call"
            self._event(conn, row.id, now, "convoai", kind, detail)
            if kind == "agent_history":
                self._emit(conn.exec_driver_sql, "transcript", row.id, now)
            if agent_left and row.state in lifecycle.OPEN_STATES and (
                    row.agent_id is None or row.agent_id == agent_id):
                conn.execute(calls.update().where(calls.c.id == row.id).values(
                    state=lifecycle.ENDED, retry_at=None, grace_until=None, updated_at=now,
                    agent_id=sa.func.coalesce(calls.c.agent_id, agent_id),
                    ended_at=sa.func.coalesce(calls.c.ended_at, now),
                    end_reason=sa.func.coalesce(calls.c.end_reason, "agent_left")))
                self._emit(conn.exec_driver_sql, "ended", row.id, now)
                return "call_ended_by_agent"
            return "recorded"

    # -- calls made before their caller joins (SIP) ------------------------------------------

    def create_call(self, *, channel: str, direction: str, state: str, persona: str | None,
                    agent_name_prefix: str, new_id: Callable[[], str], caller_uid: int,
                    caller_number: str | None = None, called_number: str | None = None,
                    gateway_callid: str | None = None,
                    variables: dict[str, str] | None = None) -> CallRecord:
        """A call that exists before anyone is in its (fresh) channel: made at the gateway's
        ring-time lookup, or for an outbound call. ``state`` is ``pending`` (no agent yet) or
        ``starting`` (the caller of this method starts the agent now)."""
        now = self.clock()
        call_id = new_id()
        values = {
            "id": call_id, "channel": channel, "caller_uid": caller_uid, "state": state,
            "agent_name": f"{agent_name_prefix}-{call_id}", "persona": persona,
            "created_at": now, "updated_at": now, "direction": direction,
            "retry_at": now + WORK_LEASE_S if state == lifecycle.STARTING else None,
            "caller_number": caller_number, "called_number": called_number,
            "gateway_callid": gateway_callid,
            "variables": json.dumps(variables, separators=(",", ":")) if variables else None,
        }
        with self._write() as conn:
            conn.execute(calls.insert().values(**values))
            self._event(conn, call_id, now, "service", f"call_created_{direction}", {
                "caller_number": caller_number, "called_number": called_number,
                "gateway_callid": gateway_callid, "persona": persona})
        return _record({c: values.get(c) for c in _CALL_COLUMNS})

    def set_gateway_callid(self, call_id: str, callid: str) -> None:
        with self._write() as conn:
            conn.execute(calls.update().where(calls.c.id == call_id).values(
                gateway_callid=callid, updated_at=self.clock()))

    def find_gateway_call(self, callid: str | None, channel: str | None) -> CallRecord | None:
        """The call a gateway event is about: by the gateway's call id, else the channel's
        newest call."""
        with self._read() as conn:
            row = None
            if callid:
                row = conn.execute(sa.select(calls).where(calls.c.gateway_callid == callid)
                                   .order_by(calls.c.created_at.desc()).limit(1)).first()
            if row is None and channel:
                row = conn.execute(sa.select(calls).where(calls.c.channel == channel)
                                   .order_by(calls.c.created_at.desc()).limit(1)).first()
        return _record(row._mapping) if row else None

    def end_call(self, call_id: str, reason: str) -> tuple[bool, str | None]:
        """End an open call for a reason other than its caller's NCS leave (the gateway hung
        up, an operator did, the outbound call failed). Returns (ended now, agent id to stop)."""
        now = self.clock()
        with self._write() as conn:
            row = conn.execute(sa.select(calls.c.state, calls.c.agent_id)
                               .where(calls.c.id == call_id).with_for_update()).first()
            if row is None or row.state not in lifecycle.LIVE_STATES:
                return False, None
            # A pending call never had an agent; one whose start is in flight is stopped by
            # the start itself when it sees the call is over (rule d).
            state = lifecycle.ENDED if row.state == lifecycle.PENDING else lifecycle.STOPPING
            conn.execute(calls.update().where(calls.c.id == call_id).values(
                state=state, end_reason=reason, ended_at=now, grace_until=None, updated_at=now,
                retry_at=now + WORK_LEASE_S if state == lifecycle.STOPPING else None))
            self._event(conn, call_id, now, "service", "call_ending", {"reason": reason})
            if state == lifecycle.ENDED:
                self._emit(conn.exec_driver_sql, "ended", call_id, now)
            return True, row.agent_id

    def count_open_calls(self) -> int:
        with self._read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(calls).where(
                calls.c.state.in_(lifecycle.OPEN_STATES))).scalar_one()

    # -- reservations (numbers) ----------------------------------------------------------------

    def add_reservation(self, values: dict[str, Any]) -> dict[str, Any]:
        with self._write() as conn:
            conn.execute(numbers.insert().values(**values))
        return dict(values)

    def list_reservations(self, *, include_released: bool = False) -> list[dict[str, Any]]:
        query = sa.select(numbers).order_by(numbers.c.created_at.desc())
        if not include_released:
            query = query.where(numbers.c.released_at.is_(None))
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(query).all()]

    def get_reservation(self, reservation_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(sa.select(numbers).where(numbers.c.id == reservation_id)).first()
        return dict(row._mapping) if row else None

    def release_reservation(self, reservation_id: str) -> bool:
        with self._write() as conn:
            return bool(conn.execute(numbers.update().where(
                numbers.c.id == reservation_id, numbers.c.released_at.is_(None)).values(
                released_at=self.clock())).rowcount)

    # -- lines ---------------------------------------------------------------------------------

    def put_line(self, number: str, *, persona: str | None, label: str | None,
                 variables: dict[str, str] | None,
                 pins: dict[str, str] | None = None) -> dict[str, Any]:
        values = {"number": number, "persona": persona, "label": label,
                  "variables": json.dumps(variables or {}, separators=(",", ":")),
                  "pins": json.dumps(pins or {}, separators=(",", ":")),
                  "created_at": self.clock()}
        with self._write() as conn:
            conn.execute(lines.delete().where(lines.c.number == number))
            conn.execute(lines.insert().values(**values))
        return _line(values)

    def get_line(self, number: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(sa.select(lines).where(lines.c.number == number)).first()
        return _line(row._mapping) if row else None

    def list_lines(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(sa.select(lines).order_by(lines.c.number)).all()
        return [_line(r._mapping) for r in rows]

    def remove_line(self, number: str) -> bool:
        with self._write() as conn:
            return bool(conn.execute(lines.delete().where(lines.c.number == number)).rowcount)

    # -- sweeping ----------------------------------------------------------------------------

    def claim_due_work(self, *, limit: int = 50,
                       caller_wait_s: float | None = None) -> list[CallRecord]:
        """Take over calls whose pending work is due: grace windows that ran out, stops that
        failed or whose worker vanished, and starts left half done. Each returned call is leased
        to the caller for WORK_LEASE_S (a conditional update, so only one worker gets it)."""
        now = self.clock()
        due = sa.or_(
            sa.and_(calls.c.state == lifecycle.GRACE, calls.c.grace_until < now,
                    sa.or_(calls.c.retry_at.is_(None), calls.c.retry_at < now)),
            sa.and_(calls.c.state.in_((lifecycle.STARTING, lifecycle.STOPPING)),
                    calls.c.retry_at < now),
        )
        if caller_wait_s is not None:
            # A call made at ring time whose caller never reached the channel.
            due = sa.or_(due, sa.and_(
                calls.c.direction == "inbound", calls.c.caller_joined_at.is_(None),
                calls.c.state.in_((lifecycle.PENDING, lifecycle.STARTING, lifecycle.ACTIVE)),
                calls.c.created_at < now - caller_wait_s))
        claimed = []
        # Look first, with a read that never blocks webhooks; most sweeps find nothing due.
        with self._read() as conn:
            if conn.execute(sa.select(calls.c.id).where(due).limit(1)).first() is None:
                return claimed
        with self._write() as conn:
            rows = conn.execute(sa.select(calls).where(due).limit(limit)).all()
            for row in rows:
                values: dict[str, Any] = {"retry_at": now + WORK_LEASE_S, "updated_at": now}
                if row.state == lifecycle.GRACE:
                    values.update(state=lifecycle.STOPPING, end_reason="caller_did_not_return",
                                  ended_at=now)
                elif (caller_wait_s is not None and row.direction == "inbound"
                      and row.caller_joined_at is None
                      and row.created_at < now - caller_wait_s and row.state in (
                          lifecycle.PENDING, lifecycle.STARTING, lifecycle.ACTIVE)):
                    ending = lifecycle.ENDED if row.state == lifecycle.PENDING \
                        else lifecycle.STOPPING
                    values.update(state=ending, end_reason="caller_never_arrived", ended_at=now)
                    if ending == lifecycle.ENDED:
                        self._emit(conn.exec_driver_sql, "ended", row.id, now)
                result = conn.execute(
                    calls.update().where(calls.c.id == row.id,
                                         calls.c.updated_at == row.updated_at).values(**values))
                if result.rowcount:
                    record = _record({**row._mapping, **values})
                    claimed.append(record)
                    self._event(conn, row.id, now, "sweeper", f"claimed_{row.state}", None)
        return claimed

    def checkpoint(self) -> None:
        """SQLite: copy the write-ahead log into the database without blocking anyone. Done by
        the sweeper so that no webhook's commit pays for it (see make_engine)."""
        if self.dialect != "sqlite":
            return
        # Outside any transaction (SQLite refuses a checkpoint inside one), on the bare driver
        # connection. A busy database just means the next sweep does it.
        raw = self.engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").close()
        except self._driver_errors as exc:
            logger.debug("store.checkpoint_skipped", extra={"error": _short(exc)})
        finally:
            raw.close()

    def prune_notices(self, *, older_than_s: float) -> int:
        with self._write() as conn:
            result = conn.execute(
                notices.delete().where(notices.c.received_at < self.clock() - older_than_s))
            return result.rowcount or 0

    # -- reading -----------------------------------------------------------------------------

    def get_call(self, call_id: str) -> CallRecord | None:
        with self._read() as conn:
            row = conn.execute(sa.select(calls).where(calls.c.id == call_id)).first()
        return _record(row._mapping) if row else None

    def calls_in_channel(self, channel: str) -> list[CallRecord]:
        with self._read() as conn:
            rows = conn.execute(sa.select(calls).where(calls.c.channel == channel)
                                .order_by(calls.c.created_at)).all()
        return [_record(r._mapping) for r in rows]

    def list_calls(self, *, states: list[str] | None = None, persona: str | None = None,
                   number: str | None = None,
                   channel: str | None = None, since: float | None = None,
                   until: float | None = None, limit: int = 50,
                   after: tuple[float, str] | None = None) -> list[CallRecord]:
        """Newest first. ``after`` is the (created_at, id) of the last call of the previous page."""
        query = sa.select(calls).order_by(calls.c.created_at.desc(), calls.c.id.desc())
        if states:
            query = query.where(calls.c.state.in_(states))
        if persona:
            query = query.where(calls.c.persona == persona)
        if number:
            # The caller's or the called number: "every call with this customer".
            query = query.where(sa.or_(calls.c.caller_number == number,
                                       calls.c.called_number == number))
        if channel:
            query = query.where(calls.c.channel == channel)
        if since is not None:
            query = query.where(calls.c.created_at >= since)
        if until is not None:
            query = query.where(calls.c.created_at < until)
        if after is not None:
            created_at, call_id = after
            query = query.where(sa.or_(calls.c.created_at < created_at, sa.and_(
                calls.c.created_at == created_at, calls.c.id < call_id)))
        with self._read() as conn:
            rows = conn.execute(query.limit(limit)).all()
        return [_record(r._mapping) for r in rows]

    def delete_call(self, call_id: str) -> bool:
        """Erase a call: its record, its timeline (which holds the transcript) and its events
        not yet delivered."""
        with self._write() as conn:
            conn.execute(call_events.delete().where(call_events.c.call_id == call_id))
            conn.execute(outbox.delete().where(outbox.c.call_id == call_id))
            return bool(conn.execute(calls.delete().where(calls.c.id == call_id)).rowcount)

    def delete_calls_older_than(self, cutoff: float, *, batch: int = 500) -> int:
        """RETENTION_DAYS: erase ended calls created before ``cutoff``, a batch per transaction
        so a large backlog never holds the write lock for long. Returns how many."""
        erased = 0
        while True:
            with self._write() as conn:
                ids = [r.id for r in conn.execute(
                    sa.select(calls.c.id).where(calls.c.created_at < cutoff,
                                                calls.c.state.in_(lifecycle.FINAL_STATES))
                    .limit(batch))]
                if not ids:
                    return erased
                conn.execute(call_events.delete().where(call_events.c.call_id.in_(ids)))
                conn.execute(outbox.delete().where(outbox.c.call_id.in_(ids)))
                conn.execute(calls.delete().where(calls.c.id.in_(ids)))
            erased += len(ids)

    def timeline(self, call_id: str) -> list[dict[str, Any]]:
        with self._read() as conn:
            joined = conn.execute(sa.select(calls.c.created_at, calls.c.join_seq,
                                            calls.c.join_notice_id)
                                  .where(calls.c.id == call_id)).first()
            rows = conn.execute(sa.select(call_events).where(call_events.c.call_id == call_id)
                                .order_by(call_events.c.at, call_events.c.id)).all()
        entries = [{"at": r.at, "source": r.source, "kind": r.kind,
                    "detail": json.loads(r.detail) if r.detail else None} for r in rows]
        if joined is not None and joined.join_notice_id is not None:
            # Kept in the call row since 0006 (see calls.join_notice_id); nothing on the
            # timeline comes before the join that made the call.
            entries.insert(0, {"at": joined.created_at, "source": "ncs", "kind": "caller_joined",
                               "detail": {"seq": joined.join_seq,
                                          "notice_id": joined.join_notice_id}})
        return entries

    def record_history(self, call_id: str, contents: list[dict[str, Any]]) -> None:
        """The conversation fetched from ConvoAI just before its agent is stopped."""
        now = self.clock()
        with self._write() as conn:
            self._event(conn, call_id, now, "service", "agent_history", {"contents": contents})
            self._emit(conn.exec_driver_sql, "transcript", call_id, now)

    def _emit(self, execute: Callable[[str, dict[str, Any]], Any], kind: str, call_id: str,
              now: float) -> None:
        """Queue an operator event in the current transaction. Its id is made from the call
        and the kind, so the same change recorded twice is still one event."""
        if self.emit_events:
            execute(self._sql.insert_outbox, {"id": f"evt_{call_id}_{kind}",
                                              "type": EVENT_TYPES[kind], "call_id": call_id,
                                              "now": now})

    # -- the outbox ----------------------------------------------------------------------------

    def claim_outbox(self, *, limit: int, lease_s: float) -> list[dict[str, Any]]:
        """Events due for delivery, each leased to the caller for ``lease_s`` (a conditional
        update, so two workers never send one event at once)."""
        now = self.clock()
        due = sa.and_(outbox.c.delivered_at.is_(None), outbox.c.next_attempt_at <= now)
        with self._read() as conn:
            if conn.execute(sa.select(outbox.c.id).where(due).limit(1)).first() is None:
                return []
        claimed = []
        with self._write() as conn:
            rows = conn.execute(sa.select(outbox).where(due).order_by(outbox.c.created_at)
                                .limit(limit)).all()
            for row in rows:
                taken = conn.execute(outbox.update().where(
                    outbox.c.id == row.id, outbox.c.next_attempt_at == row.next_attempt_at)
                    .values(next_attempt_at=now + lease_s)).rowcount
                if taken:
                    claimed.append(dict(row._mapping))
        return claimed

    def outbox_done(self, event_id: str) -> None:
        with self._write() as conn:
            conn.execute(outbox.update().where(outbox.c.id == event_id).values(
                delivered_at=self.clock(), last_error=None))

    def outbox_failed(self, event_id: str, error: str, *, retry_in: float | None) -> None:
        """A failed delivery: try again in ``retry_in`` seconds, or never (None)."""
        with self._write() as conn:
            conn.execute(outbox.update().where(outbox.c.id == event_id).values(
                attempts=outbox.c.attempts + 1, last_error=error[:300],
                next_attempt_at=None if retry_in is None else self.clock() + retry_in))

    def outbox_events(self, call_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(outbox).order_by(outbox.c.created_at, outbox.c.id)
        if call_id:
            query = query.where(outbox.c.call_id == call_id)
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # -- leases and the reconciler's reads -------------------------------------------------------

    def take_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take the named lease if nobody holds it (or it ran out): one worker at a time runs
        the job it guards, and it runs at most once per ``ttl_s`` across all workers."""
        now = self.clock()
        # Look first, with a read: every worker asks every few seconds and the answer is
        # nearly always no, which must not cost a write lock that webhooks would wait for.
        with self._read() as conn:
            held = conn.execute(sa.select(leases.c.expires_at).where(
                leases.c.name == name)).scalar()
        if held is not None and held > now:
            return False
        with self._write() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name)
                               .with_for_update()).first()
            if row is None:
                conn.execute(leases.insert().values(name=name, holder=holder,
                                                    expires_at=now + ttl_s))
                return True
            if row.expires_at > now:
                return False
            conn.execute(leases.update().where(leases.c.name == name).values(
                holder=holder, expires_at=now + ttl_s))
            return True

    def call_by_agent_id(self, agent_id: str) -> CallRecord | None:
        with self._read() as conn:
            row = conn.execute(sa.select(calls).where(calls.c.agent_id == agent_id)
                               .order_by(calls.c.created_at.desc()).limit(1)).first()
        return _record(row._mapping) if row else None

    def calls_in_states(self, states: tuple[str, ...], *, limit: int = 1000) -> list[CallRecord]:
        with self._read() as conn:
            rows = conn.execute(sa.select(calls).where(calls.c.state.in_(states))
                                .order_by(calls.c.created_at).limit(limit)).all()
        return [_record(r._mapping) for r in rows]

    def mark_goodbye(self, call_id: str) -> bool:
        """Note that the call's goodbye is being spoken; False if another worker did it first."""
        now = self.clock()
        with self._write() as conn:
            taken = conn.execute(calls.update().where(
                calls.c.id == call_id, calls.c.goodbye_at.is_(None),
                calls.c.state.in_((lifecycle.ACTIVE, lifecycle.GRACE)))
                .values(goodbye_at=now, updated_at=now)).rowcount
            if taken:
                self._event(conn, call_id, now, "reconciler", "goodbye_spoken", None)
            return bool(taken)

    def record_event(self, call_id: str, source: str, kind: str,
                     detail: dict[str, Any] | None = None) -> None:
        with self._write() as conn:
            self._event(conn, call_id, self.clock(), source, kind, detail)

    def _event(self, conn: Connection, call_id: str, at: float, source: str, kind: str,
               detail: dict[str, Any] | None) -> None:
        conn.execute(call_events.insert().values(
            call_id=call_id, at=at, source=source, kind=kind,
            detail=json.dumps(detail, separators=(",", ":")) if detail else None))


class _HotPathSql:
    """The statements of the webhook's hot path, as plain SQL for the dialect's driver.

    Written with ``:name`` parameters (sqlite3's style) and rewritten once to ``%(name)s`` for
    psycopg. ``ON CONFLICT ... RETURNING`` works on SQLite 3.35+ and PostgreSQL alike; the
    RETURNING row, not rowcount, says whether a row was inserted (psycopg 3 reports -1 rows for
    ``DO NOTHING``)."""

    def __init__(self, dialect: str) -> None:
        postgres = dialect == "postgresql"
        live = ", ".join(f"'{state}'" for state in lifecycle.LIVE_STATES)

        def sql(text: str) -> str:
            text = " ".join(text.split())
            return re.sub(r":(\w+)", r"%(\1)s", text) if postgres else text

        self.insert_notice = sql("""
            INSERT INTO notices (notice_id, product_id, event_type, received_at)
            VALUES (:notice_id, :product_id, :event_type, :now)
            ON CONFLICT DO NOTHING RETURNING notice_id""")
        self.notice_seen = sql("""
            SELECT 1 FROM notices WHERE product_id = :product_id AND notice_id = :notice_id""")
        # A caller's notice, recorded once its event is decided (a copy may have beaten it).
        self.remember_notice = sql("""
            INSERT INTO notices (notice_id, product_id, event_type, received_at)
            VALUES (:notice_id, :product_id, :event_type, :now) ON CONFLICT DO NOTHING""")
        self.read_participant = sql("""
            INSERT INTO participants (channel, uid, last_seq, present, updated_at)
            VALUES (:channel, :uid, NULL, :absent, :now)
            ON CONFLICT (channel, uid) DO UPDATE SET channel = excluded.channel
            RETURNING last_seq, present, updated_at""") if postgres else sql("""
            SELECT last_seq, present, updated_at FROM participants
            WHERE channel = :channel AND uid = :uid""")
        self.live_call = sql(f"""
            SELECT id, state, agent_id, grace_until FROM calls
            WHERE channel = :channel AND state IN ({live})
            ORDER BY created_at DESC LIMIT 1{" FOR UPDATE" if postgres else ""}""")
        self.save_participant = sql("""
            INSERT INTO participants (channel, uid, last_seq, present, updated_at)
            VALUES (:channel, :uid, :seq, :present, :now)
            ON CONFLICT (channel, uid) DO UPDATE SET last_seq = excluded.last_seq,
                present = excluded.present, updated_at = excluded.updated_at""")
        self.insert_call = sql("""
            INSERT INTO calls (id, channel, caller_uid, state, agent_name, persona, join_seq,
                               created_at, retry_at, updated_at, caller_joined_at, ended_at,
                               end_reason, join_notice_id)
            VALUES (:id, :channel, :caller_uid, :state, :agent_name, :persona, :join_seq,
                    :created_at, :retry_at, :updated_at, :caller_joined_at, :ended_at,
                    :end_reason, :join_notice_id)""")
        self.call_exists = sql("SELECT 1 FROM calls WHERE id = :id")
        opened = ", ".join(f"'{state}'" for state in lifecycle.OPEN_STATES)
        self.count_open = sql(f"SELECT COUNT(*) FROM calls WHERE state IN ({opened})")
        # Agent seconds since midnight UTC: calls whose agent started, ended after midnight or
        # still running, each counted from the later of its start and midnight. An agent lives
        # at most 72 hours, so only calls made since then can count (created_at's index); an
        # index on ended_at would cost every call's commit a page for a query few deployments
        # run.
        self.agent_seconds_since = sql("""
            SELECT COALESCE(SUM(COALESCE(ended_at, :now) -
                                CASE WHEN agent_started_at > :day THEN agent_started_at
                                     ELSE :day END), 0)
            FROM calls WHERE created_at > :day - 259200 AND agent_started_at IS NOT NULL
                         AND (ended_at IS NULL OR ended_at > :day)""")
        self.admission_lock = sql(
            f"SELECT pg_advisory_xact_lock({_ADMISSION_LOCK_KEY})") if postgres else ""
        self.caller_seen = sql("""
            UPDATE calls SET caller_joined_at = COALESCE(caller_joined_at, :now)
            WHERE id = :id""")
        columns = ", ".join(_CALL_COLUMNS)
        self.call_by_id = sql(f"SELECT {columns} FROM calls WHERE id = :id")
        self.update_call_state = sql("""
            UPDATE calls SET state = :state, grace_until = :grace_until, updated_at = :now
            WHERE id = :id""")
        self.end_call = sql("""
            UPDATE calls SET state = :state, grace_until = :grace_until, updated_at = :now,
                             end_reason = :end_reason, ended_at = :now, retry_at = :retry_at
            WHERE id = :id""")
        self.agent_started = sql(f"""
            UPDATE calls SET agent_id = :agent_id, agent_started_at = :now, retry_at = NULL,
                updated_at = :now,
                state = CASE WHEN state = '{lifecycle.STARTING}' THEN '{lifecycle.ACTIVE}'
                             ELSE state END
            WHERE id = :id AND state IN ('{lifecycle.STARTING}', '{lifecycle.GRACE}')
            RETURNING id""")
        self.agent_started_late = sql("""
            UPDATE calls SET agent_id = :agent_id, agent_started_at = :now, updated_at = :now,
                retry_at = :retry_at
            WHERE id = :id""")
        self.agent_stopped = sql(f"""
            UPDATE calls SET state = '{lifecycle.ENDED}', retry_at = NULL, grace_until = NULL,
                updated_at = :now, ended_at = COALESCE(ended_at, :now)
            WHERE id = :id""")
        self.insert_outbox = sql("""
            INSERT INTO outbox (id, type, call_id, payload, created_at, attempts,
                                next_attempt_at)
            VALUES (:id, :type, :call_id, '{}', :now, 0, :now) ON CONFLICT DO NOTHING""")
        self.insert_event = sql("""
            INSERT INTO call_events (call_id, at, source, kind, detail)
            VALUES (:call_id, :at, :source, :kind, :detail)""")


def make_engine(url: str, *, timeout_s: float = DEFAULT_STORE_TIMEOUT_S) -> Engine:
    """An engine tuned for this workload: SQLite in WAL mode with write transactions that take
    the lock up front (so two workers serialise instead of failing on upgrade), or PostgreSQL
    with pre-pinged pooled connections.

    No operation waits much longer than ``timeout_s`` for a lock held by someone else (SQLite's
    busy timeout; PostgreSQL's lock_timeout, plus a statement_timeout a little above it and a
    bounded connect): the driver then raises an OperationalError, which the store turns into
    StoreUnavailable, so a webhook answers 503 inside NCS's 10 s instead of hanging."""
    timeout_ms = max(1, round(timeout_s * 1000))
    if url.startswith("sqlite"):
        # Last in, first out: the connection just returned is the one whose page cache is
        # warm. A queue would rotate through the pool, and each connection would first re-read
        # the pages the others changed since it last ran (measured in the service under
        # bench/webhook_latency.py: about 50 us more per transaction).
        engine = sa.create_engine(
            url, connect_args={"timeout": timeout_s, "check_same_thread": False},
            pool_size=16, max_overflow=48, pool_use_lifo=True)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when transactions begin.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout={timeout_ms}")
            # Before WAL mode, which writes the file's header (an existing file ignores it).
            cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            _enter_wal(cursor, timeout_s)
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints run in the sweeper (Store.checkpoint); the automatic one would land on
            # whichever webhook commits when the log fills. This high limit is only a backstop
            # for processes without a sweeper.
            cursor.execute("PRAGMA wal_autocheckpoint=20000")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            readonly = conn.get_execution_options().get("readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        database = engine.url.database
        on_disk = bool(database) and database != ":memory:" and not database.startswith("file:")
        _WRITE_GATES[engine] = WriteGate(
            str(Path(database).with_suffix(".write.lock")) if on_disk else None, timeout_s)
        return engine
    # Session defaults sent with the connection itself (no extra round trip per checkout). The
    # statement timeout sits above the lock timeout so that waiting on a lock reports as such.
    options = (f"-c lock_timeout={timeout_ms} "
               f"-c statement_timeout={timeout_ms + STATEMENT_TIMEOUT_MARGIN_MS}")
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=40,
                            pool_recycle=1800,
                            connect_args={"options": options,
                                          "connect_timeout": max(2, math.ceil(timeout_s))})


#: The write gate of each SQLite engine make_engine made (Store finds its own here).
_WRITE_GATES: weakref.WeakKeyDictionary[Engine, WriteGate] = weakref.WeakKeyDictionary()
#: How long _enter_wal sleeps between tries.
_WAL_RETRY_S = 0.002


def _enter_wal(cursor: Any, timeout_s: float) -> None:
    """Put the connection's file in WAL mode, waiting up to ``timeout_s`` for the lock it needs.

    A file still in its first (rollback-journal) mode is switched under an exclusive lock. When
    several workers open a brand-new file at the same moment, one of them holds a shared lock
    while another holds the reserved lock and waits for it; SQLite then answers "database is
    locked" at once instead of calling the busy handler, since waiting could deadlock. Trying
    again after the other has switched the file finds it in WAL already (CI saw a gunicorn
    worker fail to boot this way; four processes opening one new file hit it about once in six).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(_WAL_RETRY_S)


_CALL_COLUMNS = tuple(c.name for c in calls.columns)
# A row of `SELECT <_CALL_COLUMNS>` is a CallRecord's positional arguments.
assert _CALL_COLUMNS == CallRecord._fields
#: An arbitrary constant naming the lock new calls are admitted under (PostgreSQL).
_ADMISSION_LOCK_KEY = 0x61646D6974  # "admit"


def _line(mapping: Any) -> dict[str, Any]:
    return {"number": mapping["number"], "persona": mapping["persona"],
            "label": mapping["label"], "variables": json.loads(mapping["variables"] or "{}"),
            "pins": json.loads(mapping.get("pins") or "{}")}


def _record(mapping: Any) -> CallRecord:
    return CallRecord._make([mapping[name] for name in _CALL_COLUMNS])


def _notice_detail(seq: int, notice_id: str) -> str:
    """The detail of a timeline entry made by a caller's event."""
    return json.dumps({"seq": seq, "notice_id": notice_id}, separators=(",", ":"))


def _short(exc: BaseException) -> str:
    """The first line of a database error, without the SQL statement or parameters."""
    original = getattr(exc, "orig", None) or exc
    return str(original).splitlines()[0][:200]
