"""Bearer tokens and static Authorization headers, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, request

from web.errors import Unauthorized
from web.security import rate_limit_failed_auth

F = TypeVar("F", bound=Callable[..., Any])


def bearer_token_matches(expected: str, header: str | None) -> bool:
    """True when ``header`` is ``Bearer <expected>``. An unset token never matches."""
    if not expected or not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def header_matches(expected: str, header: str | None) -> bool:
    """True when ``header`` is exactly ``expected``, scheme and all (a static header agreed
    out of band, such as the SIP gateway's). An unset value never matches."""
    if not expected or header is None:
        return False
    return hmac.compare_digest(header.encode("utf-8", "surrogatepass"), expected.encode())


def require_admin(view: F) -> F:
    """Refuse the request with 401 unless it carries ``Authorization: Bearer ADMIN_TOKEN``; an
    address over its failed-authentication limit is refused (429) before the token is compared."""

    @rate_limit_failed_auth()
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = current_app.extensions["settings"].admin_token
        if not token:
            raise Unauthorized("the admin API is off: set ADMIN_TOKEN to use it")
        if not bearer_token_matches(token, request.headers.get("Authorization")):
            raise Unauthorized("missing or wrong bearer token")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
