"""The demo shop: an operator's tool endpoint, offline, for the orders persona's tools.

``POST /shop/agent-tools/<tool>`` receives what the service relays for an operator tool
(README, "Tools"): JSON ``{"tool", "arguments", "call"}``, signed by the Standard Webhooks
convention with the ``whsec_`` secret in ``SHOP_TOOLS_SECRET``, and an ``Idempotency-Key``.
It answers 401 to a missing or wrong signature, 400 without an Idempotency-Key, and JSON
otherwise. Every request that reaches a tool is recorded (``/_sandbox/shop``), so tests can
count how often the operator's side was reached.

Tools: ``lookup_order {order_number}`` (no side effects) and ``cancel_order {order_number}``
(a side effect: the first request per Idempotency-Key cancels; a repeat gets the same answer).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

bp = Blueprint("shop", __name__, url_prefix="/shop")
#: Standard Webhooks: a timestamp further than this from now is refused (replays).
TOLERANCE_S = 300
SECRET_PREFIX = "whsec_"
ORDERS: dict[str, dict[str, Any]] = {
    "A1001": {"status": "shipped", "carrier": "DHL", "eta": "tomorrow", "items": 2},
    "A1002": {"status": "processing", "eta": "in 3 days", "items": 1},
    "A1003": {"status": "delivered", "delivered_on": "last Monday", "items": 4},
}


class SignatureError(Exception):
    """The request is not signed with the shop's secret (one message per failure)."""


class WebhookVerifier:
    """A Standard Webhooks verifier for one ``whsec_`` secret, built once."""

    def __init__(self, secret: str) -> None:
        if not secret.startswith(SECRET_PREFIX):
            raise SignatureError("the shop has no whsec_ secret (set SHOP_TOOLS_SECRET)")
        try:
            self.key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("SHOP_TOOLS_SECRET is not base64 after whsec_") from None

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        msg_id = headers.get("webhook-id")
        timestamp = headers.get("webhook-timestamp")
        signatures = headers.get("webhook-signature")
        if not msg_id or not timestamp or not signatures:
            raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise SignatureError("webhook-timestamp is not an integer") from None
        if abs(now - sent_at) > TOLERANCE_S:
            raise SignatureError("webhook-timestamp is too far from now")
        signed = f"{msg_id}.{timestamp}.".encode() + body
        expected = base64.b64encode(hmac.new(self.key, signed, hashlib.sha256).digest())
        for candidate in signatures.split():
            version, _, value = candidate.partition(",")
            if version == "v1" and hmac.compare_digest(value.encode(), expected):
                return
        raise SignatureError("signature mismatch")


def answer(tool: str, arguments: Mapping[str, Any], cancelled: set[str]) -> dict[str, Any]:
    """The shop's answer to a tool request (``cancelled``: orders cancelled so far)."""
    number = str(arguments.get("order_number", "")).strip().upper()
    order = ORDERS.get(number)
    if order is None:
        return {"found": False, "order_number": number,
                "message": f"No order {number or '(none given)'} was found."}
    if tool == "cancel_order":
        if order["status"] in ("shipped", "delivered"):
            return {"found": True, "order_number": number, "cancelled": False,
                    "message": f"Order {number} has already {order['status']}; it cannot be "
                               "cancelled."}
        cancelled.add(number)
        return {"found": True, "order_number": number, "cancelled": True,
                "message": f"Order {number} is cancelled."}
    status = "cancelled" if number in cancelled else order["status"]
    return {"found": True, "order_number": number, **order, "status": status}


@bp.post("/agent-tools/<tool>")
def agent_tool(tool: str) -> tuple[Response, int]:
    sandbox = current_app.extensions["sandbox"]
    raw = request.get_data()
    try:
        WebhookVerifier(sandbox.config.shop_tools_secret).verify(
            raw, request.headers, sandbox.clock.now())
    except SignatureError as exc:
        return jsonify(error=str(exc)), 401
    key = request.headers.get("Idempotency-Key", "")
    if not key:
        return jsonify(error="an Idempotency-Key header is required"), 400
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    arguments = body.get("arguments") if isinstance(body, dict) else None
    if not isinstance(arguments, dict):
        return jsonify(error="the body must be JSON with an arguments object"), 400
    if tool not in ("lookup_order", "cancel_order"):
        return jsonify(error=f"the shop has no tool {tool}"), 404
    world = sandbox.world
    with world.lock:
        earlier = next((r for r in world.shop_requests if r["idempotency_key"] == key), None)
        cancelled = {r["result"]["order_number"] for r in world.shop_requests
                     if r["result"].get("cancelled")}
        result = earlier["result"] if earlier and tool == "cancel_order" else answer(
            tool, arguments, cancelled)
        world.shop_requests.append({
            "at": sandbox.clock.now(), "tool": tool, "idempotency_key": key,
            "webhook_id": request.headers.get("webhook-id"), "arguments": arguments,
            "call": body.get("call"), "body_tool": body.get("tool"), "result": result})
    return jsonify(result), 200
