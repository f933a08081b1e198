"""The sandbox panel, and ``/``: in sandbox mode the panel with the live and recent calls it
follows (and the small JSON endpoints its script polls); in production mode one line of JSON.

Sandbox mode serves only loopback callers' own simulated calls, so these endpoints need no
admin token; in production the admin API (/api/calls, bearer ADMIN_TOKEN) is the only view.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from calls import lifecycle
from calls.records import call_json, find_call_detail
from pages import bp
from pages.login import signed_in
from pages.sandbox_calls import (
    TEST_CALL_DURATION_S,
    SandboxUnreachable,
    ScriptRefused,
    list_scripts,
    place_test_call,
)
from store import Store
from web.errors import BadRequest, NotFound, Unavailable, json_object
from web.pages_security import check_csrf

logger = logging.getLogger(__name__)

sandbox_bp = Blueprint("home", __name__)
production_bp = Blueprint("home_production", __name__)
sandbox_bp.before_request(check_csrf)  # the test-call button posts with the session's token

LIVE_LIMIT = 50
RECENT_LIMIT = 20
POLL_MS = 1000


@production_bp.get("/")
def production_index() -> ResponseReturnValue:
    return jsonify(service="phone-agent", mode="production")


@bp.context_processor  # the dashboard's overview shows the panel in sandbox mode
@sandbox_bp.context_processor
def _panel() -> dict[str, object]:
    settings = current_app.extensions["settings"]
    if not settings.sandbox:
        return {}
    # A function, so the sandbox is asked for its scripts only when the panel is rendered.
    return {"sandbox_url": settings.sandbox_url, "test_call_s": TEST_CALL_DURATION_S,
            "sandbox_scripts": lambda: list_scripts(settings.sandbox_url)}


@sandbox_bp.context_processor
def _page() -> dict[str, object]:
    # What the dashboard's own pages get from pages.login: / is served in sandbox mode only.
    return {"sandbox": True, "signed_in": signed_in()}


@sandbox_bp.get("/")
def index() -> ResponseReturnValue:
    return render_template("pages/sandbox.html", poll_ms=POLL_MS)


@sandbox_bp.get("/home/calls")
def calls() -> ResponseReturnValue:
    store = _store()
    live = store.list_calls(states=list(lifecycle.OPEN_STATES), limit=LIVE_LIMIT)
    recent = store.list_calls(states=list(lifecycle.FINAL_STATES), limit=RECENT_LIMIT)
    return jsonify(live=[call_json(r) for r in live], recent=[call_json(r) for r in recent])


@sandbox_bp.get("/home/calls/<call_id>")
def call(call_id: str) -> ResponseReturnValue:
    detail = find_call_detail(_store(), call_id)
    if detail is None:
        raise NotFound(f"no call {call_id}")
    return jsonify(detail)


@sandbox_bp.post("/home/test-call")
def test_call() -> ResponseReturnValue:
    # A JSON body makes a browser send a CORS preflight, so another site cannot place calls.
    if not request.is_json:
        raise BadRequest("send Content-Type: application/json")
    body = json_object() if request.content_length else {}
    script = body.get("script")
    if script is not None and not isinstance(script, str):
        raise BadRequest("script must be the name of one of the sandbox's scripts")
    settings = current_app.extensions["settings"]
    try:
        placed = place_test_call(settings.sandbox_url, script=script or None)
    except ScriptRefused as exc:
        raise BadRequest(str(exc), code="script_refused") from None
    except SandboxUnreachable as exc:
        logger.warning("sandbox.test_call_failed", extra={"error": str(exc)})
        raise Unavailable(str(exc), code="sandbox_unreachable") from None
    logger.info("sandbox.test_call_placed", extra={"channel": placed["channel"],
                                                   "script": script or None})
    if script:  # the caller hangs up once the script is played: no fixed duration
        return jsonify(channel=placed["channel"], script=script, duration_s=None), 202
    return jsonify(channel=placed["channel"], duration_s=TEST_CALL_DURATION_S), 202


def _store() -> Store:
    return current_app.extensions["store"]
