"""GET /healthz (liveness: the process answers, no I/O) and GET /readyz (store and config)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from calls.store import StoreUnavailable

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    settings = current_app.extensions["settings"]
    checks = {"config": "ok", "store": "ok"}
    problems = settings.problems()
    if problems:
        checks["config"] = f"{len(problems)} problem(s)"
    try:
        current_app.extensions["store"].check()
    except StoreUnavailable:
        checks["store"] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "not_ready", mode=settings.mode,
                   checks=checks), 200 if ready else 503
