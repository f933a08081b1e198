"""Errors raised by the SIP/PSTN gateway client.

Every failed gateway exchange becomes one of these classes, chosen in exactly one place
(:func:`error_from_response`). The gateway documents its statuses (401, 404, 500, 503, and
``200`` with ``success:false``) but no error body, so the body is read loosely: an ``error`` or
``reason`` key when it is JSON, else a short excerpt of the text. ``http_status`` is what *our*
API answers if the error reaches a caller, not the gateway's status.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import requests

from upstream.errors import UpstreamFailure, one_line

#: Longest reason we keep; the gateway's are short, a proxy's error page is not.
_MAX_REASON_CHARS = 200


class GatewayError(UpstreamFailure):
    """Base class: a SIP gateway call failed."""

    http_status = 502

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        reason: str | None = None,
        action: str | None = None,
        response: requests.Response | None = None,
    ) -> None:
        self.message = message
        self.action = action
        super().__init__(status=status, reason=reason, response=response)

    def _summary(self) -> str:
        head = "SIP gateway"
        if self.action:
            head = f"{head} {self.action}"
        head = f"{head} unavailable" if self.status is None else f"{head} {self.status}"
        parts = [p for p in (self.reason, self.message) if p]
        return f"{head}: {'; '.join(parts)}" if parts else head


class GatewayAuthError(GatewayError):
    """The gateway refused our credential, or it is not provisioned for the App ID (401/403)."""


class CallNotFound(GatewayError):
    """No such call or reservation: unknown, or already ended (404)."""

    http_status = 404


class GatewayRejected(GatewayError):
    """The gateway answered 200 with ``success:false``; ``reason`` says why ("Busy", ...)."""


class GatewayBadRequest(GatewayError):
    """The gateway could not use our request (500 "Missing Parameters", 400): a bug on our side."""


class GatewayUnavailable(GatewayError):
    """No usable answer: 503 "No resource currently available", a 502/504 from a proxy, or a
    timeout/connection failure (then chained from the requests exception)."""

    http_status = 503
    transient = True


_BY_STATUS: dict[int, type[GatewayError]] = {
    400: GatewayBadRequest,
    401: GatewayAuthError,
    403: GatewayAuthError,
    404: CallNotFound,
    500: GatewayBadRequest,
    502: GatewayUnavailable,
    503: GatewayUnavailable,
    504: GatewayUnavailable,
}


def error_from_response(
    resp: requests.Response,
    *,
    action: str | None = None,
    secrets: Iterable[str | None] = (),
) -> GatewayError | None:
    """The error this gateway response means, or None when it is a success.

    A 2xx is a success unless its body says ``"success": false`` (how ``outbound``, ``bridge``
    and ``rebridge`` decline). Any value in ``secrets`` (the credential, tokens, numbers we
    sent) is blanked out of the reason in case the gateway echoes it back.
    """
    status = resp.status_code
    body = _json_or_none(resp)
    if 200 <= status < 300:
        if isinstance(body, dict) and body.get("success") is False:
            reason = _clean(_reason(body, resp), secrets) or "rejected"
            return GatewayRejected(status=status, reason=reason, action=action, response=resp)
        return None
    cls = _BY_STATUS.get(status, GatewayError)
    reason = _clean(_reason(body, resp), secrets)
    return cls(status=status, reason=reason, action=action, response=resp)


def _json_or_none(resp: requests.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return None


def _reason(body: Any, resp: requests.Response) -> str | None:
    """``error`` or ``reason`` from a JSON object, else the body text."""
    if isinstance(body, dict):
        for key in ("error", "reason"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value
        return None
    if body is not None:
        return None  # JSON, but not an object: nothing we can name
    return resp.text if resp.content else None


def _clean(text: str | None, secrets: Iterable[str | None]) -> str | None:
    """Secrets blanked, then one short line."""
    return one_line(text, _MAX_REASON_CHARS, secrets)
