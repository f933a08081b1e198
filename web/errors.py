"""The service's own errors, each with the HTTP status it answers, and the one JSON handler."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from store import StoreUnavailable

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """Base: an error answered as JSON ``{"error": code, "message": ...}``."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class BadRequest(ApiError):
    """The request is malformed."""

    status = 400


class Unauthorized(ApiError):
    """The request's signature or credentials are missing or wrong."""

    status = 401
    code = "unauthorized"


class NotFound(ApiError):
    """No such resource."""

    status = 404
    code = "not_found"


class TooManyRequests(ApiError):
    """The client is over its rate limit; ``retry_after_s`` says when it may try again."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(ApiError):
    """A dependency (the store) is down; nothing was recorded, so the sender should retry."""

    status = 503
    code = "unavailable"


def api_error_response(exc: ApiError) -> Response:
    """The JSON answer for ``exc``, with Retry-After when it says when to come back."""
    response = jsonify(error=exc.code, message=exc.message)
    response.status_code = exc.status
    if isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def json_object() -> dict[str, Any]:
    """The request's body as a JSON object, or BadRequest."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        # `silent` covers only ValueError; nesting deeper than the parser's stack is not one.
        body = None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):  # type: ignore[no-untyped-def]
        return api_error_response(exc)


    @app.errorhandler(StoreUnavailable)
    def _store_down(exc: StoreUnavailable):  # type: ignore[no-untyped-def]
        # Nothing was recorded: a sender that retries (NCS does) should try again.
        logger.error("store.unavailable", extra={"error": str(exc)})
        return jsonify(error="unavailable", message="the call store is unavailable; retry "
                       "later"), 503

    def _unstorable(exc: Exception):  # type: ignore[no-untyped-def]
        # A value the database refuses (PostgreSQL takes no NUL character in text): the
        # transaction was rolled back, so nothing was recorded.
        return jsonify(error="bad_request", message="the request holds a value the store "
                       "cannot take (such as a NUL character)"), 400

    # Every statement goes through SQLAlchemy, which wraps the driver's DataError in its own.
    app.register_error_handler(sa.exc.DataError, _unstorable)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(error=code, message=exc.description or exc.name), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        # Logged with its traceback (secrets are redacted by the log filter); the client only
        # learns that something failed on our side.
        logger.exception("request.failed", extra={"error_type": type(exc).__name__})
        return jsonify(error="internal_error", message="the service failed to handle this "
                       "request; it has been logged"), 500
