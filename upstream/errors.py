"""The base of every error an upstream client raises, and the helpers its subclasses share.

Each client maps a response to one of its own subclasses in exactly one function; the transport
failures are mapped once, in :class:`upstream.base.UpstreamClient`. ``http_status`` is what
*our* API answers if the error reaches a caller, not the upstream's status.
"""

from __future__ import annotations

from collections.abc import Iterable

import requests

#: ``reason`` of a 2xx whose body we cannot use (an upstream fault no retry would fix).
MALFORMED_RESPONSE = "MalformedResponse"
#: Shorter values are not scrubbed from texts (a uid like "1" would mangle them).
_MIN_SECRET_CHARS = 4


class UpstreamFailure(Exception):
    """Base: a call to an upstream API failed. Carries its status, reason and response."""

    http_status = 502
    #: Whether a later attempt could succeed where this one failed (see upstream.retry).
    transient = False
    #: The server's hint, in seconds, of when to try again (429 Retry-After), if any.
    retry_after: float | None = None

    def __init__(
        self,
        *,
        status: int | None = None,
        reason: str | None = None,
        response: requests.Response | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.response = response
        # Only the one-line summary goes into args, so repr() shows nothing else either (the
        # response, and the request behind it with its Authorization header, stay out).
        super().__init__(self._summary())

    def _summary(self) -> str:
        return "upstream call failed"

    def __str__(self) -> str:
        return self._summary()

    @property
    def malformed(self) -> bool:
        """A 2xx (or no status at all) whose body could not be used."""
        return self.reason == MALFORMED_RESPONSE and (
            self.status is None or 200 <= self.status < 300
        )

    @property
    def kind(self) -> str:
        """What to count this failure as: its class name, or MalformedResponse."""
        return MALFORMED_RESPONSE if self.malformed else type(self).__name__


def one_line(text: str | None, limit: int, secrets: Iterable[str | None] = ()) -> str | None:
    """``text`` as one short line, with any of ``secrets`` blanked out first (so truncation
    cannot leave half of one); None when nothing is left."""
    if not text:
        return None
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET_CHARS:
            text = text.replace(secret, "***")
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat or None
