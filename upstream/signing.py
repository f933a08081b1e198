"""Signing what the service sends to an operator, by the Standard Webhooks convention
(https://www.standardwebhooks.com): the operator events (calls/outbox.py) and the requests to
operator tools (tools/relay.py). The tests verify both with the reference ``standardwebhooks``
package, so this stays the one place that computes the signature."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac


def valid_secret(secret: str) -> bool:
    """Whether ``secret`` is a ``whsec_`` secret whose remainder is base64."""
    if not secret.startswith("whsec_") or len(secret) <= len("whsec_"):
        return False
    try:
        base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,`` and base64 of HMAC-SHA256, keyed with the
    base64 part of ``whsec_...``, over ``id.timestamp.body``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one message (the same id on every retry)."""
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, message_id, timestamp, body)}
