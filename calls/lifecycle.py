"""What a caller's join or leave means for the call in that channel: pure rules, no I/O.

The store calls :func:`decide` inside one transaction that holds the channel's participant row, so
the rules see a consistent picture even when several workers or machines get events of the same
call at once. Everything here is a function of its arguments, which keeps it testable by
property-based tests.

Rules (issue 2, section 4):

a. A call lives in one channel. It begins with the caller's join when the channel has no live call
   (or was made before the join, at ring time, and then starts its agent on the join).
   It ends when the caller leaves for good, or stays away longer than the rejoin grace window after
   a transient leave. A rejoin inside the window continues the same call and agent.
b. At most one agent per call: a call is created at most once per join, and only a new call starts
   an agent.
c. Events apply in ``clientSeq`` order per channel and uid; an event not newer than the last
   applied one is dropped, so a join delivered after its own leave starts nothing.
d. A leave while the agent's start is in flight moves the call to ``stopping`` with no agent id;
   whoever finishes the start sees that and stops the agent at once.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Leave reasons after which the client usually reconnects by itself (NCS reason codes: 2 timeout,
#: 4 server-side reconnect, 9 multiple IPs, 10 network, 99 unknown network problem).
TRANSIENT_LEAVE_REASONS = frozenset({2, 4, 9, 10, 99})

#: Call states. ``pending`` is a call that exists before its caller joins (made at the SIP
#: gateway's ring-time lookup) and has no agent yet; ``starting``/``active``/``grace`` are live
#: (the caller is, or may come back, in the channel); ``stopping`` means the call is over and its
#: agent is being stopped.
PENDING = "pending"
#: An outbound call waiting for its time (outbound/): no agent, no slot, dialled when due.
SCHEDULED = "scheduled"
STARTING, ACTIVE, GRACE, STOPPING = "starting", "active", "grace", "stopping"
ENDED, REFUSED, FAILED = "ended", "refused", "failed"
LIVE_STATES = (PENDING, STARTING, ACTIVE, GRACE)
OPEN_STATES = (*LIVE_STATES, STOPPING)
FINAL_STATES = (ENDED, REFUSED, FAILED)

#: How long the last applied clientSeq of an absent caller is remembered. Past this, a join with a
#: smaller clientSeq is taken as a new client session rather than a stale event. Agora advises
#: keeping a user's record for 60 s after a leave; NCS gives up retrying well within 10 minutes.
SEQ_MEMORY_S = 600.0


@dataclass(frozen=True)
class CallerJoined:
    channel: str
    uid: int
    seq: int
    notice_id: str


@dataclass(frozen=True)
class CallerLeft:
    channel: str
    uid: int
    seq: int
    notice_id: str
    reason: int | None = None


CallerEvent = CallerJoined | CallerLeft


@dataclass(frozen=True)
class Participant:
    """What the store remembers of a caller uid in a channel."""

    last_seq: int | None
    present: bool
    updated_at: float


@dataclass(frozen=True)
class LiveCall:
    """The channel's live call, as far as the rules need it."""

    id: str
    state: str
    agent_id: str | None
    grace_until: float | None


@dataclass(frozen=True)
class CallChange:
    """New values for the live call's state columns (None leaves a column unchanged)."""

    state: str
    grace_until: float | None = None
    end_reason: str | None = None


@dataclass(frozen=True)
class Decision:
    """The outcome of one caller event."""

    outcome: str
    applied: bool = True
    change: CallChange | None = None
    new_call: bool = False
    #: start the agent of the live call (a call made before its caller joined)
    start_live_call: bool = False
    #: the agent to stop once the transaction has committed
    stop_agent_id: str | None = None

    @property
    def ignored(self) -> bool:
        return not self.applied


def effective_last_seq(participant: Participant | None, now: float) -> int | None:
    """The clientSeq that later events must exceed, or None when there is nothing to compare."""
    if participant is None or participant.last_seq is None:
        return None
    if not participant.present and now - participant.updated_at > SEQ_MEMORY_S:
        return None
    return participant.last_seq


def decide(
    event: CallerEvent,
    participant: Participant | None,
    call: LiveCall | None,
    *,
    now: float,
    grace_s: float,
) -> Decision:
    """Apply one caller event to the channel's live call (``call`` is None when there is none)."""
    last_seq = effective_last_seq(participant, now)
    if last_seq is not None and event.seq <= last_seq:
        return Decision(outcome="duplicate" if event.seq == last_seq else "stale", applied=False)

    if isinstance(event, CallerJoined):
        if call is None:
            return Decision(outcome="call_started", new_call=True)
        if call.state == PENDING:
            return Decision(outcome="call_answered", change=CallChange(state=STARTING),
                            start_live_call=True)
        if call.state == GRACE:
            if call.grace_until is not None and now <= call.grace_until:
                resumed = ACTIVE if call.agent_id else STARTING
                return Decision(outcome="rejoined", change=CallChange(state=resumed))
            # The grace window ran out before the sweeper closed the call: close it and begin anew.
            return Decision(
                outcome="call_restarted",
                change=CallChange(state=STOPPING, end_reason="rejoin_grace_expired"),
                stop_agent_id=call.agent_id,
                new_call=True,
            )
        return Decision(outcome="already_in_call")

    if call is None:
        return Decision(outcome="no_live_call")
    if call.state == PENDING:
        # No agent was ever asked for: the call simply ends.
        return Decision(outcome="call_ending",
                        change=CallChange(state=ENDED, end_reason=leave_reason_text(event.reason)))
    if event.reason in TRANSIENT_LEAVE_REASONS and grace_s > 0:
        return Decision(
            outcome="caller_away",
            change=CallChange(state=GRACE, grace_until=now + grace_s),
        )
    return Decision(
        outcome="call_ending",
        change=CallChange(state=STOPPING, end_reason=leave_reason_text(event.reason)),
        stop_agent_id=call.agent_id,
    )


def leave_reason_text(reason: int | None) -> str:
    """A readable end reason for a caller's leave, from NCS's reason codes."""
    names = {
        0: "caller_left_other",
        1: "caller_hung_up",
        2: "caller_timed_out",
        3: "caller_removed",
        4: "caller_reconnect_failed",
        5: "caller_joined_elsewhere",
        9: "caller_network_changed",
        10: "caller_network_lost",
        12: "caller_token_expired",
        99: "caller_network_lost",
        999: "caller_abnormal",
    }
    if reason is None:
        return "caller_left"
    return names.get(reason, f"caller_left_reason_{reason}")
