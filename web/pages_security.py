"""Protection for the pages: CSRF tokens on cookie-authenticated requests (Flask-WTF's
CSRFProtect), and security headers on every HTML response.

A browser attaches cookies to requests that other sites trigger, and any site can submit a form
to us. So on the pages (each pages blueprint declares ``bp.before_request(check_csrf)``), a
state-changing request whose body is a form, or that carries our session cookie, must also carry
the session's CSRF token (the ``csrf_token`` form field or the ``X-CSRF-Token`` header).
Requests authenticated with ``Authorization: Bearer`` hold no cookie-based authority, and another
site cannot add that header without a CORS preflight, so they are exempt. The webhooks and the
admin API are not pages: nothing is checked there (they are signed or carry a token of their own).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, g, request, session
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from markupsafe import escape

from web.errors import BadRequest

logger = logging.getLogger(__name__)

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
csrf = CSRFProtect()

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


def rotate_csrf_token() -> str:
    """A new token for the session (after sign-in, so a token seen before it is worthless)."""
    session.pop(FIELD, None)
    g.pop(FIELD, None)  # Flask-WTF keeps the request's signed token here
    return generate_csrf()


def needs_csrf_check(*, method: str, mimetype: str, has_session_cookie: bool,
                     authorization: str | None) -> bool:
    """Whether a request to a page must carry the CSRF token (a pure rule, tested directly)."""
    if method.upper() not in UNSAFE_METHODS:
        return False
    if authorization and authorization.split(" ", 1)[0].lower() == "bearer":
        return False
    return mimetype in FORM_TYPES or has_session_cookie


def apply_page_headers(response: Response) -> Response:
    """Add the page headers to an HTML response, leaving any a view set itself."""
    if response.mimetype == "text/html":
        for name, value in PAGE_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    """Offer ``csrf_token()`` to templates (a token signed with the session key, valid for the
    session's life) and protect every HTML page's headers. Tokens are checked only where a
    pages blueprint asks for it (check_csrf): Flask-WTF's app-wide check is off."""
    app.config.update(
        WTF_CSRF_CHECK_DEFAULT=False, WTF_CSRF_METHODS=set(UNSAFE_METHODS),
        WTF_CSRF_FIELD_NAME=FIELD, WTF_CSRF_HEADERS=[HEADER], WTF_CSRF_TIME_LIMIT=None,
        # Its Referer check on HTTPS would refuse every form: our pages send no Referer
        # (Referrer-Policy: no-referrer); the token and SameSite cookies are the defence.
        WTF_CSRF_SSL_STRICT=False)
    csrf.init_app(app)
    app.after_request(apply_page_headers)


def check_csrf() -> Response | None:
    """A pages blueprint's ``before_request``: refuse a state-changing request that needs the
    CSRF token (needs_csrf_check) and does not carry this session's."""
    cookie_name = current_app.config["SESSION_COOKIE_NAME"]
    if not needs_csrf_check(method=request.method, mimetype=request.mimetype,
                            has_session_cookie=cookie_name in request.cookies,
                            authorization=request.headers.get("Authorization")):
        return None
    try:
        csrf.protect()
    except CSRFError as exc:
        logger.warning("csrf.refused", extra={"path": request.path, "method": request.method,
                                              "reason": exc.description})
    else:
        return None
    message = "the form has expired or did not come from this site; reload the page and retry"
    if request.mimetype in FORM_TYPES and request.accept_mimetypes.accept_html:
        return _failure_page(message)
    raise CsrfFailed(message)


def _failure_page(message: str) -> Response:
    html = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Form refused</title></head><body><h1>Form refused (csrf_failed)</h1>"
            f"<p>{escape(message)}.</p></body></html>")
    return Response(html, status=400, mimetype="text/html")
