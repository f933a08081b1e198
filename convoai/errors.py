"""Errors raised by the ConvoAI client.

Every upstream failure becomes one of these classes, chosen in exactly one place
(:func:`error_from_response`). Each class says which status our own API answers if the error
reaches a caller (``http_status``); that is about *our* contract, not Agora's status.
"""

from __future__ import annotations

import math

import requests

from upstream.errors import UpstreamFailure, one_line

#: Longest ``detail`` we keep; Agora details are short, gateway error pages are not.
_MAX_DETAIL_CHARS = 300
#: Upstream statuses that are worth another try (None: a failure that carried no status).
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504, None})


class ConvoAIError(UpstreamFailure):
    """Base class: a ConvoAI call failed."""

    http_status = 502

    def __init__(
        self,
        *,
        status: int | None = None,
        reason: str | None = None,
        detail: str | None = None,
        response: requests.Response | None = None,
    ) -> None:
        self.detail = detail
        super().__init__(status=status, reason=reason, response=response)

    def _summary(self) -> str:
        head = "ConvoAI unavailable" if self.status is None else f"ConvoAI {self.status}"
        if self.reason:
            head = f"{head} {self.reason}"
        return f"{head}: {self.detail}" if self.detail else head


class InvalidRequest(ConvoAIError):
    """ConvoAI rejected our request body or parameters (400): a bug or bad config on our side."""

    http_status = 502


class AuthenticationFailed(ConvoAIError):
    """ConvoAI refused our credentials or the service is not enabled for the account (401/403)."""

    http_status = 502


class AgentNotFound(ConvoAIError):
    """The agent does not exist or has already exited (404)."""

    http_status = 404


class TaskConflict(ConvoAIError):
    """An agent with this name already exists, or the task conflicts with another (409)."""

    http_status = 409


class LimitExceeded(ConvoAIError):
    """The project's quota or concurrent-agent limit is reached (422); retrying soon won't help."""

    http_status = 503


class RateLimited(ConvoAIError):
    """ConvoAI throttled us (429); ``retry_after`` is the server's hint in seconds, if any."""

    http_status = 503
    transient = True

    def __init__(
        self,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        reason: str | None = None,
        detail: str | None = None,
        response: requests.Response | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(status=status, reason=reason, detail=detail, response=response)


class UpstreamError(ConvoAIError):
    """ConvoAI failed on its side (5xx) or answered with something we did not expect."""

    http_status = 502

    @property
    def transient(self) -> bool:  # type: ignore[override]
        """5xx gateway and startup errors, or a failure with no status, may pass by themselves."""
        return self.status in RETRYABLE_STATUSES


class UpstreamUnavailable(ConvoAIError):
    """No response at all: timeout or connection failure (always chained from the cause)."""

    http_status = 503
    transient = True


_BY_STATUS: dict[int, type[ConvoAIError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    403: AuthenticationFailed,
    404: AgentNotFound,
    409: TaskConflict,
    422: LimitExceeded,
    429: RateLimited,
}


def error_from_response(resp: requests.Response) -> ConvoAIError:
    """Build the error for a non-2xx response from its status and ``{"detail", "reason"}`` (or
    telephony's ``{"error_type", "description"}``) body."""
    reason, detail = _parse_error_body(resp)
    status = resp.status_code
    cls = _BY_STATUS.get(status, UpstreamError)
    if cls is RateLimited:
        return RateLimited(
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            status=status,
            reason=reason,
            detail=detail,
            response=resp,
        )
    return cls(status=status, reason=reason, detail=detail, response=resp)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; None when absent or not a number of seconds.

    The HTTP-date form is not supported (Agora is not known to send it); it yields None,
    which makes the retry policy fall back to its own backoff.
    """
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _parse_error_body(resp: requests.Response) -> tuple[str | None, str | None]:
    """(reason, detail) from the body; a non-JSON body (e.g. a gateway page) becomes the detail.

    Agent endpoints answer ``{"detail", "reason"}``; the telephony endpoints answer
    ``{"error_type", "description"}`` (reference 4.2), read as reason and detail."""
    try:
        body = resp.json()
    except ValueError:
        return None, _one_line(resp.text)
    if not isinstance(body, dict):
        return None, _one_line(resp.text)
    reason = body.get("reason") or body.get("error_type")
    detail = body.get("detail") or body.get("description")
    return (
        reason if isinstance(reason, str) and reason else None,
        _one_line(detail) if isinstance(detail, str) else None,
    )


def _one_line(text: str | None) -> str | None:
    return one_line(text, _MAX_DETAIL_CHARS)
