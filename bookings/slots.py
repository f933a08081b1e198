"""Free start times: pure rules over a persona's ``[booking]`` and what is already busy.

Every time is timezone-aware. Opening hours are wall-clock times in the business's zone, so a
day's window is built there and then stepped through in UTC: on the day the clocks change, the
window has the hours it really has, and each start carries its own offset (+00:00 before, +01:00
after). An appointment keeps ``buffer_minutes`` clear of every busy interval on both sides; the
buffer does not apply to opening and closing time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from personas.booking_shape import BookingSpec

#: Starts are offered on this grid from opening time.
STEP = timedelta(minutes=15)
#: At most this many starts per answer: the agent reads a few aloud, not a page of them.
MAX_SLOTS = 40
Interval = tuple[datetime, datetime]


def opening(spec: BookingSpec, day: date) -> Interval | None:
    """The day's opening and closing time (UTC), or None when it is closed."""
    hours = spec.hours.get(day.weekday())
    if hours is None or day in spec.closed:
        return None
    zone = spec.zone
    opens = datetime.combine(day, hours[0], zone)
    closes = datetime.combine(day + timedelta(days=1), time(0), zone) if hours[1] == time.max \
        else datetime.combine(day, hours[1], zone)
    return opens.astimezone(UTC), closes.astimezone(UTC)


def last_day(spec: BookingSpec, now: datetime) -> date:
    """The last day that may be booked: ``max_days_ahead`` after today, in the business's zone."""
    return now.astimezone(spec.zone).date() + timedelta(days=spec.max_days_ahead)


def overlaps(start: datetime, end: datetime, busy: Iterable[Interval], buffer: timedelta) -> bool:
    """Whether [start, end) comes closer than ``buffer`` to any busy interval."""
    return any(start < b_end + buffer and b_start < end + buffer for b_start, b_end in busy)


def free_starts(spec: BookingSpec, service: str, first_day: date, days: int,
                busy: Iterable[Interval], now: datetime, *, not_before: datetime | None = None,
                limit: int = MAX_SLOTS) -> list[datetime]:
    """The free starts for ``service`` on ``days`` days from ``first_day`` (each in the business's
    zone), none before ``now`` (or ``not_before``), none past the last bookable day."""
    duration = timedelta(minutes=spec.services[service])
    buffer = timedelta(minutes=spec.buffer_minutes)
    earliest = max(now, not_before or now)
    final = last_day(spec, now)
    busy = sorted(busy)
    zone = spec.zone
    out: list[datetime] = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        if day > final:
            break
        window = opening(spec, day)
        if window is None:
            continue
        start, closes = window
        while start + duration <= closes:
            if start >= earliest and not overlaps(start, start + duration, busy, buffer):
                out.append(start.astimezone(zone))
                if len(out) >= limit:
                    return out
            start += STEP
    return out


def why_not(spec: BookingSpec, service: str, start: datetime, now: datetime) -> str | None:
    """Why ``service`` cannot start at ``start`` whatever else is booked, or None if it can."""
    zone = spec.zone
    local = start.astimezone(zone)
    end = start + timedelta(minutes=spec.services[service])
    if start < now:
        return "That time has already passed."
    if local.date() > last_day(spec, now):
        return f"Bookings can be made at most {spec.max_days_ahead} days ahead."
    window = opening(spec, local.date())
    if window is None:
        day = f"{local:%A} {local.date().isoformat()}"
        return f"The business is closed on {day}."
    if start < window[0] or end > window[1]:
        opens, closes = (t.astimezone(zone).strftime("%H:%M") for t in window)
        return (f"That is outside the opening hours ({opens} to {closes}); a {service} takes "
                f"{spec.services[service]} minutes.")
    return None
