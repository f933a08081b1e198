"""Calls, participants and notices: a caller's event applied atomically, and what became of the
agent it asked for.

The webhook's path runs here. The rules decide (calls/lifecycle.py) and plan the writes
(calls/plan.py); this module reads what they need and applies the plan in one transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from calls import costs, guards, lifecycle
from calls.lifecycle import CallerEvent, Decision, LiveCall, Participant
from calls.plan import Plan, plan
from store.base import CallRecord, StoreBase, record, run
from store.schema import calls

#: An arbitrary constant naming the lock new calls are admitted under (PostgreSQL).
_ADMISSION_LOCK_KEY = 0x61646D6974  # "admit"
#: An agent lives at most 72 hours: only calls made since then can count for today's agent time.
_AGENT_LIFETIME_S = 259_200


class Notice(NamedTuple):
    """A processed NCS notice, as the notices table keeps it for spotting copies."""

    notice_id: str
    product_id: int
    event_type: int
    received_at: float

    def values(self) -> dict[str, Any]:
        return self._asdict()


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


class CallerEvents(StoreBase):
    """Caller events and agent outcomes."""

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
        tools_token_hash: str | None = None,
    ) -> Applied:
        """Record the notice and apply the event to the channel's live call, atomically, under
        the store's write lock; returns what it did once committed. A call that needs an agent
        is committed as ``starting`` with its work lease: its join goes out after the commit.
        ``tools_token_hash``, when given, is kept with the call whose agent is to start, in the
        same transaction (the token its join hands the agent for the MCP endpoint)."""
        now = self.clock()
        notice = Notice(event.notice_id, product_id, event_type, now)
        sql = self._sql
        with self._write() as conn:
            if run(conn, sql.notice_seen, {"product_id": product_id,
                                           "notice_id": event.notice_id}).fetchone() is not None:
                return Applied(Decision(outcome="duplicate_notice", applied=False))
            participant = self._participant(conn, event, now)
            live_row = run(conn, sql.live_call, {"channel": event.channel}).fetchone()
            live = LiveCall(*live_row) if live_row else None
            decision = lifecycle.decide(event, participant, live, now=now, grace_s=grace_s)
            usage = new_call_id = None
            if decision.applied and decision.new_call:
                if limits is not None and limits.active:
                    if self.dialect == "postgresql":
                        # One admission at a time, or two callers on different channels could
                        # both see the last free place.
                        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(
                            _ADMISSION_LOCK_KEY)))
                    usage = self._usage(conn, now, limits)
                new_call_id = self._free_id(conn, new_id)
            planned = plan(event, decision, live, now=now, agent_name_prefix=agent_name_prefix,
                           new_call_id=new_call_id, persona=persona, usage=usage, limits=limits,
                           work_lease_s=self.work_lease_s)
            start = self._apply(conn, event, planned, now)
            if start is None:
                self._remember(conn, notice)
            elif tools_token_hash is not None:
                run(conn, sql.insert_call_token, {"token_hash": tools_token_hash,
                                                  "call_id": start.id, "created_at": now})
        # An agent to start: its notice is written with the start's outcome, after the join
        # (until then a copy of this event is a duplicate by its clientSeq).
        return Applied(decision, call_id=planned.call_id, start=start, stop=planned.stop,
                       refused=planned.refused, notice=notice if start is not None else None)

    def _participant(self, conn: Connection, event: CallerEvent,
                     now: float) -> Participant | None:
        """The caller's row. PostgreSQL: creating or touching it locks it until commit, so every
        event of this channel's caller is decided one at a time. SQLite: a plain read, as BEGIN
        IMMEDIATE already holds the database's write lock."""
        seen = run(conn, self._sql.read_participant, {
            "channel": event.channel, "uid": event.uid, "now": now}).fetchone()
        if seen is None:
            return None
        last_seq, present, updated_at = seen
        if last_seq is None:
            return None
        return Participant(last_seq=last_seq, present=bool(present), updated_at=updated_at)

    def _free_id(self, conn: Connection, new_id: Callable[[], str]) -> str:
        """new_id's first id that no call has (new_id may derive it from the event)."""
        call_id = new_id()
        while run(conn, self._sql.call_exists, {"call_id": call_id}).fetchone():
            call_id = new_id()
        return call_id

    def _apply(self, conn: Connection, event: CallerEvent, planned: Plan,
               now: float) -> CallRecord | None:
        """Write ``planned``; return the call whose agent is now to be started, if any."""
        sql = self._sql
        if planned.participant is not None:
            seq, present = planned.participant
            run(conn, sql.save_participant, {
                "channel": event.channel, "uid": event.uid, "last_seq": seq,
                "present": present, "updated_at": now})
        live = planned.live
        if live is not None and live.caller_seen:
            run(conn, sql.caller_seen, {"call_id": live.call_id, "now": now})
        if live is not None and live.change is not None:
            change = live.change
            params = {"call_id": live.call_id, "state": change.state,
                      "grace_until": change.grace_until, "now": now}
            if change.state in (lifecycle.STOPPING, lifecycle.ENDED):
                run(conn, sql.end_call, {**params, "end_reason": change.end_reason,
                                         "retry_at": live.retry_at})
            else:
                run(conn, sql.update_state, params)
        start = None
        if planned.start_live_call and live is not None:
            row = run(conn, sql.call_by_id, {"call_id": live.call_id}).fetchone()
            assert row is not None  # read under the same lock a moment ago
            start = CallRecord._make(row)
        if planned.new_call is not None:
            values = dataclasses.asdict(planned.new_call)
            run(conn, sql.insert_call, values)
            if planned.start_new_call:
                start = record(values)
        for entry in planned.timeline:
            self._event(conn, entry.call_id, now, entry.source, entry.kind, entry.detail)
        for kind, call_id in planned.emit:
            self._emit(conn, kind, call_id, now)
        return start

    def _remember(self, conn: Connection, notice: Notice) -> None:
        """Record a caller's notice (a copy may have beaten it: then nothing changes)."""
        run(conn, self._sql.remember_notice, notice.values())

    def _usage(self, conn: Connection, now: float,
               limits: guards.Limits | None = None) -> guards.Usage:
        """What the limits in force need: each query runs only when its limit is set (the
        day's agent time reads every call of the day)."""
        open_calls = seconds = 0
        if limits is None or limits.max_concurrent_calls:
            open_calls = run(conn, self._sql.count_open).fetchone()[0]
        if limits is None or limits.daily_agent_minutes:
            day = guards.utc_day_start(now)
            seconds = run(conn, self._sql.agent_seconds, {
                "now": now, "day": day, "made_after": day - _AGENT_LIFETIME_S}).fetchone()[0]
        spent = 0.0
        if limits is not None and limits.daily_budget:
            day = guards.utc_day_start(now)
            rows = run(conn, self._sql.agent_seconds_priced, {
                "now": now, "day": day, "made_after": day - _AGENT_LIFETIME_S}).fetchall()
            spent = costs.spend(((persona, direction == "outbound" or not no_gateway,
                                  float(seconds or 0))
                                 for persona, direction, no_gateway, seconds in rows),
                                limits.rates)
        return guards.Usage(open_calls=int(open_calls), agent_seconds_today=float(seconds or 0),
                            spent_today=spent)

    def usage(self, limits: guards.Limits | None = None) -> guards.Usage:
        """Calls open now and agent seconds spent today (for the SIP lookup and outbound)."""
        with self._read() as conn:
            return self._usage(conn, self.clock(), limits)

    # -- agent start and stop outcomes -------------------------------------------------------

    def agent_started(self, call_id: str, agent_id: str, *, notice: Notice | None = None) -> str:
        """Record a join that Agora accepted (and ``notice``, the event that asked for it).
        Returns "active", or "stop" when the call ended while the join was in flight (the
        caller must then stop the agent)."""
        now = self.clock()
        with self._write() as conn:
            started = run(conn, self._sql.agent_started, {
                "call_id": call_id, "agent_id": agent_id, "now": now}).fetchone()
            if started is not None:
                outcome, kind = "active", "agent_started"
                self._emit(conn, "started", call_id, now)
            else:
                run(conn, self._sql.agent_started_late, {
                    "call_id": call_id, "agent_id": agent_id, "now": now,
                    "retry_at": now + self.work_lease_s})
                outcome, kind = "stop", "agent_started_after_leave"
            self._event(conn, call_id, now, "service", kind, {"agent_id": agent_id})
            if notice is not None:
                # Last, after the call row: every transaction that writes a caller's notice
                # takes the call row's lock first (PostgreSQL), so none waits on the other.
                self._remember(conn, notice)
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
            self._emit(conn, "ended", call_id, now)
            if notice is not None:
                self._remember(conn, notice)  # after the call row, as in agent_started

    def record_notice(self, notice: Notice) -> None:
        """Remember a processed notice whose event started nothing after all."""
        with self._write() as conn:
            self._remember(conn, notice)

    def agent_stopped(self, call_id: str, *, already_gone: bool = False) -> None:
        now = self.clock()
        with self._write() as conn:
            run(conn, self._sql.agent_stopped, {"call_id": call_id, "now": now})
            self._emit(conn, "ended", call_id, now)
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
            if run(conn, self._sql.insert_notice, {
                    "notice_id": notice_id, "product_id": 17, "event_type": event_type,
                    "received_at": now}).fetchone() is None:
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
                self._emit(conn, "transcript", row.id, now)
            if agent_left and row.state in lifecycle.OPEN_STATES and (
                    row.agent_id is None or row.agent_id == agent_id):
                conn.execute(calls.update().where(calls.c.id == row.id).values(
                    state=lifecycle.ENDED, retry_at=None, grace_until=None, updated_at=now,
                    agent_id=sa.func.coalesce(calls.c.agent_id, agent_id),
                    ended_at=sa.func.coalesce(calls.c.ended_at, now),
                    end_reason=sa.func.coalesce(calls.c.end_reason, "agent_left")))
                self._emit(conn, "ended", row.id, now)
                return "call_ended_by_agent"
            return "recorded"
