"""Signing in to the dashboard with ADMIN_TOKEN, signing out, and the guard on every page."""

from __future__ import annotations

import hmac
import logging
import time
from urllib.parse import urlsplit

from flask import current_app, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from pages import bp
from web.pages_security import apply_page_headers, rotate_csrf_token
from web.security import rate_limit_failed_auth

logger = logging.getLogger(__name__)

#: The session holds only when its owner signed in; the cookie is signed with a key derived from
#: ADMIN_TOKEN (app.py), so changing the token signs everyone out.
SIGNED_IN_AT = "dashboard_signed_in_at"
SESSION_MAX_AGE_S = 12 * 3600
OPEN_ENDPOINTS = frozenset({"dashboard.login", "dashboard.sign_in", "dashboard.static"})


def signed_in() -> bool:
    at = session.get(SIGNED_IN_AT)
    return isinstance(at, int | float) and 0 <= time.time() - at < SESSION_MAX_AGE_S


@bp.before_request
def _require_sign_in() -> ResponseReturnValue | None:
    if request.endpoint in OPEN_ENDPOINTS or signed_in():
        return None
    return redirect(url_for("dashboard.login", next=_safe_next(request.full_path)))


@bp.after_request
def _protect(response: Response) -> Response:
    # Transcripts and callers' numbers must not stay in a shared browser's cache.
    if request.endpoint != "dashboard.static":
        response.headers["Cache-Control"] = "no-store"
    return apply_page_headers(response)


@bp.context_processor
def _page_context() -> dict[str, object]:
    return {"sandbox": current_app.extensions["settings"].sandbox, "signed_in": signed_in()}


@bp.get("/login")
def login() -> ResponseReturnValue:
    if signed_in():
        return redirect(_safe_next(request.args.get("next")) or url_for("dashboard.overview"))
    message = "You are signed out." if request.args.get("signed_out") else None
    return _login_page(message, status=200)


@bp.post("/login")
@rate_limit_failed_auth()
def sign_in() -> ResponseReturnValue:
    expected = current_app.extensions["settings"].admin_token
    given = request.form.get("token", "").strip()
    if not expected:
        logger.warning("dashboard.sign_in_refused", extra={"reason": "no_admin_token"})
        return _login_page("The dashboard is off: set ADMIN_TOKEN to use it.", status=401)
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        logger.warning("dashboard.sign_in_failed", extra={"reason": "wrong_token"})
        return _login_page("That token is not the admin token.", status=401)
    # A fresh session: nothing set before signing in (a planted CSRF token) carries over.
    session.clear()
    session[SIGNED_IN_AT] = time.time()
    rotate_csrf_token()
    logger.info("dashboard.signed_in")
    return redirect(_safe_next(request.form.get("next")) or url_for("dashboard.overview"))


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    session.clear()
    logger.info("dashboard.signed_out")
    return redirect(url_for("dashboard.login", signed_out=1))


def _login_page(message: str | None, *, status: int) -> ResponseReturnValue:
    next_path = _safe_next(request.values.get("next"))
    return render_template("pages/login.html", message=message, next=next_path), status


def _safe_next(target: str | None) -> str | None:
    """Where to go after signing in: only a dashboard path on this site, never another host."""
    if not target:
        return None
    target = target.rstrip("?")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or not target.startswith("/dashboard"):
        return None
    if target.startswith("//") or target.startswith("/dashboard/login"):
        return None
    return target
