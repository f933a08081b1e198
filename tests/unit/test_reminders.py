"""Booking reminders (outbound/reminders.py) on a real store (SQLite and PostgreSQL) with an
injected clock and the sandbox's phone network: a booking gets its reminder call, a move or a
cancel keeps it in step, calling hours hold, two planners make one call, the reminder fires
once, and on the reminder call the booking tools find, and cancel, the booking."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bookings.service import BookingService
from calls import lifecycle
from calls.lifecycle import CallerJoined
from calls.service import CallService
from config import Settings
from outbound.dialer import Dialer
from outbound.reminders import ReminderPlanner, reminder_at, reminder_key
from outbound.service import OutboundService
from personas.loader import BUILTIN_DIR
from sandbox.phone_network import example
from sip.service import SipService
from tests.fakes import FakeConvoAI
from tests.unit.test_outbound_dialer import PhoneNetwork
from tools.booking_runner import BookingTools
from tools.service import ToolService

LONDON = ZoneInfo("Europe/London")
#: Thursday 2026-12-03 10:00 in London (UTC in winter).
THURSDAY_10 = datetime(2026, 12, 3, 10, 0, tzinfo=LONDON).timestamp()
DAY, HOUR = 86400, 3600


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON).timestamp()


@pytest.fixture
def world(tmp_path: Path, store, clock):
    """The built-in appointments persona as "clinic": open from 07:00, reminders 24h and 2h
    before."""
    clock.now = THURSDAY_10
    text = (BUILTIN_DIR / "appointments.toml").read_text()
    for old, new in (('name = "appointments"', 'name = "clinic"'),
                     ('before = ["24h"]', 'before = ["24h", "2h"]'),
                     ('tue = "09:00-17:00"', 'tue = "07:00-17:00"')):
        assert old in text
        text = text.replace(old, new)
    folder = tmp_path / "personas"
    folder.mkdir()
    (folder / "clinic.toml").write_text(text)
    settings = Settings.for_tests(database_url=str(store.engine.url), personas_dir=str(folder),
                                  outbound_caller_id="+15555550100",
                                  public_url="https://calls.example.com")
    ids = (f"call{n:04d}" for n in itertools.count(1))
    calls = CallService(settings, store, FakeConvoAI(), new_id=lambda: next(ids))
    network = PhoneNetwork()
    sip = SipService(settings, store, calls, calls.personas, network, run_async=False)
    outbound = OutboundService(settings, store, sip, calls.personas)
    planner = ReminderPlanner(settings, store, outbound, calls.personas)
    dialer = Dialer(settings, store, sip, plan=planner.run)
    bookings = BookingService(store, clock=clock)
    return calls, bookings, planner, dialer, network


def book(world, start: str, n: int = 1, phone: str | None = None):
    calls, bookings, *_ = world
    return bookings.book(calls.personas.get("clinic"), "checkup",
                         datetime.fromisoformat(start).replace(tzinfo=LONDON), "Ada Lovelace",
                         phone=phone or example("answered", n))


def reminder(store, booking, before_s: int, revision: int | None = None):
    """The attempt and call of a booking's reminder, or (None, None)."""
    attempt = store.attempt_by_key(reminder_key(booking.reference,
                                                revision or booking.revision, before_s))
    return attempt, attempt and store.get_call(attempt["call_id"])


def test_a_booking_gets_a_reminder_call_a_day_before_with_what_the_agent_needs(world, store):
    calls, bookings, planner, dialer, network = world
    booking = book(world, "2026-12-07T14:00")  # Monday
    assert planner.run() == 2
    attempt, call = reminder(store, booking, DAY)
    assert attempt["key"] == f"reminder:{booking.reference}:1:86400"
    assert (attempt["state"], attempt["due_at"]) == ("queued", at("2026-12-06T14:00"))
    assert (call.state, call.direction, call.persona) == ("scheduled", "outbound", "clinic")
    assert (call.called_number, call.caller_number) == (booking.phone, "+15555550100")
    variables = json.loads(call.variables)
    assert {k: variables[k] for k in ("booking_reference", "booking_service",
                                      "appointment_date", "appointment_day",
                                      "appointment_time", "customer_name",
                                      "business_name")} == {
        "booking_reference": booking.reference, "booking_service": "checkup",
        "appointment_date": "2026-12-07", "appointment_day": "Monday",
        "appointment_time": "14:00", "customer_name": "Ada Lovelace",
        "business_name": "the clinic"}
    assert variables["reminder"].startswith("yes: you are calling Ada Lovelace")
    assert "Monday 7 December 2026 at 14:00" in variables["reminder"]
    assert reminder(store, booking, 2 * HOUR)[0]["due_at"] == at("2026-12-07T12:00")
    assert planner.run() == 0  # nothing changed: nothing read beyond the latest change
    assert network.dialled == []


def test_a_booking_without_a_phone_or_in_the_past_reminder_window_gets_none(world, store,
                                                                            clock):
    calls, bookings, planner, dialer, network = world
    no_phone = bookings.book(calls.personas.get("clinic"), "checkup",
                             datetime(2026, 12, 7, 15, 0, tzinfo=LONDON), "Bo Peep")
    # Friday 09:00 is 23 hours away: the 24h reminder's time has passed, the 2h one has not.
    soon = book(world, "2026-12-04T09:00", n=2)
    planner.run()
    assert store.queued_reminders() and all(
        r["called_number"] == soon.phone for r in store.queued_reminders())
    assert reminder(store, no_phone, DAY) == (None, None)
    assert reminder(store, soon, DAY) == (None, None)
    assert reminder(store, soon, 2 * HOUR)[0]["due_at"] == at("2026-12-03T20:00")


def test_a_moved_booking_cancels_its_queued_reminder_and_gets_one_for_the_new_time(world,
                                                                                   store):
    calls, bookings, planner, dialer, network = world
    booking = book(world, "2026-12-07T14:00")
    planner.run()
    old, old_call = reminder(store, booking, DAY)
    moved = bookings.reschedule(calls.personas.get("clinic"), booking.reference,
                                datetime(2026, 12, 9, 11, 0, tzinfo=LONDON))
    assert planner.run() == 4  # two cancelled, two scheduled
    assert store.attempt_by_key(old["key"])["state"] == "cancelled"
    call = store.get_call(old_call.id)
    assert (call.state, call.end_reason) == ("ended", "booking_changed")
    new, new_call = reminder(store, moved, DAY)
    assert new["key"] == f"reminder:{booking.reference}:2:86400"
    assert (new["state"], new["due_at"]) == ("queued", at("2026-12-08T11:00"))
    assert json.loads(new_call.variables)["appointment_date"] == "2026-12-09"
    assert sorted(r["key"] for r in store.queued_reminders()) == sorted(
        [reminder_key(booking.reference, 2, DAY), reminder_key(booking.reference, 2, 2 * HOUR)])


def test_a_cancelled_booking_cancels_its_queued_reminders(world, store):
    calls, bookings, planner, dialer, network = world
    booking = book(world, "2026-12-07T14:00")
    other = book(world, "2026-12-07T15:00", n=2)
    planner.run()
    bookings.cancel(calls.personas.get("clinic"), booking.reference)
    assert planner.run() == 2
    assert reminder(store, booking, DAY)[0]["state"] == "cancelled"
    assert reminder(store, booking, 2 * HOUR)[0]["state"] == "cancelled"
    assert reminder(store, other, DAY)[0]["state"] == "queued"  # someone else's stays


def test_the_periodic_full_pass_catches_a_change_a_round_missed(world, store, clock):
    calls, bookings, planner, dialer, network = world
    planner.run()
    booking = book(world, "2026-12-07T14:00")
    planner.seen = store.latest_booking_change()  # as if its commit came after the read
    clock.advance(61)
    assert planner.run() == 0 and reminder(store, booking, DAY) == (None, None)
    clock.advance(600)
    assert planner.run() == 2 and reminder(store, booking, DAY)[0]["state"] == "queued"


def test_two_planners_at_once_make_one_call(world, store):
    calls, bookings, planner, dialer, network = world
    booking = book(world, "2026-12-07T14:00")
    others = [ReminderPlanner(planner.settings, store, planner.outbound, planner.personas)
              for _ in range(3)]
    barrier = threading.Barrier(len(others))

    def run(p):
        barrier.wait()
        p.run()

    threads = [threading.Thread(target=run, args=(p,)) for p in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = [r["key"] for r in store.queued_reminders()]
    assert sorted(keys) == sorted([reminder_key(booking.reference, 1, DAY),
                                   reminder_key(booking.reference, 1, 2 * HOUR)])
    scheduled = store.calls_in_states((lifecycle.SCHEDULED,))
    assert len(scheduled) == 2  # a loser's call, if any, ended unscheduled, never dialled


def test_an_early_appointments_reminders_move_into_calling_hours(world, store, clock):
    calls, bookings, planner, dialer, network = world
    booking = book(world, "2026-12-08T08:00")  # Tuesday 08:00: 24h before is Monday 08:00
    planner.run()
    assert reminder(store, booking, DAY)[0]["due_at"] == at("2026-12-06T20:00")
    assert reminder(store, booking, 2 * HOUR)[0]["due_at"] == at("2026-12-07T20:00")
    # Booked at 21:00 on the Monday evening: no calling time is left before it.
    clock.now = at("2026-12-14T21:00")
    late = book(world, "2026-12-15T08:00", n=2)
    planner.run()
    assert reminder(store, late, DAY) == reminder(store, late, 2 * HOUR) == (None, None)


@pytest.mark.parametrize(("start", "before", "now", "expected"), [
    ("2026-12-07T14:00", "24h", "2026-12-03T10:00", "2026-12-06T14:00"),
    ("2026-12-07T14:00", "24h", "2026-12-06T14:00", None),  # not after now
    ("2026-12-08T08:00", "24h", "2026-12-03T10:00", "2026-12-06T20:00"),
    ("2026-12-08T22:00", "1h", "2026-12-03T10:00", "2026-12-08T20:00"),
    ("2026-12-08T09:30", "30m", "2026-12-03T10:00", "2026-12-08T09:00"),
    ("2026-12-08T20:00", "0h", "2026-12-03T10:00", "2026-12-08T20:00"),
    # On the wall clock: 24h before 10:00 on the Monday after the clocks go back (Sunday 25
    # October 2026) is 10:00 on the Sunday, 25 hours earlier.
    ("2026-10-26T10:00", "24h", "2026-10-01T10:00", "2026-10-25T10:00"),
])
def test_reminder_at(start, before, now, expected):
    seconds = {"h": HOUR, "m": 60}[before[-1]] * int(before[:-1])
    start_at = datetime.fromisoformat(start).replace(tzinfo=LONDON)
    got = reminder_at(start_at, seconds, LONDON, at(now))
    assert got == (None if expected is None else at(expected))


def test_the_reminder_fires_once_at_its_time_through_the_dialer(world, store, clock):
    calls, bookings, planner, dialer, network = world
    booking = book(world, "2026-12-07T14:00")
    dialer.run_due()  # plans the reminders
    other = Dialer(dialer.settings, store, dialer.sip,
                   plan=ReminderPlanner(planner.settings, store, planner.outbound,
                                        planner.personas).run)
    clock.now = at("2026-12-06T14:00") - 1
    dialer.run_due()
    other.run_due()
    assert network.dialled == []
    clock.advance(1)
    other.run_due()
    dialer.run_due()
    assert network.dialled == [booking.phone]
    _, call = reminder(store, booking, DAY)
    assert store.get_call(call.id).state in lifecycle.LIVE_STATES
    clock.advance(60)
    dialer.run_due()
    other.run_due()
    assert network.dialled == [booking.phone]


def test_on_the_reminder_call_the_tools_find_and_cancel_the_booking_and_its_reminders(
        world, store, clock):
    calls, bookings, planner, dialer, network = world
    booking = book(world, "2026-12-07T14:00")
    dialer.run_due()
    clock.now = at("2026-12-06T14:00")
    dialer.run_due()
    assert network.dialled == [booking.phone]
    _, call = reminder(store, booking, DAY)
    calls.handle_caller_event(CallerJoined(call.channel, 111, 1, "j1"), event_type=103)
    call = store.get_call(call.id)
    tools = ToolService(store, calls, dialer.sip, sleep=clock.advance)
    tools.booking_tools = BookingTools(bookings)
    # "The number they are calling from" is, on a call out, the number that was rung.
    found = tools.call_tool(call, "find_booking", {})
    assert [b["reference"] for b in found["structuredContent"]["bookings"]] == [
        booking.reference]
    result = tools.call_tool(call, "cancel_appointment", {"reference": booking.reference})
    assert not result["isError"] and result["structuredContent"]["cancelled"] is True
    assert store.get_booking(booking.reference).state == "cancelled"
    dialer.run_due()  # the next round cancels the 2h reminder; the 24h one is on the line
    assert reminder(store, booking, 2 * HOUR)[0]["state"] == "cancelled"
    assert store.get_call(call.id).state in lifecycle.LIVE_STATES
    clock.now = at("2026-12-07T12:00")
    dialer.run_due()
    assert network.dialled == [booking.phone]


def test_a_number_on_the_do_not_call_list_gets_no_more_reminders(world, store, clock):
    calls, bookings, planner, dialer, network = world
    booking = book(world, "2026-12-07T14:00")
    listed = book(world, "2026-12-07T15:00", n=2)
    store.add_suppression(listed.phone, source="api")
    planner.run()
    assert reminder(store, listed, DAY) == (None, None)
    store.add_suppression(booking.phone, source="opt_out")
    clock.advance(600)  # the full pass sees it
    planner.run()
    assert reminder(store, booking, DAY)[0]["state"] == "cancelled"


def test_without_a_caller_id_there_are_no_reminders(world, store):
    calls, bookings, planner, dialer, network = world
    settings = dataclasses.replace(planner.settings, outbound_caller_id="")
    quiet = ReminderPlanner(settings, store, planner.outbound, planner.personas)
    book(world, "2026-12-07T14:00")
    assert quiet.specs == {} and quiet.run() == 0
    assert store.queued_reminders() == []
