"""Simulated phone callers: the RTC side of a call (NCS productId 1, events 103 and 104).

A call puts a uid in a channel (the SIP gateway leg of a real call), sends "broadcaster join"
(103) at once and "broadcaster leave" (104) after ``duration_s``. Knobs reproduce NCS's delivery
quirks: extra copies with the same noticeId, a redundant copy under a new noticeId, a stale join
re-delivered after the leave (new noticeId, old clientSeq), or a leave that never arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.ncs_sender import Delivery
from sandbox.state import Presence, World

PLATFORM_LINUX = 6  # what a server-side SDK (the SIP gateway) reports
#: NCS sends ``clientType`` with (and only with) platform 6. Agora documents 3 (on-premise
#: recording), 8 (applets) and 10 (cloud recording), none for a SIP/PSTN leg; we ASSUME 2, the
#: ``rtc.client_type`` Agora's own gateway code sets for PSTN (reference ncs-sip-token.md A.3).
CLIENT_TYPE_PSTN = 2
JOIN, LEAVE = 103, 104
_SPEC_TYPES: dict[str, tuple[type, ...]] = {
    "channel": (str,), "uid": (int,), "duration_s": (int, float, type(None)),
    "leave_reason": (int,), "duplicates": (int,), "redundant_copy": (bool,),
    "late_join_copy": (bool,), "drop_leave": (bool,),
}


class CallSpecError(ValueError):
    """POST /_sandbox/calls got a body it cannot simulate."""


@dataclass
class Call:
    """One simulated caller and the deliveries made on its behalf."""

    id: str
    channel: str
    uid: int
    duration_s: float | None
    leave_reason: int
    duplicates: int
    redundant_copy: bool
    late_join_copy: bool
    drop_leave: bool
    sid: str
    joined_at: float
    join_seq: int
    left_at: float | None = None
    events: list[Delivery] = field(default_factory=list)
    #: A ready script the caller plays (sandbox/scripted_calls.py): its name, its state
    #: (waiting, playing, ok, failed) and outcome (``ok`` or the one-line ScriptError).
    script: str | None = None
    script_state: str | None = None
    script_outcome: str | None = None

    @property
    def leave_due(self) -> float | None:
        return None if self.duration_s is None else self.joined_at + self.duration_s

    def public(self) -> dict[str, Any]:
        """The call and, for each delivery, what the service answered."""
        return {
            "id": self.id, "channel": self.channel, "uid": self.uid,
            "duration_s": self.duration_s, "joined_at": self.joined_at, "left_at": self.left_at,
            "present": self.left_at is None, "drop_leave": self.drop_leave,
            "script": self.script, "script_state": self.script_state,
            "script_outcome": self.script_outcome,
            "events": [
                {"noticeId": d.notice_id, "eventType": d.event_type, "copy": d.copy,
                 "clientSeq": d.payload.get("clientSeq"), "status": d.status}
                for d in self.events
            ],
        }


class CallSimulator:
    """Creates calls and ends them when due (driven by the sandbox ticker)."""

    def __init__(self, world: World) -> None:
        self.world = world

    def start(self, spec: Any) -> tuple[Call, list[Delivery]]:
        """Put the caller in the channel now; return the call and its join deliveries."""
        options = _parse_spec(spec)
        world, now = self.world, self.world.clock.now()
        channel = options.get("channel") or "sandbox_" + world.new_id(10, "abcdefghjkmnpqrstuvwxyz")
        with world.lock:
            call = Call(
                id=world.new_id(12), channel=channel, uid=options.get("uid", 111),
                duration_s=options.get("duration_s", 3.0),
                leave_reason=options.get("leave_reason", 1),
                duplicates=options.get("duplicates", 0),
                redundant_copy=options.get("redundant_copy", False),
                late_join_copy=options.get("late_join_copy", False),
                drop_leave=options.get("drop_leave", False),
                sid=world.new_id(32, "0123456789ABCDEF"), joined_at=now,
                join_seq=world.next_client_seq(now),
            )
            world.calls[call.id] = call
            world.presence[(channel, str(call.uid))] = Presence(True, now)
            payload = self._payload(call, call.join_seq, now)
            return call, self._with_copies(call, JOIN, payload)

    def hang_up(self, call_id: str) -> list[Delivery]:
        """End a call now (before its duration, or one started with ``duration_s: null``)."""
        with self.world.lock:
            call = self.world.calls.get(call_id)
            if call is None:
                raise KeyError(call_id)
            if call.left_at is not None:
                return []
            return self._leave(call, self.world.clock.now())

    def tick(self, now: float) -> list[Delivery]:
        """Leave every call whose duration is over."""
        events: list[Delivery] = []
        with self.world.lock:
            for call in self.world.calls.values():
                due = call.leave_due
                if call.left_at is None and due is not None and now >= due:
                    events += self._leave(call, due)
        return events

    def listing(self) -> list[dict[str, Any]]:
        with self.world.lock:
            return [call.public() for call in self.world.calls.values()]

    def _leave(self, call: Call, at: float) -> list[Delivery]:
        world = self.world
        call.left_at = at
        world.presence[(call.channel, str(call.uid))] = Presence(False, at)
        events: list[Delivery] = []
        if not call.drop_leave:
            payload = self._payload(call, world.next_client_seq(at), at)
            payload.update(reason=call.leave_reason, duration=int(at - call.joined_at))
            events += self._with_copies(call, LEAVE, payload)
        if call.late_join_copy:
            stale = self._payload(call, call.join_seq, call.joined_at)
            late = self._delivery(call, JOIN, stale, "late_join")
            call.events.append(late)
            events.append(late)
        return events

    def _payload(self, call: Call, client_seq: int, at: float) -> dict[str, Any]:
        return {"channelName": call.channel, "uid": call.uid, "platform": PLATFORM_LINUX,
                "clientType": CLIENT_TYPE_PSTN, "clientSeq": client_seq, "ts": int(at)}

    def _with_copies(self, call: Call, event_type: int, payload: dict[str, Any]) -> list[Delivery]:
        original = self._delivery(call, event_type, payload, "original")
        out = [original] + [original.copy_as("duplicate") for _ in range(call.duplicates)]
        if call.redundant_copy:
            out.append(original.copy_as("redundant", self.world.new_notice_id()))
        call.events.extend(out)
        return out

    def _delivery(self, call: Call, event_type: int, payload: dict[str, Any],
                  copy: str) -> Delivery:
        return Delivery(
            notice_id=self.world.new_notice_id(), product_id=1, event_type=event_type,
            sid=call.sid, channel=call.channel, payload=dict(payload),
            secret=self.world.config.ncs_secret, copy=copy,
        )


def _parse_spec(spec: Any) -> dict[str, Any]:
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise CallSpecError("body must be a JSON object")
    unknown = sorted(set(spec) - set(_SPEC_TYPES))
    if unknown:
        raise CallSpecError(f"unknown field(s): {', '.join(unknown)}")
    for name, value in spec.items():
        types = _SPEC_TYPES[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise CallSpecError(f"{name} has the wrong type")
    if "channel" in spec and not spec["channel"]:
        raise CallSpecError("channel must not be empty")
    if not 0 <= spec.get("uid", 111) < 2**32:
        raise CallSpecError("uid must be in [0, 2^32)")
    if spec.get("duration_s") is not None and spec["duration_s"] < 0:
        raise CallSpecError("duration_s must be >= 0 (or null: until hung up)")
    if not 0 <= spec.get("duplicates", 0) <= 10:
        raise CallSpecError("duplicates must be in [0, 10]")
    return spec
