"""POST /webhook: verify, parse, classify, hand over, answer. Nothing else happens here."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from calls.agent_events import handle_agent_event
from calls.lifecycle import CallerJoined, CallerLeft
from ncs.events import (
    CONVOAI_PRODUCT,
    AgentEvent,
    CallStateEvent,
    EnvelopeError,
    Ignored,
    classify,
    delivery_labels,
    parse_envelope,
)
from ncs.signature import SignatureError
from observability import metrics
from store import StoreUnavailable
from web.errors import BadRequest, Unauthorized, Unavailable

logger = logging.getLogger(__name__)
bp = Blueprint("ncs", __name__)

#: The reason (and outcome label) of a delivery dated outside ncs.freshness.ReplayWindow.
STALE_DELIVERY = "stale_delivery"


#: The outcome label of a delivery refused with one of these errors (werkzeug's: a body over
#: MAX_CONTENT_LENGTH, say). Any other exception is counted as "error".
_REFUSAL_OUTCOMES: tuple[tuple[type[Exception], str], ...] = (
    (Unauthorized, "bad_signature"), (BadRequest, "bad_request"), (Unavailable, "unavailable"),
    (HTTPException, "bad_request"))


@dataclass
class _Delivery:
    """What the metrics learn of one delivery: its envelope's fields, once it is read."""

    product: int | None = None
    event: int | None = None
    #: the outcome label, when the answer's own fields do not say it
    outcome: str | None = None


@bp.post("/webhook")
def webhook() -> ResponseReturnValue:
    """Handle one delivery and count it, whatever its answer (phone_agent_webhooks_total)."""
    delivery = _Delivery()
    try:
        answer = _handle(delivery)
    except Exception as exc:
        outcome = next((name for cls, name in _REFUSAL_OUTCOMES if isinstance(exc, cls)),
                       "error")
        if outcome == "bad_signature":
            metrics.signature_failure()
        metrics.webhook(*delivery_labels(delivery.product, delivery.event), outcome)
        raise
    outcome = delivery.outcome or answer.get("outcome") or answer.get("status", "ok")
    if outcome == "duplicate_notice":
        metrics.duplicate()
    metrics.webhook(*delivery_labels(delivery.product, delivery.event), outcome)
    return jsonify(answer)


def _handle(delivery: _Delivery) -> dict[str, Any]:
    raw = request.get_data(cache=False)
    ext = current_app.extensions
    try:
        secret = ext["ncs_verifier"].verify(raw, request.headers)
    except SignatureError as exc:
        logger.warning("ncs.signature_failed", extra={"kind": exc.kind})
        raise Unauthorized(str(exc), code="invalid_signature") from None
    try:
        envelope = parse_envelope(raw)
    except EnvelopeError as exc:
        raise BadRequest(str(exc), code="invalid_envelope") from None
    delivery.product, delivery.event = envelope.product_id, envelope.event_type
    allowed = ext["ncs_secrets_for_product"](envelope.product_id)
    if secret.name not in allowed:
        logger.warning("ncs.wrong_secret", extra={"product": envelope.product_id,
                                                  "signed_with": secret.name})
        raise Unauthorized(f"productId {envelope.product_id} events must be signed with "
                           f"{' or '.join(allowed)}", code="invalid_signature")
    log = {"notice_id": envelope.notice_id, "product": envelope.product_id,
           "event_type": envelope.event_type}
    age_s = ext["ncs_replay_window"].stale_age_s(envelope.notify_ms)
    if age_s is not None:
        # Older than the notices table remembers (a replay) or dated ahead: acted on by nothing
        # and recorded nowhere. 200, so that NCS does not send it again.
        logger.warning("ncs.stale_delivery", extra={**log, "age_s": age_s})
        delivery.outcome = STALE_DELIVERY
        return {"status": "ignored", "reason": STALE_DELIVERY}
    event = classify(envelope, pstn_uid=ext["settings"].pstn_uid)
    if isinstance(event, Ignored):
        logger.info("ncs.ignored", extra={**log, "reason": event.reason})
        return {"status": "ignored", "reason": event.reason}
    try:
        if isinstance(event, AgentEvent):
            answer = handle_agent_event(ext["calls"], event, notice_id=envelope.notice_id)
        elif isinstance(event, CallStateEvent):
            answer = ext["sip"].convoai_call_state(event, notice_id=envelope.notice_id)
        else:
            assert isinstance(event, CallerJoined | CallerLeft)
            answer = ext["calls"].handle_caller_event(event, event_type=envelope.event_type)
    except StoreUnavailable as exc:
        # Nothing was recorded, so NCS must send it again: answer with a status it retries on.
        logger.error("ncs.store_unavailable", extra={**log, "error": str(exc)})
        raise Unavailable("the call store is unavailable; retry later") from None
    return answer


def secrets_for_product(convoai_secret_set: bool):  # type: ignore[no-untyped-def]
    """Which configured secrets may sign events of a product. ConvoAI's block in the Console has
    its own secret (AGORA_CONVOAI_NCS_SECRET); without one, it shares AGORA_NCS_SECRET."""
    rtc = ("AGORA_NCS_SECRET", "AGORA_NCS_SECRET_PREVIOUS")

    def allowed(product_id: int) -> tuple[str, ...]:
        if product_id == CONVOAI_PRODUCT and convoai_secret_set:
            return ("AGORA_CONVOAI_NCS_SECRET",)
        return rtc

    return allowed
