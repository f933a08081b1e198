"""CORS for the admin API only, through flask-cors: closed unless CORS_ORIGINS names origins.

flask-cors decides which answers under /api/ may be read by which origin. What it leaves to us is
the answer to a preflight itself: an allowed one is a bare 204, and any other (an origin not
named, a path outside the API, CORS off) a 403 that says why, instead of a 200 with no
Access-Control headers that the browser would refuse without a word.
"""

from __future__ import annotations

import logging
import re

from flask import Flask, Response, current_app, jsonify, request
from flask_cors import CORS

logger = logging.getLogger(__name__)

#: The admin API's namespace: the only part of the service another origin may call, and
#: never stored by a cache (web/security.py).
API_PREFIX = "/api/"
API_PATHS = rf"{re.escape(API_PREFIX)}.*"
#: One string, not a list: flask-cors would sort a list and change the header's order.
METHODS = "GET, POST, DELETE"
ALLOW_HEADERS = ["Authorization", "Content-Type"]
#: How long a browser may cache an allowed preflight.
MAX_AGE_S = 600
ALLOW_ORIGIN = "Access-Control-Allow-Origin"


def parse_origins(text: str) -> frozenset[str]:
    """CORS_ORIGINS as a set of origins (config.py has already checked their form)."""
    return frozenset(o.strip().rstrip("/") for o in text.split(",") if o.strip())


def init_app(app: Flask, origins: frozenset[str]) -> None:
    """Share /api/ with ``origins`` (nothing when empty) and settle every preflight."""
    app.extensions["cors_origins"] = origins
    # Registered before flask-cors's own hook, so it runs after it (Flask runs them in reverse).
    app.after_request(_settle)
    if origins:
        # Exact origins, never credentials; no Access-Control header at all for a request that
        # names no Origin (always_send=False).
        CORS(app, resources={API_PATHS: {}}, origins=sorted(origins), methods=METHODS,
             allow_headers=ALLOW_HEADERS, max_age=MAX_AGE_S, supports_credentials=False,
             always_send=False, vary_header=True)


def _settle(response: Response) -> Response:
    if current_app.extensions["cors_origins"] and re.match(API_PATHS, request.path):
        # Whenever some origin may be allowed, the answer depends on Origin: caches must key on
        # it (flask-cors says so only when several origins are named and one matched).
        response.vary.add("Origin")
    if not _is_preflight():
        return response
    if ALLOW_ORIGIN not in response.headers:
        logger.info("cors.refused", extra={"path": request.path})
        refused = jsonify(error="cors_refused", message="cross-origin requests are not "
                          "allowed from this origin")
        refused.status_code = 403
        return refused
    allowed = current_app.response_class(status=204)
    for name, value in response.headers.items():
        if name.startswith("Access-Control-") or name == "Vary":
            allowed.headers.add(name, value)
    return allowed


def _is_preflight() -> bool:
    return (request.method == "OPTIONS" and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers)
