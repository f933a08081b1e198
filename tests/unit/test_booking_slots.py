"""Free start times (bookings/slots.py): opening hours, the buffer, closed days, how far ahead,
and the days the clocks change."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bookings.references import ALPHABET, REFERENCE, new_reference, normalise
from bookings.slots import free_starts, why_not
from personas.booking_shape import BookingSpec

LONDON = ZoneInfo("Europe/London")
#: Monday 7 December 2026, 08:00 in London (UTC+0 in winter).
NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
MONDAY = date(2026, 12, 7)


def spec(**changes) -> BookingSpec:
    fields = dict(timezone="Europe/London", services={"haircut": 30, "colour": 90},
                  hours={0: (time(9), time(12)), 5: (time(10), time(12))}, buffer_minutes=0,
                  max_days_ahead=60)
    fields.update(changes)
    return BookingSpec(**fields)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), LONDON)


def test_a_day_offers_every_quarter_hour_that_ends_by_closing_time():
    slots = free_starts(spec(), "haircut", MONDAY, 1, [], NOW)
    assert slots[0] == at(MONDAY, 9) and slots[-1] == at(MONDAY, 11, 30)
    assert len(slots) == 11  # 09:00 .. 11:30
    assert slots[0].isoformat() == "2026-12-07T09:00:00+00:00"
    long = free_starts(spec(), "colour", MONDAY, 1, [], NOW)
    assert long[-1] == at(MONDAY, 10, 30)  # 90 minutes must end by 12:00


def test_weekdays_without_hours_and_closed_dates_offer_nothing():
    week = free_starts(spec(), "haircut", MONDAY, 7, [], NOW)
    assert {s.date() for s in week} == {MONDAY, MONDAY + timedelta(days=5)}
    closed = spec(closed=frozenset({MONDAY}))
    assert {s.date() for s in free_starts(closed, "haircut", MONDAY, 7, [], NOW)} == {
        MONDAY + timedelta(days=5)}
    assert "closed" in why_not(closed, "haircut", at(MONDAY, 10), NOW)
    assert "closed" in why_not(spec(), "haircut", at(MONDAY + timedelta(days=1), 10), NOW)


def test_the_buffer_keeps_clear_of_busy_times_on_both_sides():
    busy = [(at(MONDAY, 10), at(MONDAY, 10, 30))]
    plain = free_starts(spec(), "haircut", MONDAY, 1, busy, NOW)
    assert at(MONDAY, 9, 30) in plain and at(MONDAY, 10, 30) in plain
    assert at(MONDAY, 10) not in plain and at(MONDAY, 9, 45) not in plain
    buffered = free_starts(spec(buffer_minutes=10), "haircut", MONDAY, 1, busy, NOW)
    assert at(MONDAY, 9, 30) not in buffered and at(MONDAY, 10, 30) not in buffered
    assert at(MONDAY, 9, 15) in buffered and at(MONDAY, 10, 45) in buffered


def test_nothing_in_the_past_and_nothing_beyond_max_days_ahead():
    late = datetime(2026, 12, 7, 10, 5, tzinfo=UTC)
    assert free_starts(spec(), "haircut", MONDAY, 1, [], late)[0] == at(MONDAY, 10, 15)
    assert "passed" in why_not(spec(), "haircut", at(MONDAY, 9), late)
    short = spec(max_days_ahead=7)
    days = {s.date() for s in free_starts(short, "haircut", MONDAY, 14, [], NOW)}
    assert max(days) == MONDAY + timedelta(days=7)
    assert "7 days ahead" in why_not(short, "haircut", at(MONDAY + timedelta(days=14), 9), NOW)


def test_a_time_outside_the_hours_is_refused_with_the_hours():
    assert why_not(spec(), "haircut", at(MONDAY, 11, 45), NOW).startswith(
        "That is outside the opening hours (09:00 to 12:00)")
    assert why_not(spec(), "haircut", at(MONDAY, 8, 45), NOW) is not None
    assert why_not(spec(), "haircut", at(MONDAY, 11, 30), NOW) is None


def test_the_day_the_clocks_go_forward_has_its_real_hours_and_offsets():
    # Sunday 29 March 2026: London goes from 01:00 GMT to 02:00 BST.
    sunday = date(2026, 3, 29)
    early = spec(hours={6: (time(0), time(4))}, services={"haircut": 60})
    slots = free_starts(early, "haircut", sunday, 1, [],
                        datetime(2026, 3, 1, tzinfo=UTC))
    # 00:00-04:00 on the clock is three real hours: starts from 00:00 to 02:00 real time.
    assert len(slots) == 9
    assert slots[0].isoformat() == "2026-03-29T00:00:00+00:00"
    assert slots[-1].isoformat() == "2026-03-29T03:00:00+01:00"
    real = [s.astimezone(UTC) for s in slots]  # same-zone subtraction would be wall-clock
    assert all(b - a == timedelta(minutes=15) for a, b in zip(real, real[1:], strict=False))
    # Office hours that day keep their wall-clock times, now an hour ahead of UTC.
    office = spec(hours={6: (time(9), time(10))})
    assert free_starts(office, "haircut", sunday, 1, [], datetime(2026, 3, 1, tzinfo=UTC))[
        0].isoformat() == "2026-03-29T09:00:00+01:00"


def test_the_day_the_clocks_go_back_has_an_hour_more():
    sunday = date(2026, 10, 25)  # 02:00 BST becomes 01:00 GMT
    early = spec(hours={6: (time(0), time(4))}, services={"haircut": 60})
    slots = free_starts(early, "haircut", sunday, 1, [], datetime(2026, 10, 1, tzinfo=UTC))
    assert len(slots) == 17  # five real hours: 00:00 BST .. 04:00 GMT
    assert slots[0].utcoffset() == timedelta(hours=1) and slots[-1].utcoffset() == timedelta(0)


@pytest.mark.parametrize(("spoken", "written"), [
    ("BK-7H3Q9", "BK-7H3Q9"), ("bk 7h3q9", "BK-7H3Q9"), ("7h3q9", "BK-7H3Q9"),
    ("BK7H3Q9", "BK-7H3Q9"),
])
def test_a_reference_is_read_back_in_one_written_form(spoken, written):
    assert normalise(spoken) == written


def test_references_avoid_characters_that_sound_or_look_alike():
    assert not set("01OIL5SUV") & set(ALPHABET)
    assert all(REFERENCE.match(new_reference()) for _ in range(200))
