"""The admin API over bookings (bearer ADMIN_TOKEN): ``GET /api/bookings`` and its CSV and
iCalendar exports, filtered by day, service, state and persona (docs/bookings.md)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from bookings.exports import csv_lines, day_span, ics, parse_day
from bookings.models import STATES, Booking
from store import Store
from web.auth import require_admin
from web.downloads import attachment
from web.errors import BadRequest

__all__ = ["bp", "booking_zone", "query_bookings"]

bp = Blueprint("bookings_api", __name__, url_prefix="/api")
MAX_DAYS = 62
MAX_ROWS = 5000


@bp.get("/bookings")
@require_admin
def list_bookings() -> ResponseReturnValue:
    found = query_bookings(request.args)
    return jsonify(bookings=[b.as_json() for b in found], count=len(found))


@bp.get("/bookings.csv")
@require_admin
def export_csv() -> ResponseReturnValue:
    return attachment(csv_lines(query_bookings(request.args)), "text/csv; charset=utf-8",
                     "bookings.csv")


@bp.get("/bookings.ics")
@require_admin
def export_ics() -> ResponseReturnValue:
    body = ics(query_bookings(request.args), now=_store().clock())
    return attachment(iter([body]), "text/calendar; charset=utf-8", "bookings.ics")


def query_bookings(args: Any) -> list[Booking]:
    """The bookings ``args`` ask for: ``persona``, ``service``, ``state``, and ``day``
    (YYYY-MM-DD, in the diary's time zone) with ``days`` (default 1); in start order."""
    persona = (args.get("persona") or "")[:64] or None
    service = (args.get("service") or "")[:48] or None
    state = args.get("state") or None
    if state is not None and state not in STATES:
        raise BadRequest(f"state must be one of {', '.join(STATES)}")
    span: tuple[float | None, float | None] = (None, None)
    if args.get("day"):
        try:
            day = parse_day(args["day"])
        except ValueError:
            raise BadRequest("day must be a date, YYYY-MM-DD") from None
        span = day_span(day, _days(args.get("days")), booking_zone(persona))
    elif args.get("days"):
        raise BadRequest("days needs a day")
    return _store().list_bookings(persona=persona, service=service, state=state,
                                  start_from=span[0], start_before=span[1], limit=MAX_ROWS)


def booking_zone(persona: str | None) -> ZoneInfo:
    """The zone a day means: the persona's diary's, else the first diary's, else TIMEZONE."""
    registry = current_app.extensions["personas"]
    diaries = [p for p in registry if p.booking is not None]
    chosen = next((p for p in diaries if p.name == persona), diaries[0] if diaries else None)
    if chosen is not None and chosen.booking is not None:
        return chosen.booking.zone
    return ZoneInfo(current_app.extensions["settings"].timezone)


def _days(text: str | None) -> int:
    if not text:
        return 1
    try:
        days = int(text)
    except ValueError:
        raise BadRequest("days must be a whole number") from None
    if not 1 <= days <= MAX_DAYS:
        raise BadRequest(f"days must be between 1 and {MAX_DAYS}")
    return days



def _store() -> Store:
    return current_app.extensions["store"]
