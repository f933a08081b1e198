"""The SIP/PSTN gateway stand-in's calls: bridging phone legs into channels and out again.

A bridge is an RTC leg simulated by sandbox.callers (presence, plus the signed NCS 103/104 any
simulated caller sends), and each step also produces the lifecycle webhooks of reference B.3
for the call's ``webhook_url``. No Flask here. Records change under the world lock; NCS events
and webhooks are handed on only once it is released. The flows that create calls live in
sip_outbound.py (``outbound``) and sip_inbound.py (reservations and simulated dial-ins).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

from sandbox.callers import CallSimulator
from sandbox.ncs_sender import Delivery, Status
from sandbox.outbox import Outbox
from sandbox.sip_hooks import Hook, HookSender, HttpPoster
from sandbox.sip_models import GatewayCall, SipError, e164, unknown_call
from sandbox.state import World
from sandbox.tokens import TokenInvalid, verify_rtc_token


@dataclass
class Effects:
    """NCS deliveries and webhooks produced under the lock, to send once it is released."""

    deliveries: list[Delivery] = field(default_factory=list)
    hooks: list[Hook] = field(default_factory=list)


class Gateway:
    """Every gateway call of one sandbox; the API and control views call into it."""

    def __init__(self, world: World, calls: CallSimulator, outbox: Outbox,
                 http: HttpPoster | None = None) -> None:
        self.world = world
        self.calls = calls
        self.outbox = outbox
        self.http: HttpPoster = http or requests
        self.sender = HookSender(self.http)

    def start(self) -> None:
        self.sender.start()

    def stop(self) -> None:
        self.sender.stop()

    def now(self) -> float:
        return self.world.clock.now()

    # -- building blocks for the flows (callers hold the world lock) ------------------------

    def open_call(self, *, callid: str | None = None, **fields: Any) -> GatewayCall:
        """Create and register a call record."""
        with self.world.lock:
            call = GatewayCall(callid=callid or self.world.new_call_id(),
                               created_at=self.now(), **fields)
            self.world.sip_calls[call.callid] = call
            return call

    def token_problem(self, token: str, channel: str, uid: str) -> str | None:
        """Why ``token`` cannot put ``uid`` in ``channel`` (None if it can, or tokens are off)."""
        config = self.world.config
        if not config.app_certificate:
            return None
        try:
            verify_rtc_token(token, app_id=config.app_id, certificate=config.app_certificate,
                             channel=channel, uid=uid, now=self.now())
        except TokenInvalid as exc:
            return str(exc)
        return None

    def hook(self, call: GatewayCall, event: str, out: Effects, at: float | None = None,
             **extra: Any) -> None:
        """Record a lifecycle webhook on the call and queue it for its ``webhook_url``.

        An outbound call has no visible callid until it is answered (B.3); the RTC token is
        never included.
        """
        at = self.now() if at is None else at
        hidden = call.direction == "outbound" and call.answered_at is None
        body = {
            "event": event, "callid": "" if hidden else call.callid, "timestamp": int(at),
            "uid": call.uid, "channel": call.channel, "to": e164(call.to),
            "from": e164(call.from_), "direction": call.direction,
            "appid": self.world.config.app_id, "video": call.video, **extra,
        }
        hook = Hook(call.webhook_url, body)
        if not call.webhook_url:
            hook.status = "not sent: no webhook_url"
        call.hooks.append(hook)
        if call.webhook_url:
            out.hooks.append(hook)

    def emit(self, call: GatewayCall, event: str, **extra: Any) -> None:
        """One webhook, sent now."""
        out = Effects()
        with self.world.lock:
            self.hook(call, event, out, **extra)
        self.send(out)

    def bridge_in(self, call: GatewayCall, channel: str, uid: str, at: float, out: Effects,
                  **extra: Any) -> None:
        """Put the phone leg in ``channel`` as ``uid``: presence, NCS 103, agora_bridge_start."""
        rtc, events = self.calls.start({"channel": channel, "uid": int(uid), "duration_s": None})
        call.channel, call.uid = channel, uid
        call.rtc_call_id = rtc.id
        call.rtc_legs.append(rtc.id)
        call.state, call.bridged_at = "bridged", at
        out.deliveries += events
        self.hook(call, "agora_bridge_start", out, at, **extra)

    def bridge_out(self, call: GatewayCall, at: float, out: Effects, **extra: Any) -> None:
        """Take the leg out of its channel (NCS 104 reason 1, agora_bridge_end); phone stays."""
        if call.rtc_call_id is not None:
            try:
                out.deliveries += self.calls.hang_up(call.rtc_call_id)
            except KeyError:
                pass  # the sandbox was reset under us: nothing left to leave
            call.rtc_call_id = None
        call.state = "unbridged"
        self.hook(call, "agora_bridge_end", out, at, **extra)

    def finish(self, call: GatewayCall, at: float, cause: str, disposition: str, out: Effects,
               *, state: str = "ended") -> None:
        """End a live call: leave the channel if bridged, then call_hangup."""
        if call.state == "bridged":
            self.bridge_out(call, at, out)
        call.state, call.ended_at, call.hangup_due = state, at, None
        billsec = 0 if call.answered_at is None else int(at - call.answered_at)
        self.hook(call, "call_hangup", out, at, hangup_cause=cause,
                  duration=str(int(at - call.created_at)), billsec=str(billsec),
                  sip_disposition=disposition)

    def fail(self, call: GatewayCall, state: str, reason: str, cause: str) -> None:
        """A call that never reached a channel: record why, and send its call_hangup."""
        out = Effects()
        with self.world.lock:
            now = self.now()
            call.state, call.reason, call.ended_at = state, reason, now
            self.hook(call, "call_hangup", out, now, hangup_cause=cause,
                      duration=str(int(now - call.created_at)), billsec="0",
                      sip_disposition="recv_refuse")
        self.send(out)

    def send(self, out: Effects) -> None:
        self.outbox.publish(out.deliveries)
        for hook in out.hooks:
            self.sender.submit(hook, self._done)

    def _done(self, hook: Hook, status: Status) -> None:
        with self.world.lock:
            hook.status = status

    def _live(self, callid: str) -> GatewayCall:
        call = self.world.sip_calls.get(callid)
        if call is None or not call.live:
            raise unknown_call(callid)
        return call

    # -- API actions on live calls ----------------------------------------------------------

    def endcall(self, body: dict[str, Any]) -> dict[str, Any]:
        out = Effects()
        with self.world.lock:
            self.finish(self._live(body["callid"]), self.now(), "NORMAL_CLEARING", "send_bye",
                        out)
        self.send(out)
        return {"success": True}

    def send_dtmf(self, body: dict[str, Any]) -> dict[str, Any]:
        """Each digit played is echoed back as its own dtmf_received webhook."""
        out = Effects()
        with self.world.lock:
            call, now = self._live(body["callid"]), self.now()
            for digit in body["digits"]:
                call.dtmf.append(digit)
                self.hook(call, "dtmf_received", out, now, digits=digit)
        self.send(out)
        return {"success": True}

    def transfer(self, body: dict[str, Any]) -> dict[str, Any]:
        """REFER accepted: the phone leg goes elsewhere and the Agora side of the call ends."""
        out = Effects()
        with self.world.lock:
            call, now = self._live(body["callid"]), self.now()
            call.transfer = {"destination": body["destination"],
                             "leg": body.get("leg") or "aleg", "at": now}
            self.finish(call, now, "BLIND_TRANSFER", "send_bye", out, state="transferred")
        self.send(out)
        return {"success": True}

    def bridge(self, body: dict[str, Any]) -> dict[str, Any]:
        """Attach an unbridged call to a channel. A token that cannot join is reported the way
        rebridge reports it (``join failed: ...``); Agora documents no failure for bridge."""
        out = Effects()
        with self.world.lock:
            call = self._live(body["callid"])
            if call.state == "bridged":
                return {"success": False, "reason": "call already bridged; use rebridge"}
            problem = self.token_problem(body["token"], body["channel"], body["uid"])
            if problem:
                return {"success": False, "reason": f"join failed: {problem}"}
            call.token = body["token"]
            call.webhook_url = body.get("webhook_url") or call.webhook_url
            self.bridge_in(call, body["channel"], body["uid"], self.now(), out,
                           **sdk_extra(body))
        self.send(out)
        return {"success": True}

    def unbridge(self, body: dict[str, Any]) -> dict[str, Any]:
        out = Effects()
        with self.world.lock:
            call = self._live(body["callid"])
            if call.state != "bridged":
                return {"success": False, "reason": "call not bridged"}
            self.bridge_out(call, self.now(), out)
        self.send(out)
        return {"success": True}

    def rebridge(self, body: dict[str, Any]) -> dict[str, Any]:
        """Move a bridged call to another channel; the phone leg stays up either way."""
        out = Effects()
        with self.world.lock:
            call, now = self._live(body["callid"]), self.now()
            if call.state != "bridged":
                return {"success": False, "reason": "call not bridged; use bridge"}
            if (body["current_channel"], body["current_uid"]) != (call.channel, call.uid):
                return {"success": False, "reason": "current channel/uid mismatch"}
            previous = {"previous_channel": call.channel, "previous_uid": call.uid}
            problem = self.token_problem(body["token"], body["channel"], body["uid"])
            segment = int(now - (call.bridged_at or now))
            self.bridge_out(call, now, out, rebridge=True, segment_billsec=str(segment))
            if problem:
                reason = f"join failed: {problem}"
                self.hook(call, "agora_bridge_failed", out, now, rebridge=True, reason=reason)
                result = {"success": False, "reason": reason}
            else:
                call.token = body["token"]
                call.webhook_url = body.get("webhook_url") or call.webhook_url
                self.bridge_in(call, body["channel"], body["uid"], now, out, rebridge=True,
                               **previous, **sdk_extra(body))
                result = {"success": True}
        self.send(out)
        return result

    # -- the phone side, the ticker and the control API -------------------------------------

    def hang_up_phone(self, callid: str) -> None:
        """The person on the phone hangs up now (control API)."""
        out = Effects()
        with self.world.lock:
            call = self.world.sip_calls.get(callid)
            if call is None or not call.live:
                raise SipError(404, f"no live gateway call {callid}")
            self.finish(call, self.now(), "NORMAL_CLEARING", "recv_bye", out)
        self.send(out)

    def tick(self, now: float) -> list[Delivery]:
        """Hang up calls that are due; return their NCS events (the caller publishes them).

        A bridged call whose RTC leg was ended behind the gateway's back (POST
        /_sandbox/calls/<id>/hangup) is treated as the phone hanging up.
        """
        out = Effects()
        with self.world.lock:
            for call in self.world.sip_calls.values():
                if not call.live:
                    continue
                rtc = self.world.calls.get(call.rtc_call_id) if call.rtc_call_id else None
                if call.state == "bridged" and (rtc is None or rtc.left_at is not None):
                    self.finish(call, now, "NORMAL_CLEARING", "recv_bye", out)
                elif call.hangup_due is not None and now >= call.hangup_due:
                    by_timeout = call.hangup_by == "timeout"
                    self.finish(call, call.hangup_due,
                                "ALLOTTED_TIMEOUT" if by_timeout else "NORMAL_CLEARING",
                                "send_bye" if by_timeout else "recv_bye", out)
        for hook in out.hooks:
            self.sender.submit(hook, self._done)
        return out.deliveries

    def listing(self) -> list[dict[str, Any]]:
        with self.world.lock:
            return [call.public() for call in self.world.sip_calls.values()]

    def reservations(self) -> list[dict[str, Any]]:
        with self.world.lock:
            now = self.now()
            return [r.public(now) for r in self.world.sip_reservations.values()]


def sdk_extra(body: dict[str, Any]) -> dict[str, Any]:
    """agora_bridge_start may carry the request's ``sdk_options``."""
    return {"sdk_options": body["sdk_options"]} if body.get("sdk_options") else {}
