"""``outbound``: dial a phone and, once it answers, bridge it into the channel.

Like the real gateway (reference B.1) the request is answered only once the call has been
answered or has failed, so it takes ``outbound_answer_delay_s``. The outcome, first match wins:

1. the next queued ``outbound_results`` fault ("answered", "Busy", "Invalid" or "hang");
2. the numbers rule: a ``to`` whose digits end in "0000" is always Busy;
3. otherwise the call is answered.

Webhooks follow B.3: call_initiated, call_ringing (only if the call is still ringing 1 s
later), then call_answered and agora_bridge_start, or call_hangup for a Busy or Invalid number.
A "hang" sends call_initiated, then nothing, and answers 503 after ``outbound_hang_s``.
"""

from __future__ import annotations

from typing import Any

from sandbox.sip_gateway import Effects, Gateway, sdk_extra
from sandbox.sip_models import DEFAULT_UID, GatewayCall, SipError, bad_parameters, digits_of

BUSY_SUFFIX = "0000"
RINGING_AFTER_S = 1.0
#: ``timeout``: the longest the call may last once answered (Agora's default).
DEFAULT_TIMEOUT_S = 3600


def outcome(to: str) -> str:
    """The numbers rule (used when no fault is queued)."""
    return "Busy" if digits_of(to).endswith(BUSY_SUFFIX) else "answered"


def place_call(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    world, clock = gateway.world, gateway.world.clock
    config = world.config
    channel, uid, token = body["channel"], body.get("uid") or DEFAULT_UID, body.get("token", "")
    problem = gateway.token_problem(token, channel, uid)
    if problem:
        raise bad_parameters(f"token: {problem}")
    with world.lock:
        result = world.faults.take_outbound() or outcome(body["to"])
    call = gateway.open_call(
        direction="outbound", to=body["to"], from_=body["from"], channel=channel, uid=uid,
        token=token, webhook_url=body.get("webhook_url", ""), video=body.get("video", False))
    gateway.emit(call, "call_initiated")
    if result == "hang":
        clock.sleep(config.outbound_hang_s)
        with world.lock:
            call.state, call.reason, call.ended_at = "failed", "hang", clock.now()
        raise SipError(503, "No resource currently available")
    if result == "Invalid":
        gateway.fail(call, "failed", "Invalid", "INVALID_NUMBER_FORMAT")
        return {"success": False, "reason": "Invalid"}
    _ring(gateway, call, config.outbound_answer_delay_s)
    if result == "Busy":
        gateway.fail(call, "failed", "Busy", "USER_BUSY")
        return {"success": False, "reason": "Busy"}
    out = Effects()
    with world.lock:
        now = clock.now()
        call.answered_at = now
        gateway.hook(call, "call_answered", out, now)
        gateway.bridge_in(call, channel, uid, now, out, **sdk_extra(body))
        _schedule_hangup(call, now, config.outbound_call_duration_s,
                         int(body.get("timeout") or DEFAULT_TIMEOUT_S))
    gateway.send(out)
    return {"success": True, "callid": call.callid}


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
