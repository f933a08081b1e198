"""The store: calls, participants and processed notices, with atomic state transitions.

It is the only memory shared between workers and machines. Every change of a call's state is a
conditional update (``... WHERE state IN (...)``) or happens while the channel's participant row is
locked, so two workers racing on one call cannot both start an agent. SQLite (the default) takes
the database write lock at the start of each write transaction (``BEGIN IMMEDIATE``); PostgreSQL
locks the participant row with ``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from calls import lifecycle
from calls.lifecycle import CallerEvent, CallerJoined, Decision, LiveCall, Participant

metadata = sa.MetaData()

calls = sa.Table(
    "calls",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("channel", sa.String(128), nullable=False, index=True),
    sa.Column("caller_uid", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("agent_name", sa.String(64), nullable=False, unique=True),
    sa.Column("agent_id", sa.String(64), index=True),
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
)

participants = sa.Table(
    "participants",
    metadata,
    sa.Column("channel", sa.String(128), primary_key=True),
    sa.Column("uid", sa.BigInteger, primary_key=True),
    sa.Column("last_seq", sa.BigInteger),
    sa.Column("present", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

notices = sa.Table(
    "notices",
    metadata,
    sa.Column("notice_id", sa.String(128), primary_key=True),
    sa.Column("product_id", sa.Integer, nullable=False),
    sa.Column("event_type", sa.Integer, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False, index=True),
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


class StoreUnavailable(Exception):
    """The database could not be reached or stayed locked; nothing was recorded."""


@dataclass(frozen=True)
class CallRecord:
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

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Applied:
    """What one caller event did, after the transaction committed."""

    decision: Decision
    call_id: str | None = None
    new_call_id: str | None = None
    #: (call id, agent id) to stop now
    stop: tuple[str, str] | None = None


#: How long a worker owns a call's pending start or stop before the sweeper may take it over.
#: It exceeds the longest a join can take inside its budget (retries plus per-request timeouts).
WORK_LEASE_S = 30.0


class Store:
    """Calls and notices in a SQL database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self.dialect = engine.dialect.name

    @classmethod
    def from_url(cls, url: str, *, clock: Callable[[], float] = time.time) -> Store:
        return cls(make_engine(url), clock=clock)

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise StoreUnavailable(_short(exc)) from exc

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
    ) -> Applied:
        """Record the notice and apply the event to the channel's live call, atomically."""
        now = self.clock()
        with self._write() as conn:
            if not _insert_ignore(conn, notices, {
                "notice_id": event.notice_id, "product_id": product_id,
                "event_type": event_type, "received_at": now,
            }):
                return Applied(Decision(outcome="duplicate_notice", applied=False))
            participant = self._lock_participant(conn, event.channel, event.uid, now)
            live = self._live_call(conn, event.channel)
            decision = lifecycle.decide(event, participant, live, now=now, grace_s=grace_s)
            if not decision.applied:
                return Applied(decision, call_id=live.id if live else None)
            conn.execute(
                participants.update()
                .where(participants.c.channel == event.channel, participants.c.uid == event.uid)
                .values(last_seq=event.seq, present=isinstance(event, CallerJoined),
                        updated_at=now)
            )
            stop = None
            if live is not None and decision.change is not None:
                self._change_call(conn, live, decision, now)
                self._event(conn, live.id, now, "ncs", decision.outcome,
                            {"seq": event.seq, "notice_id": event.notice_id})
                if decision.stop_agent_id:
                    stop = (live.id, decision.stop_agent_id)
            new_call_id = None
            if decision.new_call:
                new_call_id = new_id()
                conn.execute(calls.insert().values(
                    id=new_call_id, channel=event.channel, caller_uid=event.uid,
                    state=lifecycle.STARTING, agent_name=f"{agent_name_prefix}-{new_call_id}",
                    persona=persona, join_seq=event.seq, created_at=now,
                    retry_at=now + WORK_LEASE_S, updated_at=now,
                ))
                self._event(conn, new_call_id, now, "ncs", "caller_joined",
                            {"seq": event.seq, "notice_id": event.notice_id})
            call_id = new_call_id or (live.id if live else None)
            return Applied(decision, call_id=call_id, new_call_id=new_call_id, stop=stop)

    def _lock_participant(self, conn: Connection, channel: str, uid: int,
                          now: float) -> Participant | None:
        created = _insert_ignore(conn, participants, {
            "channel": channel, "uid": uid, "last_seq": None, "present": False,
            "updated_at": now})
        row = conn.execute(
            sa.select(participants.c.last_seq, participants.c.present, participants.c.updated_at)
            .where(participants.c.channel == channel, participants.c.uid == uid)
            .with_for_update()
        ).one()
        if created:
            return None
        return Participant(last_seq=row.last_seq, present=bool(row.present),
                           updated_at=row.updated_at)

    def _live_call(self, conn: Connection, channel: str) -> LiveCall | None:
        row = conn.execute(
            sa.select(calls.c.id, calls.c.state, calls.c.agent_id, calls.c.grace_until)
            .where(calls.c.channel == channel, calls.c.state.in_(lifecycle.LIVE_STATES))
            .order_by(calls.c.created_at.desc())
            .limit(1)
            .with_for_update()
        ).first()
        if row is None:
            return None
        return LiveCall(id=row.id, state=row.state, agent_id=row.agent_id,
                        grace_until=row.grace_until)

    def _change_call(self, conn: Connection, live: LiveCall, decision: Decision,
                     now: float) -> None:
        change = decision.change
        assert change is not None
        values: dict[str, Any] = {"state": change.state, "grace_until": change.grace_until,
                                  "updated_at": now}
        if change.state == lifecycle.STOPPING:
            values.update(end_reason=change.end_reason, ended_at=now,
                          retry_at=now + WORK_LEASE_S)
        conn.execute(calls.update().where(calls.c.id == live.id).values(**values))

    # -- agent start and stop outcomes -------------------------------------------------------

    def agent_started(self, call_id: str, agent_id: str) -> str:
        """Record a join that Agora accepted. Returns "active", or "stop" when the call ended
        while the join was in flight (the caller must then stop the agent)."""
        now = self.clock()
        with self._write() as conn:
            result = conn.execute(
                calls.update()
                .where(calls.c.id == call_id, calls.c.state.in_((lifecycle.STARTING,
                                                                  lifecycle.GRACE)))
                .values(agent_id=agent_id, agent_started_at=now, retry_at=None, updated_at=now,
                        state=sa.case((calls.c.state == lifecycle.STARTING, lifecycle.ACTIVE),
                                      else_=calls.c.state))
            )
            if result.rowcount:
                self._event(conn, call_id, now, "service", "agent_started",
                            {"agent_id": agent_id})
                return "active"
            conn.execute(
                calls.update().where(calls.c.id == call_id)
                .values(agent_id=agent_id, agent_started_at=now, updated_at=now,
                        retry_at=now + WORK_LEASE_S)
            )
            self._event(conn, call_id, now, "service", "agent_started_after_leave",
                        {"agent_id": agent_id})
            return "stop"

    def start_failed(self, call_id: str, *, state: str, reason: str) -> None:
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

    def agent_stopped(self, call_id: str, *, already_gone: bool = False) -> None:
        now = self.clock()
        with self._write() as conn:
            conn.execute(
                calls.update().where(calls.c.id == call_id)
                .values(state=lifecycle.ENDED, retry_at=None, grace_until=None, updated_at=now,
                        ended_at=sa.func.coalesce(calls.c.ended_at, now))
            )
            self._event(conn, call_id, now, "service", "agent_stopped",
                        {"already_gone": already_gone})

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
            if not _insert_ignore(conn, notices, {
                "notice_id": notice_id, "product_id": 17, "event_type": event_type,
                "received_at": now,
            }):
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
            if agent_left and row.state in lifecycle.OPEN_STATES and (
                    row.agent_id is None or row.agent_id == agent_id):
                conn.execute(calls.update().where(calls.c.id == row.id).values(
                    state=lifecycle.ENDED, retry_at=None, grace_until=None, updated_at=now,
                    agent_id=sa.func.coalesce(calls.c.agent_id, agent_id),
                    ended_at=sa.func.coalesce(calls.c.ended_at, now),
                    end_reason=sa.func.coalesce(calls.c.end_reason, "agent_left")))
                return "call_ended_by_agent"
            return "recorded"

    # -- sweeping ----------------------------------------------------------------------------

    def claim_due_work(self, *, limit: int = 50) -> list[CallRecord]:
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
        claimed = []
        with self._write() as conn:
            rows = conn.execute(sa.select(calls).where(due).limit(limit)).all()
            for row in rows:
                values: dict[str, Any] = {"retry_at": now + WORK_LEASE_S, "updated_at": now}
                if row.state == lifecycle.GRACE:
                    values.update(state=lifecycle.STOPPING, end_reason="caller_did_not_return",
                                  ended_at=now)
                result = conn.execute(
                    calls.update().where(calls.c.id == row.id,
                                         calls.c.updated_at == row.updated_at).values(**values))
                if result.rowcount:
                    record = _record({**row._mapping, **values})
                    claimed.append(record)
                    self._event(conn, row.id, now, "sweeper", f"claimed_{row.state}", None)
        return claimed

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

    def timeline(self, call_id: str) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(sa.select(call_events).where(call_events.c.call_id == call_id)
                                .order_by(call_events.c.at, call_events.c.id)).all()
        return [{"at": r.at, "source": r.source, "kind": r.kind,
                 "detail": json.loads(r.detail) if r.detail else None} for r in rows]

    def record_event(self, call_id: str, source: str, kind: str,
                     detail: dict[str, Any] | None = None) -> None:
        with self._write() as conn:
            self._event(conn, call_id, self.clock(), source, kind, detail)

    def _event(self, conn: Connection, call_id: str, at: float, source: str, kind: str,
               detail: dict[str, Any] | None) -> None:
        conn.execute(call_events.insert().values(
            call_id=call_id, at=at, source=source, kind=kind,
            detail=json.dumps(detail, separators=(",", ":")) if detail else None))


def make_engine(url: str) -> Engine:
    """An engine tuned for this workload: SQLite in WAL mode with write transactions that take
    the lock up front (so two workers serialise instead of failing on upgrade), or PostgreSQL
    with pre-pinged pooled connections."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=16, max_overflow=48)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when transactions begin.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            readonly = conn.get_execution_options().get("readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=40,
                            pool_recycle=1800)


def _insert_ignore(conn: Connection, table: sa.Table, values: dict[str, Any]) -> bool:
    """INSERT unless the primary key exists; True when a row was inserted."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    # RETURNING rather than rowcount: psycopg 3 reports -1 rows for ON CONFLICT DO NOTHING.
    first_key = table.primary_key.columns.values()[0]
    statement = insert(table).values(**values).on_conflict_do_nothing().returning(first_key)
    return conn.execute(statement).first() is not None


def _record(mapping: Any) -> CallRecord:
    return CallRecord(**{c.name: mapping[c.name] for c in calls.columns})


def _short(exc: BaseException) -> str:
    """The first line of a database error, without the SQL statement or parameters."""
    original = getattr(exc, "orig", None) or exc
    return str(original).splitlines()[0][:200]
