"""Agora SIP/PSTN gateway API stand-in: ``POST /sip/v1/api/pstn`` (so the service's
SIP_API_URL is <sandbox>/sip/v1/api/pstn), one URL for every action (reference B.1).

The view checks the Basic credential, validates the body (sandbox.sip_fields) and hands it to
the action's plain function. Every request is recorded for /_sandbox/requests as
``sip:<action>``, tokens fingerprinted and SIP trunk passwords masked.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from sandbox import sip_inbound, sip_outbound
from sandbox.runtime import Sandbox
from sandbox.sip_fields import parse_request
from sandbox.sip_gateway import Gateway
from sandbox.sip_models import SipError

bp = Blueprint("sip", __name__, url_prefix="/sip")

ACTIONS: dict[str, Callable[[Gateway, dict[str, Any]], dict[str, Any]]] = {
    "inbound": sip_inbound.reserve_number,
    "inboundsip": sip_inbound.reserve_sip,
    "cancelcall": sip_inbound.cancel,
    "outbound": sip_outbound.place_call,
    "endcall": Gateway.endcall,
    "bridge": Gateway.bridge,
    "unbridge": Gateway.unbridge,
    "rebridge": Gateway.rebridge,
    "send_dtmf": Gateway.send_dtmf,
    "transfer": Gateway.transfer,
}
_PASSWORD = re.compile(r"(password=)[^;]*", re.IGNORECASE)


def current_sandbox() -> Sandbox:
    return current_app.extensions["sandbox"]


@bp.errorhandler(SipError)
def sip_error(error: SipError) -> tuple[Response, int]:
    return jsonify(error=error.message), error.status


@bp.post("/v1/api/pstn")
def pstn() -> Response:
    sandbox = current_sandbox()
    check_auth(request.headers.get("Authorization"), sandbox.config.sip_auth)
    body = parse_request(request.get_json(force=True, silent=True), app_id=sandbox.config.app_id)
    return jsonify(ACTIONS[body["action"]](sandbox.gateway, body))


def check_auth(header: str | None, expected: str) -> None:
    """``Authorization: Basic <the value Agora issued>``, compared as is (B.1)."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic" or not hmac.compare_digest(value.strip().encode(),
                                                            expected.encode()):
        raise SipError(401, "Unauthorized")


@bp.after_request
def record(response: Response) -> Response:
    body = request.get_json(force=True, silent=True)
    action = body.get("action") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("sip"), str):
        body = {**body, "sip": _PASSWORD.sub(r"\1***", body["sip"])}
    current_sandbox().record_request(
        method=request.method, path=request.path,
        kind="sip:" + (action if isinstance(action, str) and action else "unknown"),
        status=response.status_code, body=body, query=request.args.to_dict(),
        authorization=request.headers.get("Authorization"),
    )
    return response
