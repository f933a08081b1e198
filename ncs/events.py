"""Turn a verified NCS body into a typed event. The one place that decides what an event means.

Route on ``productId`` before ``eventType``: ConvoAI (productId 17) reuses the numbers 101-112
with meanings of its own (shared/reference/ncs-sip-token.md, A.6).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from calls.lifecycle import CallerEvent, CallerJoined, CallerLeft
from observability.metrics import OTHER, UNKNOWN

RTC_PRODUCT = 1
CONVOAI_PRODUCT = 17
#: 103 broadcaster, 105 audience, 107 communication-profile join; 104/106/108 the leaves. Which
#: pair a phone leg produces depends on the SDK and profile, so all are treated alike.
JOIN_EVENTS = frozenset({103, 105, 107})
LEAVE_EVENTS = frozenset({104, 106, 108})
CONVOAI_EVENTS = {101: "agent_joined", 102: "agent_left", 103: "agent_history",
                  104: "agent_token_expiring", 110: "agent_error", 111: "agent_metrics",
                  112: "turns_finished", 201: "inbound_call_state", 202: "outbound_call_state"}

#: ConvoAI telephony's call-state events (reference 4.5): the call's direction, and the states
#: each may report. TRANSFERED is Agora's spelling.
CALL_STATE_EVENTS = {201: "inbound", 202: "outbound"}
CALL_STATES = {
    "inbound": frozenset({"START", "ANSWERED", "TRANSFERED", "HANGUP"}),
    "outbound": frozenset({"START", "CALLING", "RINGING", "ANSWERED", "HANGUP"}),
}

#: NCS event types worth a metrics label of their own, per productId: RTC channel events
#: 101-112 and ConvoAI's agent notifications. Any other (product, event) pair is "other".
KNOWN_EVENTS: dict[int, frozenset[int]] = {
    RTC_PRODUCT: frozenset(range(101, 113)),
    CONVOAI_PRODUCT: frozenset(CONVOAI_EVENTS),
}

#: A whole number as text; ``\d`` is any Unicode decimal digit, all of which int() reads.
_INTEGER_TEXT = re.compile(r"\s*-?\d+\s*")


class EnvelopeError(ValueError):
    """The body is not JSON or lacks the NCS envelope fields."""


@dataclass(frozen=True)
class Envelope:
    notice_id: str
    product_id: int
    event_type: int
    notify_ms: int | None
    payload: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class AgentEvent:
    """One of ConvoAI's own notifications about an agent (productId 17)."""

    kind: str
    event_type: int
    agent_id: str | None
    name: str | None
    channel: str | None
    labels: dict[str, str]
    payload: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class CallStateEvent:
    """ConvoAI telephony's report of a phone call's state (productId 17, events 201 and 202).
    ``kind`` is what goes on the call's timeline: ``call_`` and the state, lowercased."""

    direction: str
    state: str
    event_type: int
    agent_id: str | None
    name: str | None
    channel: str | None
    labels: dict[str, str]
    report_ms: int | None
    reason: str | None

    @property
    def kind(self) -> str:
        return f"call_{self.state.lower()}"


@dataclass(frozen=True)
class Ignored:
    """A well-formed event this service does not act on, with the reason."""

    reason: str


Event = CallerEvent | AgentEvent | CallStateEvent | Ignored


def parse_envelope(body: bytes) -> Envelope:
    """Parse and shape-check the envelope; raise EnvelopeError with a specific message."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: nesting deeper than the parser's stack, a few kilobytes of "[[[[".
        raise EnvelopeError("body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise EnvelopeError("body must be a JSON object")
    missing = [k for k in ("noticeId", "productId", "eventType", "payload") if k not in data]
    if missing:
        raise EnvelopeError(f"missing envelope field(s): {', '.join(missing)}")
    notice_id = data["noticeId"]
    if not isinstance(notice_id, str | int) or isinstance(notice_id, bool) or \
            not str(notice_id).strip() or len(str(notice_id)) > 128 or \
            not _storable(str(notice_id)):
        raise EnvelopeError("noticeId must be a non-empty string of at most 128 characters")
    product_id = _as_int(data["productId"], "productId")
    event_type = _as_int(data["eventType"], "eventType")
    if not isinstance(data["payload"], dict):
        raise EnvelopeError("payload must be a JSON object")
    notify_ms = data.get("notifyMs")
    return Envelope(
        notice_id=str(notice_id), product_id=product_id, event_type=event_type,
        notify_ms=notify_ms if isinstance(notify_ms, int) and not isinstance(notify_ms, bool)
        else None,
        payload=data["payload"],
    )


def classify(envelope: Envelope, *, pstn_uid: int) -> Event:
    """Say what the event means for this service."""
    if envelope.product_id == CONVOAI_PRODUCT:
        return _agent_event(envelope)
    if envelope.product_id != RTC_PRODUCT:
        return Ignored(f"productId {envelope.product_id} is not handled")
    is_join = envelope.event_type in JOIN_EVENTS
    if not is_join and envelope.event_type not in LEAVE_EVENTS:
        return Ignored(f"RTC eventType {envelope.event_type} is not a user join or leave")
    payload = envelope.payload
    uid = _optional_int(payload.get("uid"))
    if uid != pstn_uid:
        return Ignored(f"uid is not the phone caller's (PSTN_UID {pstn_uid})")
    channel = payload.get("channelName")
    if not isinstance(channel, str) or not channel or len(channel) > 128 or \
            not _storable(channel):
        return Ignored("payload.channelName is missing or not a channel name")
    seq = _sequence(payload, envelope)
    if seq is None:
        return Ignored("payload has no clientSeq or ts to order it by")
    if is_join:
        return CallerJoined(channel=channel, uid=uid, seq=seq, notice_id=envelope.notice_id)
    return CallerLeft(channel=channel, uid=uid, seq=seq, notice_id=envelope.notice_id,
                      reason=_optional_int(payload.get("reason")))


def _agent_event(envelope: Envelope) -> AgentEvent | CallStateEvent | Ignored:
    if envelope.event_type in CALL_STATE_EVENTS:
        return _call_state_event(envelope)
    kind = CONVOAI_EVENTS.get(envelope.event_type)
    if kind is None:
        return Ignored(f"ConvoAI eventType {envelope.event_type} is not known")
    payload = envelope.payload
    return AgentEvent(
        kind=kind, event_type=envelope.event_type,
        agent_id=_optional_str(payload.get("agent_id")),
        name=_optional_str(payload.get("name")),
        channel=_optional_str(payload.get("channel")),
        labels=_labels(payload), payload=payload,
    )


def _call_state_event(envelope: Envelope) -> CallStateEvent | Ignored:
    """201/202: the phone call of an agent started by ConvoAI's telephony changed state."""
    direction = CALL_STATE_EVENTS[envelope.event_type]
    payload = envelope.payload
    state = payload.get("state")
    state = state.strip().upper() if isinstance(state, str) else ""
    if state not in CALL_STATES[direction]:
        return Ignored(f"payload.state is not an {direction} call state")
    agent_id = _optional_str(payload.get("agent_id"))
    channel = _optional_str(payload.get("channel"))
    if agent_id is None and channel is None:
        return Ignored("payload has neither agent_id nor channel to find the call by")
    reason = payload.get("reason")
    return CallStateEvent(
        direction=direction, state=state, event_type=envelope.event_type, agent_id=agent_id,
        name=_optional_str(payload.get("name")), channel=channel, labels=_labels(payload),
        report_ms=_optional_int(payload.get("report_ms")),
        # Not in Agora's payload list (reference 4.5), kept if it comes: short text only.
        reason=str(reason)[:64] if isinstance(reason, str | int) and not isinstance(
            reason, bool) and _storable(str(reason)) else None,
    )


def _labels(payload: dict[str, Any]) -> dict[str, str]:
    labels = payload.get("labels")
    return {str(k): str(v) for k, v in labels.items() if _storable(str(k)) and
            _storable(str(v))} if isinstance(labels, dict) else {}


def _sequence(payload: dict[str, Any], envelope: Envelope) -> int | None:
    """clientSeq orders a user's events. Agora documents it on every join and leave; should it be
    missing (an assumption we do not expect to need), fall back to the event's ``ts`` in ms."""
    seq = _optional_int(payload.get("clientSeq"))
    if seq is not None:
        return seq
    ts = _optional_int(payload.get("ts"))
    if ts is None or abs(ts) >= 2**63 // 1000:
        return None  # a ts this large would not fit the store's 64-bit sequence column
    return ts * 1000


def _as_int(value: Any, name: str) -> int:
    result = _optional_int(value)
    if result is None:
        raise EnvelopeError(f"{name} must be an integer")
    return result


def _optional_int(value: Any) -> int | None:
    """An integer from a JSON number or a string of digits (NCS sends uid either way)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and len(value) < 24 and _INTEGER_TEXT.fullmatch(value):
        value = int(value)
    if isinstance(value, int):
        # The store keeps these in 64-bit columns; anything wider is not a real NCS value.
        return value if abs(value) < 2**63 else None
    return None


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value and _storable(value) else None


def _storable(text: str) -> bool:
    """Text a database can hold: no NUL (PostgreSQL refuses it) and no lone surrogate (JSON can
    escape one, as \\ud800, but it has no UTF-8 form)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def delivery_labels(product: int | None, event: int | None) -> tuple[str, str]:
    """A delivery's bounded metrics labels: ``("1", "103")`` for a known event, OTHER for any
    other product or event, UNKNOWN for what was not read (a body whose signature failed)."""
    if product is None:
        product_label = UNKNOWN
    else:
        product_label = str(product) if product in KNOWN_EVENTS else OTHER
    if event is None:
        event_label = UNKNOWN
    elif product is None:
        event_label = OTHER
    else:
        event_label = str(event) if event in KNOWN_EVENTS.get(product, ()) else OTHER
    return product_label, event_label
