"""Protection for the pages: CSRF tokens on cookie-authenticated requests, and security headers
on every HTML response.

A browser attaches cookies to requests that other sites trigger, and any site can submit a form
to us. So a state-changing request whose body is a form, or that carries our session cookie,
must also carry the session's CSRF token (the ``csrf_token`` form field or the ``X-CSRF-Token``
header). Requests authenticated with ``Authorization: Bearer`` hold no cookie-based authority,
and another site cannot add that header without a CORS preflight, so they are exempt; so are the
webhooks of NCS and the SIP gateway, which are signed or carry their own token.
"""

from __future__ import annotations

import hmac
import logging
import secrets

from flask import Flask, Response, current_app, request, session
from markupsafe import escape

from web.errors import BadRequest

logger = logging.getLogger(__name__)

SESSION_KEY = "csrf_token"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
#: Machine-to-machine hooks, authenticated by signature or by a token of their own.
EXEMPT_PATHS = frozenset({"/webhook"})
EXEMPT_PREFIXES = ("/sip/",)

#: Sent with every HTML page. No inline script or style anywhere: scripts and styles are files
#: under /static, so an injected <script> would not run.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class CsrfFailed(BadRequest):
    """A cookie-authenticated or form request came without the session's CSRF token."""

    code = "csrf_failed"


def csrf_token() -> str:
    """The session's CSRF token, made on first use. Templates call it as ``csrf_token()``."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def rotate_csrf_token() -> str:
    """A new token for the session (after sign-in, so a token seen before it is worthless)."""
    session.pop(SESSION_KEY, None)
    return csrf_token()


def needs_csrf_check(*, method: str, path: str, mimetype: str, has_session_cookie: bool,
                     authorization: str | None) -> bool:
    """Whether a request must carry the CSRF token (a pure rule, tested directly)."""
    if csrf_exempt(method=method, path=path):
        return False
    if authorization and authorization.split(" ", 1)[0].lower() == "bearer":
        return False
    return mimetype in FORM_TYPES or has_session_cookie


def csrf_exempt(*, method: str, path: str) -> bool:
    """Requests never asked for a token, whatever else they carry: safe methods, and the machine
    hooks. Decided from the method and path alone, before any header or cookie is parsed (every
    NCS delivery comes through here on its way to the caller's agent)."""
    return (method.upper() not in UNSAFE_METHODS or path in EXEMPT_PATHS
            or path.startswith(EXEMPT_PREFIXES))


def token_matches(expected: object, given: str | None) -> bool:
    """Constant-time comparison; a session with no token matches nothing."""
    if not isinstance(expected, str) or not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def apply_page_headers(response: Response) -> Response:
    """Add the page headers to an HTML response, leaving any a view set itself."""
    if response.mimetype == "text/html":
        for name, value in PAGE_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    """Enforce CSRF tokens, offer ``csrf_token()`` to templates, and protect every page."""
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.before_request(_enforce_csrf)
    app.after_request(apply_page_headers)


def _enforce_csrf() -> Response | None:
    if csrf_exempt(method=request.method, path=request.path):
        return None
    cookie_name = current_app.config["SESSION_COOKIE_NAME"]
    if not needs_csrf_check(method=request.method, path=request.path,
                            mimetype=request.mimetype,
                            has_session_cookie=cookie_name in request.cookies,
                            authorization=request.headers.get("Authorization")):
        return None
    given = request.headers.get(HEADER)
    if given is None and request.mimetype in FORM_TYPES:
        given = request.form.get(FORM_FIELD)
    if token_matches(session.get(SESSION_KEY), given):
        return None
    logger.warning("csrf.refused", extra={"path": request.path, "method": request.method,
                                          "token_sent": given is not None})
    message = "the form has expired or did not come from this site; reload the page and retry"
    if request.mimetype in FORM_TYPES and request.accept_mimetypes.accept_html:
        return _failure_page(message)
    raise CsrfFailed(message)


def _failure_page(message: str) -> Response:
    html = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Form refused</title></head><body><h1>Form refused (csrf_failed)</h1>"
            f"<p>{escape(message)}.</p></body></html>")
    return Response(html, status=400, mimetype="text/html")
