"""The diary in the store (bookings/service.py over store/bookings.py), on SQLite and PostgreSQL:
booking, finding, moving and cancelling, the operator's events, and never a double booking."""

from __future__ import annotations

import json
import threading
import time as wall
from datetime import date, datetime, time
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from bookings.models import CalendarUnavailable, NotBookable, SlotTaken, UnknownBooking
from bookings.service import BookingService
from calls.outbox import EventSender
from personas.booking_shape import BookingSpec

LONDON = ZoneInfo("Europe/London")
MONDAY = date(2027, 1, 18)  # the store fixture's clock is Friday 15 January 2027, 08:00 UTC
SPEC = BookingSpec(timezone="Europe/London", services={"checkup": 30},
                   hours={d: (time(9), time(17)) for d in range(5)}, buffer_minutes=10)
CLINIC = SimpleNamespace(name="clinic", booking=SPEC)


def at(hour: int, minute: int = 0, day: date = MONDAY) -> datetime:
    return datetime.combine(day, time(hour, minute), LONDON)


@pytest.fixture
def diary(store, clock) -> BookingService:
    return BookingService(store, clock=clock)


def test_a_booking_takes_its_slot_and_the_buffer_around_it(diary):
    booking = diary.book(CLINIC, "checkup", at(10), "Ann Lee", phone="+44 7700 900123",
                         call_id="call-1")
    assert booking.reference.startswith("BK-") and booking.end == at(10, 30)
    assert booking.phone == "+447700900123"
    slots = diary.find_slots(CLINIC, "checkup", MONDAY)
    assert at(10) not in slots and at(10, 30) not in slots and at(9, 30) not in slots
    assert at(9, 15) in slots and at(10, 45) in slots
    assert diary.store.get_booking(booking.reference) == booking


def test_a_taken_slot_is_refused_with_the_next_free_times(diary):
    diary.book(CLINIC, "checkup", at(10), "Ann Lee")
    with pytest.raises(SlotTaken) as refused:
        diary.book(CLINIC, "checkup", at(10, 15), "Bob Roe")
    assert refused.value.alternatives == [at(10, 45), at(11), at(11, 15)]
    assert len(diary.store.list_bookings(persona="clinic")) == 1


def test_a_time_the_diary_does_not_open_is_not_bookable(diary):
    with pytest.raises(NotBookable, match="closed"):
        diary.book(CLINIC, "checkup", at(10, day=date(2027, 1, 16)), "Ann Lee")
    with pytest.raises(NotBookable, match="opening hours"):
        diary.book(CLINIC, "checkup", at(16, 45), "Ann Lee")


def test_find_by_reference_or_phone_then_move_and_cancel(diary):
    booking = diary.book(CLINIC, "checkup", at(10), "Ann Lee", phone="07700 900123")
    assert diary.find(CLINIC, reference=booking.reference.lower().replace("-", " ")) == [booking]
    assert diary.find(CLINIC, phone="077 009 00123") == [booking]
    assert diary.find(CLINIC, phone="07700 900999") == []
    assert diary.find(SimpleNamespace(name="other", booking=SPEC),
                      reference=booking.reference) == []
    moved = diary.reschedule(CLINIC, booking.reference, at(14))
    assert (moved.start, moved.revision) == (at(14), 2)
    assert at(10) in diary.find_slots(CLINIC, "checkup", MONDAY)
    cancelled = diary.cancel(CLINIC, booking.reference)
    assert (cancelled.state, cancelled.revision) == ("cancelled", 3)
    assert at(14) in diary.find_slots(CLINIC, "checkup", MONDAY)
    assert diary.find(CLINIC, phone="07700 900123") == []
    with pytest.raises(UnknownBooking):
        diary.cancel(CLINIC, booking.reference)


def test_a_move_may_overlap_its_own_old_time_but_not_another_booking(diary):
    first = diary.book(CLINIC, "checkup", at(10), "Ann Lee")
    diary.book(CLINIC, "checkup", at(11), "Bob Roe")
    assert diary.reschedule(CLINIC, first.reference, at(10, 15)).start == at(10, 15)
    with pytest.raises(SlotTaken):
        diary.reschedule(CLINIC, first.reference, at(11, 15))


def test_each_change_is_one_signed_event_carrying_the_booking_as_it_was(diary, store):
    store.emit_events = True
    booking = diary.book(CLINIC, "checkup", at(10), "Ann Lee", call_id="call-1")
    diary.reschedule(CLINIC, booking.reference, at(11))
    diary.reschedule(CLINIC, booking.reference, at(12))
    diary.cancel(CLINIC, booking.reference)
    events = store.outbox_events()
    assert [(e["id"], e["type"]) for e in events] == [
        (f"evt_{booking.reference}_1_created", "booking.created"),
        (f"evt_{booking.reference}_2_changed", "booking.changed"),
        (f"evt_{booking.reference}_3_changed", "booking.changed"),
        (f"evt_{booking.reference}_4_cancelled", "booking.cancelled")]
    assert json.loads(events[1]["payload"])["start"] == "2027-01-18T11:00:00+00:00"
    sent = []

    class Session:
        trust_env = True

        def post(self, url, data, headers, timeout, allow_redirects):
            sent.append((json.loads(data), headers))
            return SimpleNamespace(status_code=204)

    sender = EventSender("https://ops.example.com/events", "whsec_" + "A" * 32, store,
                         session=Session(), clock=store.clock)
    assert sender.deliver_due() == 4
    body, headers = sent[3]
    assert body["type"] == "booking.cancelled" and body["data"]["state"] == "cancelled"
    assert body["data"]["reference"] == booking.reference and body["data"]["revision"] == 4
    assert headers["webhook-id"] == f"evt_{booking.reference}_4_cancelled"


class SlowCalendar:
    """A calendar that takes a moment to answer: without the diary lock, two bookings would
    both read the slot as free."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def busy(self, start, end, *, ignore_reference=None):
        wall.sleep(0.05)
        return []

    def created(self, booking):
        self.events.append(booking.reference)

    def changed(self, booking):
        pass

    def cancelled(self, booking):
        pass


@pytest.mark.parametrize("attempts", [2, 10])
def test_concurrent_attempts_at_one_slot_give_exactly_one_booking(store, clock, attempts):
    calendar = SlowCalendar()
    diary = BookingService(store, clock=clock, calendars=lambda spec: calendar)
    start = threading.Barrier(attempts)
    outcomes: list[object] = []

    def attempt(n: int) -> None:
        start.wait()
        try:
            outcomes.append(diary.book(CLINIC, "checkup", at(10), f"Caller {n}"))
        except SlotTaken as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    won = [o for o in outcomes if not isinstance(o, SlotTaken)]
    lost = [o for o in outcomes if isinstance(o, SlotTaken)]
    assert len(won) == 1 and len(lost) == attempts - 1
    assert all(exc.alternatives[0] == at(10, 45) for exc in lost)
    assert [b.reference for b in store.list_bookings(persona="clinic")] == [won[0].reference]
    assert calendar.events == [won[0].reference]


def test_a_calendar_that_refuses_the_write_leaves_no_booking_and_no_event(store, clock):
    class Refusing(SlowCalendar):
        def created(self, booking):
            raise CalendarUnavailable("The calendar did not answer.")

    store.emit_events = True
    diary = BookingService(store, clock=clock, calendars=lambda spec: Refusing())
    with pytest.raises(CalendarUnavailable):
        diary.book(CLINIC, "checkup", at(10), "Ann Lee")
    assert store.list_bookings() == [] and store.outbox_events() == []
