"""ConvoAI's own telephony, simulated: ``POST /call``, ``GET /calls/<agent_id>`` and
``POST /calls/<agent_id>/hangup`` (reference convoai-api.md 5.1, NCS 202 in 4.5).

A /call starts its agent exactly like a join (the same validation, name rule and 101) and dials
``sip.to_number``; who answers is the phone network's rule (sandbox/phone_network.py). The
call's progress goes out as productId 17 event 202 (``START``, ``CALLING``, ``RINGING``,
``ANSWERED``, ``HANGUP``); once answered, the callee is a simulated RTC caller in the channel as
``sip.rtc_uid`` (NCS 103, then 104 when they leave, as for the SIP gateway's calls).

=========  ==================================================================================
 outcome    what the sandbox does, from the /call (t = 0)
 answered   START, CALLING; RINGING at ``min(1 s, outbound_answer_delay_s)``; ANSWERED at
            ``outbound_answer_delay_s`` and the callee joins; HANGUP when the callee leaves,
            after ``outbound_call_duration_s`` (empty: only when hung up)
 voicemail  as answered (the machine picks up)
 busy       START, CALLING; HANGUP at ``outbound_answer_delay_s``
 no_answer  START, CALLING, RINGING; HANGUP at ``call_ring_s``
 failed     START; HANGUP at once
=========  ==================================================================================

Sandbox-only, not Agora's: each 202 HANGUP carries a ``reason`` (``hangup`` the callee hung up,
``request`` we did, ``busy``, ``no_answer``, ``failed``); Agora documents none in the event.
The status's ``state`` reads ``calling`` until the call is answered (Agora documents only
``answered`` and ``hangup``). Every HANGUP stops the call's agent (102 follows), and an agent
stopped by ``/leave`` hangs its call up (``request``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sandbox import phone_network
from sandbox.agents import AgentBook
from sandbox.callers import CallSimulator
from sandbox.errors import AgoraError
from sandbox.lifecycle import agent_event, begin_stop
from sandbox.ncs_sender import Delivery
from sandbox.state import World
from sandbox.tokens import TokenInvalid, verify_rtc_token
from sandbox.validation import validate_join

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
RINGING_AFTER_S = 1.0
#: The status's ``reason`` for each HANGUP reason of the 202 (Agora: request|hangup|failed).
STATUS_REASONS = {"request": "request", "hangup": "hangup"}


class TelephonyError(Exception):
    """An error in telephony's own shape, ``{"error_type", "description"}`` (reference 4.2)."""

    def __init__(self, status: int, error_type: str, description: str) -> None:
        super().__init__(f"{status} {error_type}: {description}")
        self.status = status
        self.error_type = error_type
        self.description = description

    def body(self) -> dict[str, Any]:
        return {"error_type": self.error_type, "description": self.description}


@dataclass
class PhoneCall:
    """One call placed through /call."""

    agent_id: str
    channel: str
    to_number: str
    from_number: str
    rtc_uid: str
    outcome: str
    created_at: float
    #: The 202 states still to send, each with when it is due (in order).
    due: list[tuple[float, str]] = field(default_factory=list)
    answered_at: float | None = None
    stopped_at: float | None = None
    reason: str | None = None
    #: The callee's simulated RTC leg (sandbox.callers), once answered.
    rtc_call_id: str | None = None
    states: list[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.stopped_at is None

    def status(self) -> dict[str, Any]:
        """GET /calls/<agent_id>."""
        state = "hangup" if not self.live else (
            "answered" if self.answered_at is not None else "calling")
        return {
            "agent_id": self.agent_id, "type": "outbound", "channel": self.channel,
            "to_number": self.to_number, "from_number": self.from_number,
            "create_ts": int(self.created_at), "state": state,
            "stop_ts": int(self.stopped_at) if self.stopped_at is not None else 0,
            "reason": None if self.live else STATUS_REASONS.get(self.reason or "", "failed"),
        }


class Telephony:
    """Every /call of one sandbox; driven by the sandbox ticker."""

    def __init__(self, world: World, agents: AgentBook, callers: CallSimulator) -> None:
        self.world = world
        self.agents = agents
        self.callers = callers

    @property
    def calls(self) -> dict[str, PhoneCall]:
        """agent_id -> PhoneCall, kept in the world so /_sandbox/reset forgets them too."""
        return self.world.phone_calls

    def place(self, body: Any) -> tuple[dict[str, Any], list[Delivery]]:
        """Validate like Agora, start the agent as a join would, and begin dialling. Returns
        the answer and the 202s due now (START, CALLING)."""
        sip = _sip_fields(body)
        props = body.get("properties")
        try:
            validate_join({"name": body["name"], "properties": props})
        except AgoraError as exc:
            raise TelephonyError(exc.status, exc.reason, exc.detail) from exc
        if props.get("remote_rtc_uids") != [sip["rtc_uid"]]:
            # ASSUMED: Agora would start an agent that hears nobody; refusing it catches the bug.
            raise TelephonyError(400, "invalid_request",
                                 "properties.remote_rtc_uids must be [sip.rtc_uid]")
        self._check_token(sip["rtc_token"], props["channel"], sip["rtc_uid"])
        try:
            agent = self.agents.join({"name": body.get("name"), "properties": props})
        except AgoraError as exc:
            raise TelephonyError(exc.status, exc.reason, exc.detail) from exc
        world, now = self.world, self.world.clock.now()
        config = world.config
        outcome = phone_network.outcome(sip["to_number"])
        call = PhoneCall(agent_id=agent["agent_id"], channel=props["channel"],
                         to_number=sip["to_number"], from_number=sip["from_number"],
                         rtc_uid=sip["rtc_uid"], outcome=outcome, created_at=now)
        answer_at = now + config.outbound_answer_delay_s
        ring_at = now + min(RINGING_AFTER_S, config.outbound_answer_delay_s)
        call.due = {
            phone_network.ANSWERED: [(ring_at, "RINGING"), (answer_at, "ANSWERED")],
            phone_network.VOICEMAIL: [(ring_at, "RINGING"), (answer_at, "ANSWERED")],
            phone_network.BUSY: [(answer_at, "HANGUP:busy")],
            phone_network.NO_ANSWER: [(min(ring_at, now + config.call_ring_s), "RINGING"),
                                      (now + config.call_ring_s, "HANGUP:no_answer")],
            phone_network.FAILED: [(now, "HANGUP:failed")],
        }[outcome]
        first = ["START"] if outcome == phone_network.FAILED else ["START", "CALLING"]
        with world.lock:
            self.calls[call.agent_id] = call
            events = [self._state(call, state, now) for state in first]
        return {"agent_id": call.agent_id}, events

    def status(self, agent_id: str) -> dict[str, Any]:
        with self.world.lock:
            return self._call(agent_id).status()

    def hang_up(self, agent_id: str) -> list[Delivery]:
        """POST /calls/<agent_id>/hangup: the agent hangs up and leaves."""
        with self.world.lock:
            call = self._call(agent_id)
            if not call.live:
                raise TelephonyError(404, "not_found", f"call {agent_id} has already ended")
            return self._end(call, self.world.clock.now(), "request")

    def tick(self, now: float) -> list[Delivery]:
        """Send the states that are due; hang up calls whose callee left or agent stopped."""
        events: list[Delivery] = []
        with self.world.lock:
            for call in self.calls.values():
                while call.live and call.due and call.due[0][0] <= now:
                    at, state = call.due.pop(0)
                    if state.startswith("HANGUP:"):
                        events += self._end(call, at, state.split(":", 1)[1])
                    else:
                        events += self._advance(call, at, state)
                if not call.live:
                    continue
                leg = self.world.calls.get(call.rtc_call_id) if call.rtc_call_id else None
                agent = self.world.agents.get(call.agent_id)
                if leg is not None and leg.left_at is not None:
                    events += self._end(call, leg.left_at, "hangup")
                elif agent is None or agent.status not in ("STARTING", "RUNNING"):
                    events += self._end(call, now, "request")
        return events

    def listing(self) -> list[dict[str, Any]]:
        with self.world.lock:
            return [{**c.status(), "outcome": c.outcome, "states": list(c.states)}
                    for c in self.calls.values()]

    # -- helpers (the world lock is held) -----------------------------------------------------

    def _advance(self, call: PhoneCall, at: float, state: str) -> list[Delivery]:
        events = [self._state(call, state, at)]
        if state == "ANSWERED":
            call.answered_at = at
            # The callee's leg in the channel, as the gateway's SIP leg would be; it leaves
            # (the callee hangs up) after the sandbox's call duration.
            leg, joined = self.callers.start({
                "channel": call.channel, "uid": int(call.rtc_uid),
                "duration_s": self.world.config.outbound_call_duration_s or None})
            call.rtc_call_id = leg.id
            events += joined
        return events

    def _end(self, call: PhoneCall, at: float, reason: str) -> list[Delivery]:
        call.stopped_at, call.reason, call.due = at, reason, []
        events = [self._state(call, "HANGUP", at, reason=reason)]
        if call.rtc_call_id is not None:
            leg = self.world.calls.get(call.rtc_call_id)
            if leg is not None and leg.left_at is None:
                events += self.callers.hang_up(leg.id)
        agent = self.world.agents.get(call.agent_id)
        if agent is not None and agent.status in ("STARTING", "RUNNING"):
            begin_stop(agent, at, "OK")  # its 102 follows on the agents' tick
        return events

    def _state(self, call: PhoneCall, state: str, at: float, **extra: Any) -> Delivery:
        call.states.append(state)
        agent = self.world.agents[call.agent_id]
        return agent_event(self.world, agent, 202, state=state, report_ms=int(at * 1000),
                           **extra)

    def _call(self, agent_id: str) -> PhoneCall:
        call = self.calls.get(agent_id)
        if call is None:
            raise TelephonyError(404, "not_found", f"no call with agent {agent_id}")
        return call

    def _check_token(self, token: str, channel: str, uid: str) -> None:
        config = self.world.config
        if not token.startswith("007"):
            raise TelephonyError(400, "invalid_request",
                                 "sip.rtc_token must be an AccessToken2 (007)")
        if not config.app_certificate:
            return
        try:
            verify_rtc_token(token, app_id=config.app_id, certificate=config.app_certificate,
                             channel=channel, uid=uid, now=self.world.clock.now())
        except TokenInvalid as exc:
            raise TelephonyError(400, "invalid_request", f"sip.rtc_token: {exc}") from exc


def _sip_fields(body: Any) -> dict[str, str]:
    """The body's ``name`` and ``sip`` block checked; the numbers never appear in an error."""
    if not isinstance(body, dict):
        raise TelephonyError(400, "invalid_request", "request body must be a JSON object")
    if not isinstance(body.get("name"), str) or not body["name"]:
        raise TelephonyError(400, "invalid_request", "name: Field required")
    sip = body.get("sip")
    if not isinstance(sip, dict):
        raise TelephonyError(400, "invalid_request", "sip: Field required")
    for name in ("to_number", "from_number"):
        if not isinstance(sip.get(name), str) or not E164.match(sip[name]):
            raise TelephonyError(400, "invalid_request", f"sip.{name} must be an E.164 number")
    for name in ("rtc_uid", "rtc_token"):
        if not isinstance(sip.get(name), str) or not sip[name]:
            raise TelephonyError(400, "invalid_request", f"sip.{name}: Field required "
                                 "(a string)")
    if not sip["rtc_uid"].isdigit() or not 0 < int(sip["rtc_uid"]) < 2**32:
        raise TelephonyError(400, "invalid_request", "sip.rtc_uid must be an RTC uid")
    return sip
