"""The admin API over calls: GET /api/calls and GET /api/calls/<id> (bearer ADMIN_TOKEN)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from auth import bearer_token_matches, require_admin
from calls import lifecycle
from calls.store import CallRecord, Store
from errors import BadRequest, NotFound, Unauthorized

bp = Blueprint("calls_api", __name__, url_prefix="/api")
MAX_LIMIT = 200


@bp.get("/calls")
@require_admin
def list_calls() -> ResponseReturnValue:
    args = request.args
    limit = _int_arg("limit", 50, 1, MAX_LIMIT)
    states = [s for s in args.get("state", "").split(",") if s]
    unknown = set(states) - {*lifecycle.OPEN_STATES, *lifecycle.FINAL_STATES}
    if unknown:
        raise BadRequest(f"unknown state(s): {', '.join(sorted(unknown))}")
    records = _store().list_calls(
        states=states or None, persona=args.get("persona") or None,
        channel=args.get("channel") or None, since=_time_arg("since"),
        until=_time_arg("until"), limit=limit + 1, after=_cursor(args.get("cursor")))
    page, more = records[:limit], len(records) > limit
    next_cursor = _encode_cursor(page[-1]) if more and page else None
    return jsonify(calls=[call_json(r) for r in page], next=next_cursor)


@bp.route("/reconcile", methods=["GET", "POST"])
def reconcile() -> ResponseReturnValue:
    """Do the sweeper's work once: for platforms with no background threads, where a cron
    calls this (Vercel Cron sends GET with ``Authorization: Bearer CRON_SECRET``). The admin
    token works too."""
    settings = current_app.extensions["settings"]
    header = request.headers.get("Authorization")
    if not (bearer_token_matches(settings.cron_secret, header)
            or bearer_token_matches(settings.admin_token, header)):
        raise Unauthorized("missing or wrong bearer token (CRON_SECRET or ADMIN_TOKEN)")
    store = _store()
    swept = current_app.extensions["calls"].sweep()
    pruned = store.prune_notices(older_than_s=settings.notice_retention_hours * 3600)
    store.checkpoint()
    return jsonify(status="ok", calls_handled=swept, notices_pruned=pruned)


@bp.get("/calls/<call_id>")
@require_admin
def get_call(call_id: str) -> ResponseReturnValue:
    store = _store()
    record = store.get_call(call_id)
    if record is None:
        raise NotFound(f"no call {call_id}")
    return jsonify(call_detail(record, store.timeline(call_id)))


def call_json(record: CallRecord) -> dict[str, Any]:
    """A call as the API shows it: ISO times, and the figures an operator asks about."""
    time_to_agent = None
    if record.agent_started_at is not None:
        time_to_agent = round((record.agent_started_at - record.created_at) * 1000)
    duration = None
    if record.ended_at is not None:
        duration = round(record.ended_at - record.created_at, 3)
    return {
        "id": record.id, "channel": record.channel, "state": record.state,
        "persona": record.persona, "caller_uid": record.caller_uid,
        "started_at": iso(record.created_at), "ended_at": iso(record.ended_at),
        "agent_id": record.agent_id, "agent_name": record.agent_name,
        "time_to_agent_ms": time_to_agent, "duration_s": duration,
        "end_reason": record.end_reason, "last_error": record.last_error,
    }


def call_detail(record: CallRecord, timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """A call with its timeline and transcript, as the API and the pages show it."""
    return {**call_json(record), "timeline": [{**e, "at": iso(e["at"])} for e in timeline],
            "transcript": transcript(timeline)}


def transcript(timeline: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The conversation from ConvoAI's history notification (the latest one wins)."""
    for event in reversed(timeline):
        detail = event.get("detail") or {}
        if event["kind"] == "agent_history" and isinstance(detail.get("contents"), list):
            return [{"role": str(c.get("role", "")), "content": str(c.get("content", ""))}
                    for c in detail["contents"] if isinstance(c, dict)]
    return []


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _store() -> Store:
    return current_app.extensions["store"]


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def _time_arg(name: str) -> float | None:
    """An ISO 8601 time or Unix seconds."""
    text = request.args.get(name)
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 time or Unix seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _encode_cursor(record: CallRecord) -> str:
    raw = json.dumps([record.created_at, record.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor(text: str | None) -> tuple[float, str] | None:
    if not text:
        return None
    try:
        created_at, call_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return float(created_at), str(call_id)
    except (ValueError, TypeError, binascii.Error):
        raise BadRequest("cursor is not one this API gave out") from None
