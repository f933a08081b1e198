"""GET /api/bookings and its CSV and iCalendar exports: the admin token, the filters, and what
each format holds."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from bookings.service import BookingService
from tests.unit.test_dashboard import sign_in

TOKEN = {"Authorization": "Bearer sandbox-admin-token"}
NOW = datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()  # Friday


@pytest.fixture
def booked(app):
    """Three bookings of the appointments persona: two on Monday (one cancelled), one Tuesday."""
    diary = BookingService(app.extensions["store"], clock=lambda: NOW)
    persona = app.extensions["personas"].get("appointments")
    monday = diary.book(persona, "checkup", datetime.fromisoformat("2027-01-18T09:00:00+00:00"),
                        "Ann Lee", phone="+447700900123", call_id="call-1")
    other = diary.book(persona, "consultation",
                       datetime.fromisoformat("2027-01-18T11:00:00+00:00"), "=HYPERLINK(1)")
    diary.cancel(persona, other.reference)
    tuesday = diary.book(persona, "vaccination",
                         datetime.fromisoformat("2027-01-19T10:00:00+00:00"), "Bob, Roe; Jr")
    return monday, other, tuesday


@pytest.mark.parametrize("path", ["/api/bookings", "/api/bookings.csv", "/api/bookings.ics"])
def test_the_bookings_need_the_admin_token(client, path):
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get(path, headers=TOKEN).status_code == 200


def test_the_list_filters_by_day_service_and_state(client, booked):
    monday, other, tuesday = booked

    def refs(query: str) -> list[str]:
        answer = client.get(f"/api/bookings{query}", headers=TOKEN)
        assert answer.status_code == 200, answer.get_json()
        return [b["reference"] for b in answer.get_json()["bookings"]]

    assert refs("") == [monday.reference, other.reference, tuesday.reference]
    assert refs("?day=2027-01-18") == [monday.reference, other.reference]
    assert refs("?day=2027-01-18&days=2&state=booked") == [monday.reference, tuesday.reference]
    assert refs("?state=cancelled") == [other.reference]
    assert refs("?service=vaccination") == [tuesday.reference]
    assert refs("?day=2027-01-20") == []
    first = client.get("/api/bookings?day=2027-01-18", headers=TOKEN).get_json()["bookings"][0]
    assert first == {"reference": monday.reference, "persona": "appointments",
                     "service": "checkup", "start": "2027-01-18T09:00:00+00:00",
                     "end": "2027-01-18T09:30:00+00:00", "name": "Ann Lee",
                     "phone": "+447700900123", "call_id": "call-1", "state": "booked",
                     "revision": 1}


@pytest.mark.parametrize("query", ["?state=maybe", "?day=monday", "?day=2027-01-18&days=0",
                                   "?days=2", "?day=9999-12-31&days=62", "?day=0001-01-01"])
def test_a_bad_filter_is_a_400_saying_which(client, query):
    answer = client.get(f"/api/bookings{query}", headers=TOKEN)
    assert answer.status_code == 400


def test_the_csv_has_a_row_per_booking_and_no_formulas(client, booked):
    answer = client.get("/api/bookings.csv", headers=TOKEN)
    assert answer.headers["Content-Disposition"] == 'attachment; filename="bookings.csv"'
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert [r["reference"] for r in rows] == [b.reference for b in booked]
    assert rows[0]["phone"] == "+447700900123"  # a number stays a number
    assert rows[1]["name"] == "'=HYPERLINK(1)" and rows[1]["state"] == "cancelled"


def test_the_ics_has_an_event_per_booking_with_a_stable_uid(client, booked):
    monday, other, tuesday = booked
    answer = client.get("/api/bookings.ics?state=booked", headers=TOKEN)
    assert answer.mimetype == "text/calendar"
    text = answer.get_data(as_text=True)
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
    assert text.count("BEGIN:VEVENT") == 2
    assert f"UID:{monday.reference}@phone-agent\r\n" in text
    assert "DTSTART:20270118T090000Z\r\nDTEND:20270118T093000Z\r\n" in text
    assert "SUMMARY:vaccination: Bob\\, Roe\\; Jr\r\n" in text
    cancelled = client.get("/api/bookings.ics?state=cancelled", headers=TOKEN).get_data(
        as_text=True)
    assert "STATUS:CANCELLED" in cancelled and "SEQUENCE:1" in cancelled
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))


# -- the dashboard's diary ---------------------------------------------------------------------


def test_the_diary_needs_a_sign_in_and_the_nav_links_to_it(client):
    assert client.get("/dashboard/diary").status_code == 302
    assert client.get("/dashboard/diary/week").status_code == 302
    sign_in(client, "sandbox-admin-token")
    page = client.get("/dashboard/").get_data(as_text=True)
    assert 'href="/dashboard/diary"' in page and 'href="/dashboard/diary/week"' in page


def test_the_diary_shows_a_day_and_a_week_of_bookings(client, booked):
    monday, other, tuesday = booked
    sign_in(client, "sandbox-admin-token")
    day = client.get("/dashboard/diary?day=2027-01-18").get_data(as_text=True)
    assert monday.reference in day and other.reference in day
    assert tuesday.reference not in day
    assert "09:00–09:30" in day and 'href="/dashboard/calls/call-1"' in day
    assert "1 booked" in day and "Europe/London" in day
    week = client.get("/dashboard/diary/week?day=2027-01-20").get_data(as_text=True)
    assert 'id="diary-2027-01-18"' in week and 'id="diary-2027-01-24"' in week
    assert monday.reference in week and tuesday.reference in week and "2 booked" in week
    for day in ("soon", "9999-12-31", "0001-01-01"):
        bad = client.get(f"/dashboard/diary/week?day={day}")
        assert bad.status_code == 200 and "not a date" in bad.get_data(as_text=True)
