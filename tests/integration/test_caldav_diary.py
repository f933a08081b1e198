"""The CalDAV diary against a real Radicale server (scripts/with_radicale.sh): what a person puts
in the calendar by hand is busy, and bookings become events another client sees, moves with the
booking and loses when it is cancelled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bookings.caldav_diary import CalDAVCalendar, CalendarUnavailable, event_uid
from tests.caldav_fixtures import CalDAVDiary

pytestmark = pytest.mark.integration

LONDON = ZoneInfo("Europe/London")


@dataclass(frozen=True)
class Booking:
    """The contract's Booking (docs: BOOKINGS_DESIGN), as far as the adapter reads it."""

    reference: str
    service: str
    start: datetime
    end: datetime
    name: str
    phone: str | None = None


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=LONDON)


def adapter(diary: CalDAVDiary, **kwargs: object) -> CalDAVCalendar:
    return CalDAVCalendar(diary.url, diary.username, diary.password, **kwargs)  # type: ignore[arg-type]


def by_hand(diary: CalDAVDiary, *lines: str) -> None:
    """Save an event the way a calendar app does: its own UID, local times with a TZID."""
    diary.calendar.save_event("\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Someone//Their calendar app//EN",
        "BEGIN:VTIMEZONE", "TZID:Europe/London",
        "BEGIN:STANDARD", "DTSTART:19701025T020000", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
        "TZOFFSETFROM:+0100", "TZOFFSETTO:+0000", "END:STANDARD",
        "BEGIN:DAYLIGHT", "DTSTART:19700329T010000", "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        "TZOFFSETFROM:+0000", "TZOFFSETTO:+0100", "END:DAYLIGHT",
        "END:VTIMEZONE",
        "BEGIN:VEVENT", "DTSTAMP:20261201T090000Z", *lines, "END:VEVENT",
        "END:VCALENDAR", ""]))


def test_an_event_added_by_hand_is_busy(caldav_diary: CalDAVDiary) -> None:
    by_hand(caldav_diary, "UID:dentist-1@someone", "SUMMARY:Dentist",
            "DTSTART;TZID=Europe/London:20261207T113000",
            "DTEND;TZID=Europe/London:20261207T121500")
    with adapter(caldav_diary) as diary:
        assert diary.busy(at(7, 9), at(7, 17)) == [(at(7, 11, 30), at(7, 12, 15))]
        assert diary.busy(at(7, 12, 15), at(7, 17)) == []  # ends as that range starts
        assert diary.busy(at(8, 9), at(8, 17)) == []


def test_busy_answers_in_the_zone_it_is_asked_in(caldav_diary: CalDAVDiary) -> None:
    by_hand(caldav_diary, "UID:call-1@someone", "SUMMARY:Call",
            "DTSTART:20261207T150000Z", "DURATION:PT45M")
    new_york = ZoneInfo("America/New_York")
    with adapter(caldav_diary) as diary:
        (start, end), = diary.busy(datetime(2026, 12, 7, 8, tzinfo=new_york),
                                   datetime(2026, 12, 7, 12, tzinfo=new_york))
    assert (start, end) == (at(7, 15), at(7, 15, 45))
    assert start.tzinfo == new_york and start.hour == 10


def test_an_all_day_event_makes_the_whole_local_day_busy(caldav_diary: CalDAVDiary) -> None:
    by_hand(caldav_diary, "UID:training@someone", "SUMMARY:Staff training",
            "DTSTART;VALUE=DATE:20261209", "DTEND;VALUE=DATE:20261210")
    with adapter(caldav_diary) as diary:
        assert diary.busy(at(9, 14), at(9, 15)) == [(at(9, 0), at(10, 0))]
        assert diary.busy(at(10, 9), at(10, 17)) == []


def test_each_occurrence_of_a_repeating_event_is_busy(caldav_diary: CalDAVDiary) -> None:
    by_hand(caldav_diary, "UID:weekly@someone", "SUMMARY:Team meeting",
            "DTSTART;TZID=Europe/London:20261201T090000",
            "DTEND;TZID=Europe/London:20261201T100000", "RRULE:FREQ=WEEKLY;COUNT=4")
    with adapter(caldav_diary) as diary:
        assert diary.busy(at(15, 0), at(16, 0)) == [(at(15, 9), at(15, 10))]
        assert diary.busy(at(14, 0), at(15, 0)) == []


def test_a_cancelled_event_is_not_busy(caldav_diary: CalDAVDiary) -> None:
    by_hand(caldav_diary, "UID:off@someone", "SUMMARY:Called off", "STATUS:CANCELLED",
            "DTSTART;TZID=Europe/London:20261207T100000",
            "DTEND;TZID=Europe/London:20261207T110000")
    with adapter(caldav_diary) as diary:
        assert diary.busy(at(7, 9), at(7, 17)) == []


def test_a_booking_becomes_an_event_another_client_sees(caldav_diary: CalDAVDiary) -> None:
    booking = Booking("BK-7QX2", "haircut", at(7, 10), at(7, 10, 30), "Ada Lovelace",
                      "+447700900123")
    with adapter(caldav_diary) as diary:
        diary.created(booking)
        diary.created(booking)  # written again (a retried request), not a second event
        assert diary.busy(at(7, 9), at(7, 17)) == [(at(7, 10), at(7, 10, 30))]

    events = caldav_diary.calendar.events()
    assert len(events) == 1
    component = events[0].icalendar_component
    assert str(component["UID"]) == "BK-7QX2@phone-agent" == event_uid("BK-7QX2")
    assert component.decoded("DTSTART") == at(7, 10)
    assert component.decoded("DTEND") == at(7, 10, 30)
    assert "haircut" in str(component["SUMMARY"]) and "Ada Lovelace" in str(component["SUMMARY"])
    assert "BK-7QX2" in str(component["DESCRIPTION"])
    assert "+447700900123" in str(component["DESCRIPTION"])


def test_changed_moves_the_event(caldav_diary: CalDAVDiary) -> None:
    booking = Booking("BK-MOVE", "colour", at(8, 9), at(8, 10, 30), "Grace Hopper")
    moved = Booking("BK-MOVE", "colour", at(10, 14), at(10, 15, 30), "Grace Hopper")
    with adapter(caldav_diary) as diary:
        diary.created(booking)
        diary.changed(moved)
        assert diary.busy(at(8, 0), at(9, 0)) == []
        assert diary.busy(at(10, 0), at(11, 0)) == [(at(10, 14), at(10, 15, 30))]

    event = caldav_diary.calendar.event_by_uid("BK-MOVE@phone-agent")
    assert event.icalendar_component.decoded("DTSTART") == at(10, 14)
    assert len(caldav_diary.calendar.events()) == 1


def test_changed_finds_an_event_a_person_moved_to_another_href(
        caldav_diary: CalDAVDiary) -> None:
    # Some clients store an event under a name of their own; the UID is what finds it.
    caldav_diary.calendar.save_event(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VEVENT\r\n"
        "UID:BK-HREF@phone-agent\r\nDTSTAMP:20261201T090000Z\r\n"
        "DTSTART:20261211T090000Z\r\nDTEND:20261211T093000Z\r\nSUMMARY:haircut\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n")
    with adapter(caldav_diary) as diary:
        diary.changed(Booking("BK-HREF", "haircut", at(11, 11), at(11, 11, 30), "Alan Turing"))
        assert diary.busy(at(11, 0), at(12, 0)) == [(at(11, 11), at(11, 11, 30))]
    assert len(caldav_diary.calendar.events()) == 1


def test_busy_can_leave_out_the_booking_being_moved(caldav_diary: CalDAVDiary) -> None:
    with adapter(caldav_diary) as diary:
        diary.created(Booking("BK-OWN", "haircut", at(7, 10), at(7, 10, 30), "Ada"))
        diary.created(Booking("BK-OTHER", "haircut", at(7, 11), at(7, 11, 30), "Bea"))
        assert diary.busy(at(7, 9), at(7, 17), ignore_reference="BK-OWN") == [
            (at(7, 11), at(7, 11, 30))]


def test_cancelled_removes_the_event_and_a_second_cancel_is_fine(
        caldav_diary: CalDAVDiary) -> None:
    booking = Booking("BK-GONE", "haircut", at(7, 10), at(7, 10, 30), "Ada Lovelace")
    with adapter(caldav_diary) as diary:
        diary.created(booking)
        diary.cancelled(booking)
        assert diary.busy(at(7, 0), at(8, 0)) == []
        diary.cancelled(booking)
    assert caldav_diary.calendar.events() == []


def test_a_wrong_password_is_calendar_unavailable_and_never_quoted(
        caldav_diary: CalDAVDiary, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "not-the-Password-9Zq"
    diary = CalDAVCalendar(caldav_diary.url, caldav_diary.username, wrong)
    with pytest.raises(CalendarUnavailable) as raised:
        diary.busy(at(7, 9), at(7, 17))
    assert "refused the username or password" in str(raised.value)
    with pytest.raises(CalendarUnavailable):
        diary.created(Booking("BK-NO", "haircut", at(7, 10), at(7, 10, 30), "Ada"))
    shown = " ".join([str(raised.value), repr(raised.value), repr(diary), caplog.text,
                      *(repr(vars(record)) for record in caplog.records)])
    for secret in (wrong, caldav_diary.password):
        assert secret not in shown
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert caldav_diary.calendar.events() == []
