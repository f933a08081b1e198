"""Control API for the SIP gateway stand-in, under /_sandbox/sip (never on real Agora).

- ``POST /dial``: an incoming phone call, ``{"to", "from"?, "pin"?, "duration_s"?,
  "sip_headers"?}`` (``duration_s`` defaults to 5; null keeps the caller on until endcall or
  ``/calls/<callid>/hangup``). Answers 201 ``{"callid", "status": "bridged"|"rejected",
  "channel", "reason"?}`` once the lookup is done.
- ``GET /calls``: every gateway call with its webhooks, DTMF and transfer.
- ``POST /calls/<callid>/hangup``: the person on the phone hangs up now.
- ``GET /reservations``: the ``inbound``/``inboundsip`` reservations.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from sandbox import sip_inbound
from sandbox.callers import CallSpecError
from sandbox.sip_gateway import Gateway
from sandbox.sip_models import SipError

bp = Blueprint("sip_control", __name__, url_prefix="/_sandbox/sip")


def gateway() -> Gateway:
    return current_app.extensions["sandbox"].gateway


@bp.errorhandler(CallSpecError)
def bad_request(error: CallSpecError) -> tuple[Response, int]:
    return jsonify(error=str(error)), 400


@bp.errorhandler(SipError)
def not_found(error: SipError) -> tuple[Response, int]:
    return jsonify(error=error.message), error.status


@bp.post("/dial")
def dial() -> tuple[Response, int]:
    return jsonify(sip_inbound.dial(gateway(), request.get_json(force=True, silent=True))), 201


@bp.get("/calls")
def calls() -> Response:
    return jsonify(calls=gateway().listing())


@bp.post("/calls/<callid>/hangup")
def hang_up(callid: str) -> Response:
    gateway().hang_up_phone(callid)
    return jsonify(callid=callid, status="ended")


@bp.get("/reservations")
def reservations() -> Response:
    return jsonify(reservations=gateway().reservations())
