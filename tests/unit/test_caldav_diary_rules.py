"""The CalDAV adapter's rules that need no server: how an event's times become a busy interval,
and what its failures say (tests/integration/test_caldav_diary.py runs it against Radicale)."""

from __future__ import annotations

import socket
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from bookings.caldav_diary import CalDAVCalendar, CalendarUnavailable, _interval, event_uid

LONDON = ZoneInfo("Europe/London")


class Component(dict):
    """The two things _interval asks of an icalendar VEVENT: get() and decoded()."""

    def decoded(self, name: str) -> object:
        return self[name]


def test_the_uid_carries_the_reference() -> None:
    assert event_uid("BK-7QX2") == "BK-7QX2@phone-agent"


@pytest.mark.parametrize(("fields", "expected"), [
    ({"DTSTART": datetime(2026, 12, 7, 10, tzinfo=LONDON),
      "DTEND": datetime(2026, 12, 7, 11, tzinfo=LONDON)},
     (datetime(2026, 12, 7, 10, tzinfo=LONDON), datetime(2026, 12, 7, 11, tzinfo=LONDON))),
    ({"DTSTART": datetime(2026, 12, 7, 10, tzinfo=LONDON), "DURATION": timedelta(minutes=20)},
     (datetime(2026, 12, 7, 10, tzinfo=LONDON), datetime(2026, 12, 7, 10, 20, tzinfo=LONDON))),
    ({"DTSTART": date(2026, 12, 7)},
     (datetime(2026, 12, 7, tzinfo=LONDON), datetime(2026, 12, 8, tzinfo=LONDON))),
    ({"DTSTART": date(2026, 12, 7), "DTEND": date(2026, 12, 9)},
     (datetime(2026, 12, 7, tzinfo=LONDON), datetime(2026, 12, 9, tzinfo=LONDON))),
    ({"DTSTART": datetime(2026, 12, 7, 10), "DTEND": datetime(2026, 12, 7, 11)},  # floating
     (datetime(2026, 12, 7, 10, tzinfo=LONDON), datetime(2026, 12, 7, 11, tzinfo=LONDON))),
    ({"DTSTART": datetime(2026, 12, 7, 10, tzinfo=LONDON)},
     (datetime(2026, 12, 7, 10, tzinfo=LONDON), datetime(2026, 12, 7, 10, tzinfo=LONDON))),
    ({"DTSTART": date(2026, 12, 7), "STATUS": "CANCELLED"}, None),
    ({"SUMMARY": "no start"}, None),
])
def test_an_events_busy_interval(fields: dict, expected: object) -> None:
    assert _interval(Component(fields), LONDON) == expected


def test_busy_needs_aware_times() -> None:
    diary = CalDAVCalendar("http://127.0.0.1:9/ada/diary/", "ada", "pw")
    with pytest.raises(ValueError, match="timezone-aware"):
        diary.busy(datetime(2026, 12, 7, 9), datetime(2026, 12, 7, 17))


def test_a_url_that_carries_a_password_is_refused_without_quoting_it() -> None:
    with pytest.raises(ValueError) as raised:
        CalDAVCalendar("https://ada:hunter2@dav.example.com/cal/", "ada", "hunter2")
    assert "hunter2" not in str(raised.value)


def test_the_url_shown_has_no_user_or_query() -> None:
    diary = CalDAVCalendar("https://ada@dav.example.com:8443/cal/diary/?token=x", "ada", "pw")
    assert diary.url == "https://dav.example.com:8443/cal/diary/"
    assert "pw" not in repr(diary)


def test_a_server_that_is_not_there_is_calendar_unavailable(
        caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    diary = CalDAVCalendar(f"http://127.0.0.1:{port}/ada/diary/", "ada", "secret-pw-41",
                           timeout_s=2)
    booking = SimpleNamespace(reference="BK-X", service="haircut", name="Ada", phone=None,
                              start=datetime(2026, 12, 7, 10, tzinfo=LONDON),
                              end=datetime(2026, 12, 7, 10, 30, tzinfo=LONDON))
    start, end = datetime(2026, 12, 7, 9, tzinfo=LONDON), datetime(2026, 12, 7, 17, tzinfo=LONDON)
    for attempt in (lambda: diary.busy(start, end), lambda: diary.created(booking),
                    lambda: diary.changed(booking), lambda: diary.cancelled(booking)):
        with pytest.raises(CalendarUnavailable, match="could not be reached") as raised:
            attempt()
        assert "secret-pw-41" not in str(raised.value)
    assert "secret-pw-41" not in caplog.text + repr([vars(r) for r in caplog.records])
    assert "caldav.unavailable" in caplog.text
