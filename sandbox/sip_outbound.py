"""``outbound``: dial a phone and, once it answers, bridge it into the channel.

Like the real gateway (reference B.1) the request is answered only once the call has been
answered or has failed. The outcome, first match wins:

1. the next queued ``outbound_results`` fault ("answered", "Busy", "Invalid" or "hang");
2. the sandbox's phone network (sandbox/phone_network.py): fictional numbers 555-0100..0199
   answer, are busy, ring out, reach voicemail or fail by their last two digits; other numbers
   keep the older rule (digits ending in "0000" are busy, the rest answer).

Webhooks follow B.3: call_initiated, call_ringing (only if the call is still ringing 1 s
later), then call_answered and agora_bridge_start, or call_hangup for a number that is busy
(USER_BUSY), does not answer (NO_ANSWER, after ``outbound_ring_timeout_s``) or does not exist
(INVALID_NUMBER_FORMAT). Voicemail answers like a person, but the callee is a machine that
plays a greeting to the agent (sandbox/voicemail.py). A "hang" sends call_initiated, then
nothing, and answers 503 after ``outbound_hang_s``.
"""

from __future__ import annotations

from typing import Any

from sandbox import phone_network
from sandbox.sip_gateway import Effects, Gateway, sdk_extra
from sandbox.sip_models import DEFAULT_UID, GatewayCall, SipError, bad_parameters
from sandbox.voicemail import WAITING

RINGING_AFTER_S = 1.0
#: ``timeout``: the longest the call may last once answered (Agora's default).
DEFAULT_TIMEOUT_S = 3600
#: The queued fault results (sandbox/faults.py) as phone-network outcomes.
FAULT_OUTCOMES = {"answered": phone_network.ANSWERED, "Busy": phone_network.BUSY,
                  "Invalid": phone_network.FAILED, "hang": "hang"}
#: The ``reason`` of ``{"success": false}`` when nobody answers. Agora documents only "Busy"
#: and "Invalid" (B.1); the real gateway's string for a call that rings out is undocumented:
#: we ASSUME "NoAnswer".
NO_ANSWER_REASON = "NoAnswer"


def outcome(to: str) -> str:
    """What dialling ``to`` comes to when no fault is queued (phone_network's outcomes)."""
    return phone_network.outcome(to)


def place_call(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    world, clock = gateway.world, gateway.world.clock
    config = world.config
    channel, uid, token = body["channel"], body.get("uid") or DEFAULT_UID, body.get("token", "")
    problem = gateway.token_problem(token, channel, uid)
    if problem:
        raise bad_parameters(f"token: {problem}")
    with world.lock:
        fault = world.faults.take_outbound()
    result = FAULT_OUTCOMES[fault] if fault else outcome(body["to"])
    call = gateway.open_call(
        direction="outbound", to=body["to"], from_=body["from"], channel=channel, uid=uid,
        token=token, webhook_url=body.get("webhook_url", ""), video=body.get("video", False))
    gateway.emit(call, "call_initiated")
    if result == "hang":
        clock.sleep(config.outbound_hang_s)
        with world.lock:
            call.state, call.reason, call.ended_at = "failed", "hang", clock.now()
        raise SipError(503, "No resource currently available")
    if result == phone_network.FAILED:
        gateway.fail(call, "failed", "Invalid", "INVALID_NUMBER_FORMAT")
        return {"success": False, "reason": "Invalid"}
    if result == phone_network.NO_ANSWER:
        _ring(gateway, call, config.outbound_ring_timeout_s)
        gateway.fail(call, "failed", NO_ANSWER_REASON, "NO_ANSWER")
        return {"success": False, "reason": NO_ANSWER_REASON}
    _ring(gateway, call, config.outbound_answer_delay_s)
    if result == phone_network.BUSY:
        gateway.fail(call, "failed", "Busy", "USER_BUSY")
        return {"success": False, "reason": "Busy"}
    out = Effects()
    with world.lock:
        now = clock.now()
        call.answered_at = now
        gateway.hook(call, "call_answered", out, now)
        gateway.bridge_in(call, channel, uid, now, out, **sdk_extra(body))
        if result == phone_network.VOICEMAIL:
            _machine_answers(gateway, call)
        _schedule_hangup(call, now, config.outbound_call_duration_s,
                         int(body.get("timeout") or DEFAULT_TIMEOUT_S))
    gateway.send(out)
    return {"success": True, "callid": call.callid}


def _machine_answers(gateway: Gateway, call: GatewayCall) -> None:
    """The callee is an answering machine (caller holds the world lock): it plays its greeting
    to the channel's agent once that agent is running (sandbox/voicemail.py), and never joins
    the sandbox's scripted small talk, which is a person's."""
    call.voicemail = WAITING
    presence = gateway.world.presence.get((call.channel, str(call.uid)))
    if presence is not None:
        presence.scripted = True


def _ring(gateway: Gateway, call: GatewayCall, delay: float) -> None:
    clock = gateway.world.clock
    if delay < RINGING_AFTER_S:
        clock.sleep(delay)
        return
    clock.sleep(RINGING_AFTER_S)
    with gateway.world.lock:
        call.state = "ringing"
    gateway.emit(call, "call_ringing")
    clock.sleep(delay - RINGING_AFTER_S)


def _schedule_hangup(call: GatewayCall, now: float, duration: float | None, timeout: int) -> None:
    """The callee hangs up after ``duration`` (None/0: never); the gateway after ``timeout``."""
    if duration:
        call.hangup_due, call.hangup_by = now + duration, "phone"
    if timeout and (call.hangup_due is None or now + timeout < call.hangup_due):
        call.hangup_due, call.hangup_by = now + timeout, "timeout"
