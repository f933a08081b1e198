"""The SIP gateway's HTTP surface: its ring-time lookup hook, its lifecycle events, and the
admin API for lines, outbound calls and call control."""

from __future__ import annotations

import hmac
import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, has_request_context, jsonify, request
from flask.typing import ResponseReturnValue

from calls.records import call_json, iso
from config import Settings
from sip.errors import GatewayError
from sip.inputs import dtmf_digits, transfer_target
from sip.service import GuardRefused, NoPhoneLeg, Refusal, SipService
from store import CallRecord
from web.auth import bearer_token_matches, header_matches, require_admin
from web.errors import ApiError, BadRequest, NotFound, Unauthorized, json_object
from web.security import refuse_failed_credential

logger = logging.getLogger(__name__)
bp = Blueprint("sip", __name__)


class CallRefused(ApiError):
    """A cost guard (MAX_CONCURRENT_CALLS, DAILY_AGENT_MINUTES) keeps the call from being made."""

    status = 429


class GatewayFailed(ApiError):
    """The SIP gateway refused or failed the request."""

    status = 502
    code = "gateway_error"


class PhoneLegMissing(ApiError):
    """The call has no leg at the SIP gateway (yet) to control."""

    status = 409
    code = "no_phone_leg"


@bp.post("/sip/lookup")
def lookup() -> ResponseReturnValue:
    settings = current_app.extensions["settings"]
    if not settings.sip_lookup_on:
        raise NotFound("the lookup hook is off: set SIP_LOOKUP_AUTH (or SIP_LOOKUP_TOKEN)")
    if not lookup_authorized(settings, request.headers.get("Authorization")):
        raise Unauthorized("missing or wrong Authorization header")
    body = json_object()
    try:
        answer = _sip().lookup(
            did=body.get("did"), pin=str(body.get("pin") or ""),
            callerid=str(body.get("callerid") or ""), callid=str(body.get("callid") or ""),
            events_url=events_url())
    except Refusal as exc:
        # 404 is how the gateway is told to refuse the call (the only refusal it documents).
        logger.info("sip.lookup_refused", extra={"reason": str(exc)})
        return jsonify(error="refused", message=str(exc)), 404
    return jsonify(answer)


def lookup_authorized(settings: Settings, header: str | None) -> bool:
    """Whether ``header`` is the Authorization value agreed with Agora at provisioning, which
    the gateway sends exactly as supplied: all of SIP_LOOKUP_AUTH (any scheme), or
    ``Bearer SIP_LOOKUP_TOKEN``. With both set either is taken (to move from one to the
    other without refusing calls)."""
    by_value = header_matches(settings.sip_lookup_auth, header)
    by_token = bearer_token_matches(settings.sip_lookup_token, header)
    return by_value or by_token


@bp.post("/sip/events/<token>")
def gateway_event(token: str) -> ResponseReturnValue:
    expected = current_app.extensions["settings"].sip_events_token
    # The unguessable path is the credential (the gateway signs nothing); a wrong one is
    # indistinguishable from a path that does not exist.
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        refuse_failed_credential()  # still a failed credential: counted like a 401
        raise NotFound("no such path")
    outcome = _sip().gateway_event(json_object())
    return jsonify(status="ok", outcome=outcome)


@bp.get("/api/lines")
@require_admin
def list_lines() -> ResponseReturnValue:
    return jsonify(lines=current_app.extensions["store"].list_lines())


@bp.post("/api/lines")
@require_admin
def add_line() -> ResponseReturnValue:
    body = json_object()
    try:
        line = _sip().lines.add(body.get("number"), persona=body.get("persona"),
                                label=body.get("label"), variables=body.get("variables"),
                                pins=body.get("pins"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return jsonify(line), 201


@bp.delete("/api/lines/<path:number>")
@require_admin
def remove_line(number: str) -> ResponseReturnValue:
    try:
        removed = _sip().lines.remove(number)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if removed is None:
        raise NotFound(f"no line {number}")
    return "", 204


@bp.get("/api/numbers")
@require_admin
def list_numbers() -> ResponseReturnValue:
    return jsonify(numbers=[reservation_json(r) for r in
                            current_app.extensions["store"].list_reservations()])


@bp.post("/api/numbers")
@require_admin
def provision_number() -> ResponseReturnValue:
    body = json_object()
    reservation = provision_from(str(body.get("region") or "NA"), body.get("persona"),
                                 body.get("label"))
    return jsonify(reservation_json(reservation)), 201


@bp.delete("/api/numbers/<reservation_id>")
@require_admin
def release_number(reservation_id: str) -> ResponseReturnValue:
    reservation = current_app.extensions["store"].get_reservation(reservation_id)
    if reservation is None or reservation["released_at"] is not None:
        raise NotFound(f"no reservation {reservation_id}")
    try:
        _sip().reservations.release(reservation)
    except GatewayError as exc:
        raise GatewayFailed(f"the SIP gateway refused: {exc}") from None
    return "", 204


def provision_from(region: str, persona: Any, label: Any) -> dict[str, Any]:
    """Make a reservation, its failures as API errors (the API, /try and `flask sip
    provision`)."""
    try:
        return _sip().reservations.provision(region=region, persona=persona, label=label,
                                             events_url=events_url())
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    except GatewayError as exc:
        raise GatewayFailed(f"the SIP gateway refused: {exc}") from None


def reservation_json(reservation: dict[str, Any]) -> dict[str, Any]:
    return {"id": reservation["id"], "number": f"+{reservation['did'].lstrip('+')}",
            "display": reservation["display"], "pin": reservation["pin"],
            "channel": reservation["channel"], "region": reservation["region"],
            "persona": reservation["persona"], "label": reservation["label"],
            "created_at": iso(reservation["created_at"]),
            "expires_at": iso(reservation["expires_at"]),
            "released_at": iso(reservation.get("released_at"))}


@bp.post("/api/calls")
@require_admin
def place_call() -> ResponseReturnValue:
    body = json_object()
    variables, persona = body.get("variables"), body.get("persona")
    settings = current_app.extensions["settings"]
    caller_id = body.get("from") or settings.outbound_caller_id or None
    region, prompt = str(body.get("region") or "NA"), str(body.get("prompt") or "false")
    try:
        if body.get("at") is not None:
            # Dialled at that time by the dialer (outbound/); the cost guards apply then.
            scheduled = current_app.extensions["outbound"].schedule_call(
                to=body.get("to"), caller_id=caller_id, persona=persona, variables=variables,
                at=instant(body["at"]), region=region, prompt=prompt,
                base_url=request.url_root)
            return jsonify({**call_json(scheduled.call), "at": iso(scheduled.due_at)}), 202
        placed = _sip().place_outbound(
            to=body.get("to"), caller_id=caller_id, persona=persona, variables=variables,
            region=region, prompt=prompt, events_url=events_url())
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    except GuardRefused as exc:
        raise CallRefused(str(exc), code=exc.reason) from None
    return jsonify(call_json(placed.call)), 202


def instant(value: Any) -> float:
    """An ISO 8601 time with its offset (``2026-12-24T09:30:00+01:00`` or ``...Z``) as epoch
    seconds, or ValueError. A time without an offset is ambiguous for a call: refused."""
    if not isinstance(value, str):
        raise ValueError("at must be an ISO 8601 time with its offset, e.g. "
                         "2026-12-24T09:30:00+01:00")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"at {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ValueError("at needs its UTC offset (Z or +01:00): whose 09:00 is it otherwise?")
    return moment.timestamp()


@bp.post("/api/calls/<call_id>/hangup")
@require_admin
def hangup(call_id: str) -> ResponseReturnValue:
    return _control(call_id, lambda sip, call: sip.hangup(call),
                    failed="the call is ended and its agent stopped, but the SIP gateway did "
                           "not hang up the phone leg (hang up again to retry)")


@bp.post("/api/calls/<call_id>/transfer")
@require_admin
def transfer(call_id: str) -> ResponseReturnValue:
    body = json_object()
    try:
        destination, leg = transfer_target(body.get("destination"), body.get("leg"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return _control(call_id, lambda sip, call: sip.transfer(call, destination, leg))


@bp.post("/api/calls/<call_id>/dtmf")
@require_admin
def dtmf(call_id: str) -> ResponseReturnValue:
    try:
        digits = dtmf_digits(json_object().get("digits"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return _control(call_id, lambda sip, call: sip.send_dtmf(call, digits) or "dtmf_sent")


def events_url() -> str | None:
    """Where the gateway should send its lifecycle events, or None when they are off (or no
    public URL is known, as in a shell command without PUBLIC_URL)."""
    return _sip().events_url(request.url_root if has_request_context() else None)


def _control(call_id: str, action: Any, *,
             failed: str = "the SIP gateway refused") -> ResponseReturnValue:
    call: CallRecord | None = current_app.extensions["store"].get_call(call_id)
    if call is None:
        raise NotFound(f"no call {call_id}")
    try:
        outcome = action(_sip(), call)
    except NoPhoneLeg as exc:
        # Nothing was asked of the gateway: not a 502, the call is not a phone call (yet).
        raise PhoneLegMissing(str(exc)) from None
    except GatewayError as exc:
        raise GatewayFailed(f"{failed}: {exc}") from None
    return jsonify(status="ok", outcome=outcome)


def _sip() -> SipService:
    return current_app.extensions["sip"]
