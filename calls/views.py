"""The admin API over calls (bearer ADMIN_TOKEN): list, read, export and erase call records,
and the reconciler's endpoint for platforms with cron."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from calls import lifecycle
from calls.costs import Rates
from calls.records import (
    EXPORT_FIELDS,
    analysis_columns,
    call_json,
    export_row,
    find_call_detail,
    transcript,
)
from outbound.service import Conflict as OutboundConflict
from store import CallRecord, Store
from web.auth import bearer_token_matches, require_admin
from web.downloads import attachment
from web.errors import ApiError, BadRequest, NotFound, Unauthorized
from web.security import rate_limit_failed_auth

__all__ = ["bp"]

bp = Blueprint("calls_api", __name__, url_prefix="/api")
MAX_LIMIT = 200


@bp.get("/calls")
@require_admin
def list_calls() -> ResponseReturnValue:
    limit = _int_arg("limit", 50, 1, MAX_LIMIT)
    records = _store().list_calls(**_filters(), limit=limit + 1,
                                  after=_cursor(request.args.get("cursor")))
    page, more = records[:limit], len(records) > limit
    next_cursor = _encode_cursor(page[-1]) if more and page else None
    rates, now = _rates(), _store().clock()
    analyses = _store().analyses_of([r.id for r in page])
    return jsonify(calls=[{**call_json(r, rates, now), **analysis_columns(analyses.get(r.id), r)}
                          for r in page], next=next_cursor)


@bp.get("/calls.jsonl")
@require_admin
def export_jsonl() -> ResponseReturnValue:
    """Every call the filters match, newest first, one JSON object a line, with its transcript."""
    store = _store()
    filters = _filters()

    records = _every_call(store, filters)
    rates = _rates()

    def lines() -> Iterator[str]:
        for record in records:
            line = {**call_json(record, rates, store.clock()),
                    **analysis_columns(store.analysis_of(record.id), record),
                    "transcript": transcript(store.timeline(record.id))}
            yield json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"

    return attachment(lines(), "application/x-ndjson", "calls.jsonl")


@bp.get("/calls.csv")
@require_admin
def export_csv() -> ResponseReturnValue:
    """Every call the filters match, newest first, as CSV (no transcripts: one row per call)."""
    store = _store()
    filters = _filters()

    records = _every_call(store, filters)
    rates = _rates()

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, EXPORT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            row = export_row({**call_json(record, rates, store.clock()),
                              **analysis_columns(store.analysis_of(record.id), record)})
            writer.writerow({k: _csv_safe(v) for k, v in row.items()})
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    return attachment(rows(), "text/csv; charset=utf-8", "calls.csv")


@bp.delete("/calls/<call_id>")
@require_admin
def delete_call(call_id: str) -> ResponseReturnValue:
    """Erase a call's record, timeline and transcript (and its undelivered events). A call still
    in progress is refused: end it first. A scheduled call is cancelled instead."""
    store = _store()
    record = store.get_call(call_id)
    if record is None:
        raise NotFound(f"no call {call_id}")
    if record.state == lifecycle.SCHEDULED:
        # Not dialled yet: cancelled, and its record kept (a second DELETE erases it).
        try:
            current_app.extensions["outbound"].cancel_call(call_id)
        except OutboundConflict as exc:  # it fell due and started meanwhile
            raise Conflict(str(exc)) from None
        return jsonify(status="cancelled", call=call_json(store.get_call(call_id)))
    if record.state in lifecycle.OPEN_STATES:
        raise Conflict(f"call {call_id} is {record.state}; erase it once it has ended")
    store.delete_call(call_id)
    return "", 204


@bp.route("/reconcile", methods=["GET", "POST"])
@rate_limit_failed_auth()
def reconcile() -> ResponseReturnValue:
    """Run the reconciler once (calls/reconcile.py): for platforms with no background threads,
    where a cron calls this (Vercel Cron sends GET with ``Authorization: Bearer CRON_SECRET``;
    the Hobby plan runs crons once a day). The admin token works too."""
    settings = current_app.extensions["settings"]
    header = request.headers.get("Authorization")
    if not (bearer_token_matches(settings.cron_secret, header)
            or bearer_token_matches(settings.admin_token, header)):
        raise Unauthorized("missing or wrong bearer token (CRON_SECRET or ADMIN_TOKEN)")
    store = _store()
    report = current_app.extensions["reconciler"].run(force=True)
    pruned = store.prune_notices(older_than_s=settings.notice_retention_hours * 3600)
    store.checkpoint()
    return jsonify(status="ok", calls_handled=report.swept, notices_pruned=pruned,
                   **report.as_dict())


@bp.get("/calls/<call_id>")
@require_admin
def get_call(call_id: str) -> ResponseReturnValue:
    detail = find_call_detail(_store(), call_id, _rates())
    if detail is None:
        raise NotFound(f"no call {call_id}")
    return jsonify(detail)


class Conflict(ApiError):
    status = 409
    code = "conflict"


EXPORT_PAGE = 200
#: A phone number in E.164 form is a plain number to a spreadsheet, not a formula.
_E164 = re.compile(r"^\+[0-9]{6,15}$")


def _filters() -> dict[str, Any]:
    """The filters shared by the list and the exports: state, persona, number, channel, since,
    until, and success (the post-call analysis's verdict: true or false)."""
    args = request.args
    states = [s for s in args.get("state", "").split(",") if s]
    unknown = set(states) - {*lifecycle.OPEN_STATES, *lifecycle.FINAL_STATES,
                             lifecycle.SCHEDULED}
    if unknown:
        raise BadRequest(f"unknown state(s): {', '.join(sorted(unknown))}")
    return {"states": states or None, "persona": args.get("persona") or None,
            "number": args.get("number") or None, "channel": args.get("channel") or None,
            "since": _time_arg("since"), "until": _time_arg("until"),
            "success": _bool_arg("success")}


def _bool_arg(name: str) -> bool | None:
    text = request.args.get(name)
    if text is None or text == "":
        return None
    if text.lower() not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false")
    return text.lower() == "true"


def _every_call(store: Store, filters: dict[str, Any]) -> Iterator[CallRecord]:
    """Every matching call, page by page. The first page is read now, before the download
    starts: a filter the store refuses is then an error answer, not a 200 cut short."""
    first = store.list_calls(**filters, limit=EXPORT_PAGE)

    def pages() -> Iterator[CallRecord]:
        page = first
        while True:
            yield from page
            if len(page) < EXPORT_PAGE:
                return
            page = store.list_calls(**filters, limit=EXPORT_PAGE,
                                    after=(page[-1].created_at, page[-1].id))

    return pages()



def _csv_safe(value: Any) -> Any:
    """Numbers and names come from callers: a cell starting with =, +, - or @ would be run as a
    formula by spreadsheet programs, so it is quoted with a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") \
            and not _E164.match(value):
        return "'" + value
    return value


def _store() -> Store:
    return current_app.extensions["store"]


def _rates() -> Rates:
    return current_app.extensions["calls"].rates


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
    except (ValueError, TypeError, binascii.Error, OverflowError, RecursionError):
        # OverflowError: a number too large for a float; RecursionError: nesting too deep.
        raise BadRequest("cursor is not one this API gave out") from None
