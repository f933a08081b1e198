"""Calls as records: made before their caller joins (SIP), ended for other reasons, read,
swept for due work, and erased.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from calls import lifecycle
from calls.plan import agent_name
from store.base import CALL_COLUMNS, CallRecord, StoreBase, record
from store.schema import call_analyses, call_events, calls, notices, outbox


class CallRecords(StoreBase):
    """Calls as records."""

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
            "agent_name": agent_name(agent_name_prefix, call_id), "persona": persona,
            "created_at": now, "updated_at": now, "direction": direction,
            "retry_at": now + self.work_lease_s if state == lifecycle.STARTING else None,
            "caller_number": caller_number, "called_number": called_number,
            "gateway_callid": gateway_callid,
            "variables": json.dumps(variables, separators=(",", ":")) if variables else None,
        }
        with self._write() as conn:
            conn.execute(calls.insert().values(**values))
            self._event(conn, call_id, now, "service", f"call_created_{direction}", {
                "caller_number": caller_number, "called_number": called_number,
                "gateway_callid": gateway_callid, "persona": persona})
        return record({c: values.get(c) for c in CALL_COLUMNS})

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
        return record(row._mapping) if row else None

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
                retry_at=now + self.work_lease_s if state == lifecycle.STOPPING else None))
            self._event(conn, call_id, now, "service", "call_ending", {"reason": reason})
            if state == lifecycle.ENDED:
                self._emit(conn, "ended", call_id, now)
            return True, row.agent_id

    def count_open_calls(self) -> int:
        with self._read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(calls).where(
                calls.c.state.in_(lifecycle.OPEN_STATES))).scalar_one()

    def ended_agent_seconds(self) -> list[tuple[str | None, bool, float]]:
        """(persona, phone leg, agent seconds) of every ended call the store still holds, summed
        by what prices them (calls/costs.py): the cost metric's source, read when scraped."""
        no_gateway = calls.c.gateway_callid.is_(None)
        query = sa.select(calls.c.persona, calls.c.direction, no_gateway.label("no_gateway"),
                          sa.func.sum(calls.c.ended_at - calls.c.agent_started_at)).where(
            calls.c.ended_at.is_not(None), calls.c.agent_started_at.is_not(None)).group_by(
            calls.c.persona, calls.c.direction, no_gateway)
        with self._read() as conn:
            return [(persona, direction == "outbound" or not no_gw, max(0.0, float(s or 0)))
                    for persona, direction, no_gw, s in conn.execute(query)]

    # -- sweeping ----------------------------------------------------------------------------

    def claim_due_work(self, *, limit: int = 50,
                       caller_wait_s: float | None = None) -> list[CallRecord]:
        """Take over calls whose pending work is due: grace windows that ran out, stops that
        failed or whose worker vanished, and starts left half done. Each returned call is leased
        to the caller for the work lease, WORK_LEASE_S (a conditional update, so only one worker
        gets it)."""
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
                values: dict[str, Any] = {"retry_at": now + self.work_lease_s, "updated_at": now}
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
                        self._emit(conn, "ended", row.id, now)
                result = conn.execute(
                    calls.update().where(calls.c.id == row.id,
                                         calls.c.updated_at == row.updated_at).values(**values))
                if result.rowcount:
                    claimed.append(record({**row._mapping, **values}))
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
        return record(row._mapping) if row else None

    def calls_in_channel(self, channel: str) -> list[CallRecord]:
        with self._read() as conn:
            rows = conn.execute(sa.select(calls).where(calls.c.channel == channel)
                                .order_by(calls.c.created_at)).all()
        return [record(r._mapping) for r in rows]

    def list_calls(self, *, states: list[str] | None = None, persona: str | None = None,
                   number: str | None = None,
                   channel: str | None = None, since: float | None = None,
                   until: float | None = None, limit: int = 50,
                   after: tuple[float, str] | None = None,
                   success: bool | None = None) -> list[CallRecord]:
        """Newest first. ``after`` is the (created_at, id) of the last call of the previous page;
        ``success`` keeps calls whose post-call analysis gave that verdict."""
        query = sa.select(calls).order_by(calls.c.created_at.desc(), calls.c.id.desc())
        if success is not None:
            query = query.join(call_analyses, call_analyses.c.call_id == calls.c.id).where(
                call_analyses.c.success == success)
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
        return [record(r._mapping) for r in rows]

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

    def event_kinds(self, call_id: str, source: str) -> set[str]:
        """The kinds of the events one source put on a call's timeline (what ConvoAI's
        telephony reported of the call, say), without reading their details."""
        with self._read() as conn:
            return set(conn.execute(sa.select(call_events.c.kind).distinct().where(
                call_events.c.call_id == call_id, call_events.c.source == source)).scalars())

    def record_history(self, call_id: str, contents: list[dict[str, Any]], *,
                       redacted: dict[str, int] | None = None) -> None:
        """The conversation fetched from ConvoAI just before its agent is stopped, already
        redacted by the caller; ``redacted`` counts what was removed, by kind (None: no
        redaction for this persona)."""
        now = self.clock()
        detail: dict[str, Any] = {"contents": contents}
        if redacted is not None:
            detail["redacted"] = redacted
        with self._write() as conn:
            self._event(conn, call_id, now, "service", "agent_history", detail)
            self._emit(conn, "transcript", call_id, now)

    def call_by_agent_id(self, agent_id: str) -> CallRecord | None:
        with self._read() as conn:
            row = conn.execute(sa.select(calls).where(calls.c.agent_id == agent_id)
                               .order_by(calls.c.created_at.desc()).limit(1)).first()
        return record(row._mapping) if row else None

    def calls_in_states(self, states: tuple[str, ...], *, limit: int = 1000) -> list[CallRecord]:
        with self._read() as conn:
            rows = conn.execute(sa.select(calls).where(calls.c.state.in_(states))
                                .order_by(calls.c.created_at).limit(limit)).all()
        return [record(r._mapping) for r in rows]

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
