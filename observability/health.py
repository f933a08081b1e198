"""GET /healthz (liveness: the process answers, no I/O), GET /readyz (store and config) and
GET /metrics (Prometheus; see metrics.py and docs/metrics.md)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from observability import metrics
from store import StoreUnavailable
from web.auth import bearer_token_matches
from web.errors import Unauthorized
from web.security import rate_limit_failed_auth

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


@bp.get("/metrics")
@rate_limit_failed_auth(when=lambda settings: bool(settings.metrics_token))
def prometheus_metrics() -> ResponseReturnValue:
    """Every worker's counters and the store's open calls. Open unless METRICS_TOKEN is set."""
    token = current_app.extensions["settings"].metrics_token
    if token and not bearer_token_matches(token, request.headers.get("Authorization")):
        raise Unauthorized("missing or wrong bearer token (METRICS_TOKEN)")
    # The call service prices the ended calls (calls/costs.py); this package names no feature.
    costs = getattr(current_app.extensions.get("calls"), "cost_totals", None)
    body, content_type = metrics.exposition(current_app.extensions["store"],
                                            request.headers.get("Accept"), costs)
    return Response(body, content_type=content_type,
                    headers={"Cache-Control": "no-store"})
