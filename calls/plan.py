"""What a caller's event writes: the lifecycle's decision turned into planned writes, no I/O.

The store reads what the rules need (the caller's last ``clientSeq``, the channel's live call,
usage when a cost guard applies), asks :func:`calls.lifecycle.decide` for the decision and
:func:`plan` for the writes, and applies them in the same transaction. Everything here is a
function of its arguments: the cost guard, the new call's record, the agent's name, the timeline
entries and the operator's events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from calls import guards, lifecycle
from calls.lifecycle import CallChange, CallerEvent, CallerJoined, Decision, LiveCall

#: WORK_LEASE_S's default: how long a worker owns a call's pending start or stop before the
#: sweeper may take it over. It exceeds the longest a join can take inside its budget (retries
#: plus per-request timeouts).
WORK_LEASE_S = 30.0


def agent_name(prefix: str, call_id: str) -> str:
    """The agent's name: deterministic, so a join sent again meets 409 and adopts the agent."""
    return f"{prefix}-{call_id}"


@dataclass(frozen=True)
class NewCall:
    """The row of a call a caller's join begins (the calls table's columns)."""

    id: str
    channel: str
    caller_uid: int
    state: str
    agent_name: str
    persona: str | None
    join_seq: int
    created_at: float
    retry_at: float | None
    updated_at: float
    caller_joined_at: float
    ended_at: float | None
    end_reason: str | None
    #: The join's notice: the row doubles as the timeline's caller_joined entry.
    join_notice_id: str


@dataclass(frozen=True)
class LiveCallWrite:
    """What changes on the channel's live call."""

    call_id: str
    #: The caller is (back) in the channel: note when first seen.
    caller_seen: bool
    change: CallChange | None
    #: The work lease that comes with the change (a call now ``stopping``).
    retry_at: float | None = None


@dataclass(frozen=True)
class TimelineEntry:
    call_id: str
    source: str
    kind: str
    detail: dict[str, Any] | None


@dataclass(frozen=True)
class Plan:
    """The writes of one caller event, and what to do once they are committed."""

    decision: Decision
    #: (seq, present) for the caller's participant row; None leaves it alone.
    participant: tuple[int, bool] | None = None
    live: LiveCallWrite | None = None
    new_call: NewCall | None = None
    timeline: tuple[TimelineEntry, ...] = ()
    #: Operator events ("started", "ended", "transcript") by call id.
    emit: tuple[tuple[str, str], ...] = ()
    #: Start the agent of the live call (True) or of the new call (its row is new_call).
    start_live_call: bool = False
    start_new_call: bool = False
    stop: tuple[str, str] | None = None
    refused: str | None = None

    @property
    def call_id(self) -> str | None:
        if self.new_call is not None:
            return self.new_call.id
        return self.live.call_id if self.live is not None else None

    @property
    def starts_agent(self) -> bool:
        """An agent is to be started: the event's notice is recorded with the start's outcome
        (until then a copy of the event is a duplicate by its clientSeq)."""
        return self.start_live_call or self.start_new_call


def plan(
    event: CallerEvent,
    decision: Decision,
    live: LiveCall | None,
    *,
    now: float,
    agent_name_prefix: str,
    new_call_id: str | None = None,
    persona: str | None = None,
    usage: guards.Usage | None = None,
    limits: guards.Limits | None = None,
    work_lease_s: float = WORK_LEASE_S,
) -> Plan:
    """The writes of ``event``, decided as ``decision`` against the channel's ``live`` call.
    ``new_call_id`` is the free id for a call the decision begins; ``usage`` is read only when
    ``limits`` apply to it."""
    if not decision.applied:
        return Plan(decision, live=LiveCallWrite(live.id, False, None) if live else None)
    joined = isinstance(event, CallerJoined)
    timeline: list[TimelineEntry] = []
    emit: list[tuple[str, str]] = []
    live_write = stop = None
    if live is not None:
        change = decision.change
        retry_at = now + work_lease_s if change is not None and \
            change.state == lifecycle.STOPPING else None
        live_write = LiveCallWrite(live.id, caller_seen=joined, change=change, retry_at=retry_at)
        if change is not None:
            if change.state == lifecycle.ENDED:
                emit.append(("ended", live.id))
            timeline.append(TimelineEntry(live.id, "ncs", decision.outcome,
                                          {"seq": event.seq, "notice_id": event.notice_id}))
            if decision.stop_agent_id:
                stop = (live.id, decision.stop_agent_id)
    new_call = refused = None
    if decision.new_call:
        if new_call_id is None:
            raise ValueError("a decision that begins a call needs the new call's id")
        if limits is not None and limits.active and usage is not None:
            refused = guards.refusal_reason(usage, limits)
        new_call = NewCall(
            id=new_call_id, channel=event.channel, caller_uid=event.uid,
            state=lifecycle.REFUSED if refused else lifecycle.STARTING,
            agent_name=agent_name(agent_name_prefix, new_call_id), persona=persona,
            join_seq=event.seq, created_at=now,
            retry_at=None if refused else now + work_lease_s, updated_at=now,
            caller_joined_at=now, ended_at=now if refused else None, end_reason=refused,
            join_notice_id=event.notice_id)
        if refused:
            timeline.append(TimelineEntry(new_call_id, "service", "call_refused",
                                          {"reason": refused}))
            emit.append(("ended", new_call_id))
    return Plan(
        decision, participant=(event.seq, joined), live=live_write, new_call=new_call,
        timeline=tuple(timeline), emit=tuple(emit),
        start_live_call=decision.start_live_call and live is not None,
        start_new_call=new_call is not None and not refused, stop=stop, refused=refused)
