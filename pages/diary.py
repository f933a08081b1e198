"""The dashboard's diary: the bookings of one day, or of a week (Monday to Sunday), in the
diary's own time zone, with links to the calls that made them (docs/dashboard.md)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app, render_template, request
from flask.typing import ResponseReturnValue

from bookings.exports import day_span, parse_day
from bookings.views import booking_zone
from pages import bp
from store import Store


@bp.get("/diary")
def diary_day() -> ResponseReturnValue:
    return _diary(days=1)


@bp.get("/diary/week")
def diary_week() -> ResponseReturnValue:
    return _diary(days=7)


def _diary(days: int) -> ResponseReturnValue:
    store: Store = current_app.extensions["store"]
    registry = current_app.extensions["personas"]
    diaries = [p.name for p in registry if p.booking is not None]
    persona = request.args.get("persona") or (diaries[0] if diaries else None)
    if persona not in diaries:
        persona = diaries[0] if diaries else None
    zone = booking_zone(persona)
    notices = []
    today = datetime.fromtimestamp(store.clock(), zone).date()
    try:
        day = parse_day(request.args.get("day") or today.isoformat())
    except ValueError:
        notices.append("That is not a date; showing today.")
        day = today
    if days == 7:
        day -= timedelta(days=day.weekday())
    start, end = day_span(day, days, zone)
    found = store.list_bookings(persona=persona, start_from=start, start_before=end,
                                limit=2000) if persona else []
    columns: list[dict[str, Any]] = []
    for offset in range(days):
        current = day + timedelta(days=offset)
        columns.append({"day": current, "bookings": [
            b for b in found if b.start.astimezone(zone).date() == current]})
    step = timedelta(days=days)
    return render_template(
        "pages/diary.html", columns=columns, persona=persona, diaries=diaries, days=days,
        zone=str(zone), day=day, previous=(day - step).isoformat(),
        next=(day + step).isoformat(), today=today.isoformat(), notices=notices,
        count=sum(1 for b in found if b.state == "booked"))
