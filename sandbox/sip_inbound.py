"""Calls into a channel: reservations (``inbound``, ``inboundsip``, ``cancelcall``) and the
simulated dial-ins of ``POST /_sandbox/sip/dial``.

A dial-in reaches one of two kinds of line:

- a region's PIN number (sip_models.REGION_NUMBERS) or an ``inboundsip`` URI: the caller joins
  the channel of the matching pending reservation, with its token and uid; no lookup;
- any other number: the gateway asks the service's ring-time lookup hook (B.2) where the call
  goes. 200 with ``{token, uid, channel, ...}`` bridges it there; 404 rejects it, and so (our
  assumption) does any other answer, a timeout or a bad body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from sandbox.callers import CallSpecError
from sandbox.sip_gateway import Effects, Gateway
from sandbox.sip_hooks import HOOK_TIMEOUT
from sandbox.sip_models import (
    DEFAULT_UID,
    PIN_NUMBERS,
    REGION_NUMBERS,
    RESERVATION_TTL_S,
    Reservation,
    SipError,
    bad_parameters,
    digits_of,
    e164,
    is_decimal,
)

#: Agora documents no timeout for the lookup; we give it the webhooks' 2 s / 5 s.
LOOKUP_TIMEOUT = HOOK_TIMEOUT
PIN_LENGTH = 6
#: Custom SIP header limits the gateway applies before passing them on (B.2).
HEADER_LIMITS = (20, 1024, 4096)  # names, bytes per value, bytes in all
_DIAL_TYPES: dict[str, tuple[type, ...]] = {
    "to": (str,), "from": (str,), "pin": (str,), "duration_s": (int, float, type(None)),
    "sip_headers": (dict,),
}


@dataclass(frozen=True)
class Target:
    """Where a dial-in goes."""

    channel: str
    uid: str
    token: str
    webhook_url: str = ""
    video: bool = False
    reservation_id: str = ""


# -- reservations ---------------------------------------------------------------------------

def reserve_number(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    reservation = _reserve(gateway, body, "pin")
    return {"did": reservation.did, "display": reservation.display, "pin": reservation.pin}


def reserve_sip(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    return {"sip": _reserve(gateway, body, "sip").sip}


def _reserve(gateway: Gateway, body: dict[str, Any], kind: str) -> Reservation:
    channel, uid, token = body["channel"], body.get("uid") or DEFAULT_UID, body.get("token", "")
    problem = gateway.token_problem(token, channel, uid)
    if problem:
        raise bad_parameters(f"token: {problem}")
    world, now = gateway.world, gateway.now()
    video = body.get("video", False)
    with world.lock:
        rid = world.new_id(12, "abcdefghijkmnpqrstuvwxyz23456789")
        reservation = Reservation(
            id=rid, kind=kind, region=body["region"], channel=channel, uid=uid, token=token,
            webhook_url=body.get("webhook_url", ""), video=video, created_at=now,
            expires_at=now + RESERVATION_TTL_S)
        if kind == "pin":
            reservation.did, reservation.display = REGION_NUMBERS[body["region"]]
            reservation.pin = _new_pin(gateway, reservation.did, now)
        else:
            reservation.sip = f"sip:pstn_{rid}@127.0.0.1:{5090 if video else 5080}"
        world.sip_reservations[rid] = reservation
        return reservation


def _new_pin(gateway: Gateway, did: str, now: float) -> str:
    taken = {r.pin for r in gateway.world.sip_reservations.values()
             if r.did == did and r.state_at(now) == "pending"}
    while True:
        pin = gateway.world.new_id(PIN_LENGTH, "0123456789")
        if pin not in taken:
            return pin


def cancel(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Cancel pending reservations matching the key, and end live calls that came through
    them (or, for the token+channel key, live calls in that channel with that token)."""
    world, out = gateway.world, Effects()
    with world.lock:
        now = gateway.now()
        by_sip, by_pin = body.get("sip"), body.get("did") and body.get("pin")
        token, channel, uid = body.get("token"), body.get("channel"), body.get("uid")

        def same_leg(item: Any) -> bool:
            return (item.token, item.channel) == (token, channel) and (not uid or item.uid == uid)

        def matches(r: Reservation) -> bool:
            if by_sip:
                return r.kind == "sip" and r.sip == body["sip"]
            if by_pin:
                return r.kind == "pin" and (r.did, r.pin) == (digits_of(body["did"]), body["pin"])
            return same_leg(r)

        found = [r for r in world.sip_reservations.values() if matches(r)]
        pending = [r for r in found if r.state_at(now) == "pending"]
        used = {r.id for r in found}
        calls = [c for c in world.sip_calls.values() if c.live and (
            c.reservation_id in used or (not by_sip and not by_pin and same_leg(c)))]
        if not pending and not calls:
            raise SipError(404, "no pending reservation or live call matches")
        for reservation in pending:
            reservation.state = "cancelled"
        for call in calls:
            gateway.finish(call, now, "NORMAL_CLEARING", "send_bye", out)
    gateway.send(out)
    return {"success": True}


# -- simulated dial-ins ---------------------------------------------------------------------

def dial(gateway: Gateway, spec: Any) -> dict[str, Any]:
    """Play the gateway for one incoming call; answer once it is bridged or rejected."""
    options = parse_dial(spec)
    to, caller, pin = options["to"], options.get("from", "+15551234567"), options.get("pin", "")
    headers = options.get("sip_headers", {})
    world = gateway.world
    callid = world.new_call_id()
    lookup: dict[str, Any] | None = None
    if to.startswith("sip:") or digits_of(to) in PIN_NUMBERS:
        headers = headers if to.startswith("sip:") else {}  # empty for PSTN numbers (B.2)
        target, reason = _reserved(gateway, to, pin, callid)
    else:
        target, reason, lookup = _look_up(gateway, callid, to, caller, pin, headers)
    if target is not None and not reason:
        problem = gateway.token_problem(target.token, target.channel, target.uid)
        reason = f"join failed: {problem}" if problem else ""
    call = gateway.open_call(
        callid=callid, direction="inbound", to=to, from_=caller,
        channel=target.channel if target else "", uid=target.uid if target else "",
        token=target.token if target else "", webhook_url=target.webhook_url if target else "",
        video=target.video if target else False, pin=pin, sip_headers=headers,
        reservation_id=target.reservation_id if target else "", lookup=lookup)
    out = Effects()
    with world.lock:
        now = gateway.now()
        if target is not None:  # without one there is no webhook_url to tell anything
            gateway.hook(call, "call_initiated", out, now, pin=pin, sip_headers=dict(headers))
        if reason:
            call.state, call.reason, call.ended_at = "rejected", reason, now
            if target is not None:
                gateway.hook(call, "call_hangup", out, now, hangup_cause="CALL_REJECTED",
                             duration="0", billsec="0", sip_disposition="send_refuse")
        else:
            call.answered_at = now
            gateway.bridge_in(call, call.channel, call.uid, now, out)
            duration = options.get("duration_s", 5.0)
            if duration is not None:
                call.hangup_due, call.hangup_by = now + duration, "phone"
    gateway.send(out)
    answer = {"callid": callid, "status": "rejected" if reason else "bridged",
              "channel": call.channel}
    return {**answer, "reason": reason} if reason else answer


def _reserved(gateway: Gateway, to: str, pin: str,
              callid: str) -> tuple[Target | None, str]:
    """Claim the pending reservation this number (and PIN) leads to."""
    world = gateway.world
    with world.lock:
        now = gateway.now()
        for r in world.sip_reservations.values():
            if r.state_at(now) != "pending":
                continue
            if (r.kind == "sip" and r.sip == to) or (
                    r.kind == "pin" and r.did == digits_of(to) and r.pin == pin):
                r.state, r.callid = "used", callid
                return Target(r.channel, r.uid, r.token, r.webhook_url, r.video, r.id), ""
    return None, "no pending reservation for this number and PIN"


def _look_up(gateway: Gateway, callid: str, to: str, caller: str, pin: str,
             headers: dict[str, str]) -> tuple[Target | None, str, dict[str, Any]]:
    """POST the ring-time lookup (B.2) and read its answer; (target, reason, record)."""
    config = gateway.world.config
    url = config.lookup_url or _derived_lookup_url(gateway.world.webhook_url)
    record: dict[str, Any] = {"url": url, "status": None}
    if not url:
        return None, "no lookup URL: set SANDBOX_LOOKUP_URL or the webhook URL", record
    body = {"did": digits_of(to), "pin": pin, "callerid": e164(caller), "callid": callid,
            "sip_headers": headers}
    authorization = config.lookup_authorization
    auth = {"Authorization": authorization} if authorization else {}
    try:
        response = gateway.http.post(url, json=body, headers=auth, timeout=LOOKUP_TIMEOUT)
    except requests.RequestException as exc:
        record["status"] = f"error: {type(exc).__name__}"
        return None, f"lookup failed: {type(exc).__name__}", record
    record["status"] = response.status_code
    if response.status_code == 404:
        return None, "lookup rejected the call (404)", record
    if response.status_code != 200:
        return None, f"lookup failed: HTTP {response.status_code}", record
    try:
        answer = response.json()
    except ValueError:
        return None, "lookup answer is not JSON", record
    target, problem = _target_from(answer, config.app_id)
    return target, problem, record


def _derived_lookup_url(webhook_url: str) -> str:
    if not webhook_url:
        return ""
    parts = urlsplit(webhook_url)
    return f"{parts.scheme}://{parts.netloc}/sip/lookup"


def _target_from(answer: Any, app_id: str) -> tuple[Target | None, str]:
    """Check a 200 lookup answer; the problem found, if any, rejects the call."""
    if not isinstance(answer, dict):
        return None, "lookup answer is not a JSON object"
    channel, token, uid = answer.get("channel"), answer.get("token"), answer.get("uid")
    if isinstance(uid, int) and not isinstance(uid, bool):
        uid = str(uid)
    webhook_url, video = answer.get("webhook_url") or "", answer.get("video", False)
    problems = [
        name for name, ok in (
            ("channel", isinstance(channel, str) and bool(channel)),
            ("token", isinstance(token, str) and bool(token)),
            ("uid", isinstance(uid, str) and is_decimal(uid) and int(uid) < 2**32),
            ("webhook_url", isinstance(webhook_url, str)
             and (not webhook_url or webhook_url.startswith(("http://", "https://")))),
            ("video", isinstance(video, bool)),
            ("appid", answer.get("appid") in (None, "", app_id)),
        ) if not ok
    ]
    if problems:
        return None, "lookup answer has a bad " + ", ".join(problems)
    return Target(channel, uid, token, webhook_url, video), ""


def parse_dial(spec: Any) -> dict[str, Any]:
    """Check a /_sandbox/sip/dial body; CallSpecError (400) names the problem."""
    if not isinstance(spec, dict):
        raise CallSpecError("body must be a JSON object")
    unknown = sorted(set(spec) - set(_DIAL_TYPES))
    if unknown:
        raise CallSpecError(f"unknown field(s): {', '.join(unknown)}")
    for name, value in spec.items():
        if not isinstance(value, _DIAL_TYPES[name]) or isinstance(value, bool):
            raise CallSpecError(f"{name} has the wrong type")
    if not spec.get("to"):
        raise CallSpecError("to is required: a phone number or an inboundsip URI")
    if spec.get("pin") and not is_decimal(spec["pin"]):
        raise CallSpecError("pin must be digits")
    if spec.get("duration_s") is not None and spec["duration_s"] < 0:
        raise CallSpecError("duration_s must be >= 0 (or null: until hung up)")
    return {**spec, "sip_headers": _sip_headers(spec.get("sip_headers", {}))}


def _sip_headers(given: dict[str, Any]) -> dict[str, str]:
    """Keep the X-* headers (never X-Agora-*); repeated ones (a list) are comma-joined."""
    kept: dict[str, str] = {}
    for name, value in given.items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            raise CallSpecError("sip_headers values must be strings or lists of strings")
        lowered = name.lower()
        if lowered.startswith("x-") and not lowered.startswith("x-agora-"):
            kept[name] = ",".join(values)
    names, per_value, total = HEADER_LIMITS
    sizes = [len(v.encode()) for v in kept.values()]
    if len(kept) > names or any(s > per_value for s in sizes) or (
            sum(sizes) + sum(len(n) for n in kept) > total):
        raise CallSpecError("sip_headers exceed the gateway's limits (20 names, 1024 bytes a "
                            "value, 4 KB in all)")
    return kept
