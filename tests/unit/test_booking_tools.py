"""The booking tools of the appointments persona, through the tool service and its ledger, on
the real store: schemas in tools/list, results, refusals with alternatives, exactly once."""

from __future__ import annotations

from datetime import date

import pytest

from bookings.service import BookingService
from personas.booking_shape import BOOKING_TOOL_NAMES
from tests.unit.test_tools_service import start, world  # noqa: F401 (the fixture)
from tools.booking_runner import BookingTools

MONDAY = date(2027, 1, 18)  # the store fixture's clock is Friday 15 January 2027


@pytest.fixture
def appointments(world, clock):  # noqa: F811
    tools = world[3]
    tools.booking_tools = BookingTools(BookingService(tools.store, clock=clock))
    call, properties = start(world, "appt", "appointments")
    return tools, call, properties


def run(tools, call, tool, **arguments):
    result = tools.call_tool(call, tool, arguments)
    return result["isError"], result.get("structuredContent"), result["content"][0]["text"]


def test_the_agent_gets_the_five_booking_tools_with_the_personas_services(appointments):
    tools, call, properties = appointments
    # opt_out, its one built-in, comes first (catalog order: built-ins, then booking tools).
    expected = ["end_call", "opt_out", *BOOKING_TOOL_NAMES]
    assert properties["llm"]["mcp_servers"][0]["allowed_tools"] == expected
    listed = {t["name"]: t for t in tools.list_tools(call)}
    assert list(listed) == expected
    schema = listed["book_appointment"]["inputSchema"]
    assert schema["required"] == ["service", "start", "name"]
    assert schema["properties"]["service"]["enum"] == ["checkup", "consultation", "vaccination"]
    assert listed["book_appointment"]["annotations"]["destructiveHint"] is True
    assert listed["find_slots"]["annotations"]["destructiveHint"] is False
    assert "Europe/London" in listed["find_slots"]["description"]


def test_find_then_book_then_the_slot_is_gone(appointments):
    tools, call, _ = appointments
    error, found, _ = run(tools, call, "find_slots", service="checkup", date=MONDAY.isoformat())
    assert not error and found["slots"][0] == "2027-01-18T09:00:00+00:00"
    error, booked, text = run(tools, call, "book_appointment", service="checkup",
                              start=found["slots"][0], name="Ann Lee", phone="07700 900123")
    assert not error and booked["start"] == "2027-01-18T09:00:00+00:00"
    assert booked["end"] == "2027-01-18T09:30:00+00:00" and booked["reference"] in text
    stored = tools.store.get_booking(booked["reference"])
    assert (stored.call_id, stored.persona, stored.name) == (call.id, "appointments", "Ann Lee")
    _, again, _ = run(tools, call, "find_slots", service="checkup", date=MONDAY.isoformat())
    assert "2027-01-18T09:00:00+00:00" not in again["slots"]


def test_a_repeat_of_a_booking_request_is_the_same_booking(appointments):
    tools, call, _ = appointments
    arguments = dict(service="checkup", start="2027-01-18T10:00:00+00:00", name="Ann Lee")
    first = tools.call_tool(call, "book_appointment", dict(arguments))
    second = tools.call_tool(call, "book_appointment", dict(arguments))
    assert first == second
    assert len(tools.store.list_bookings(persona="appointments")) == 1


def test_a_taken_slot_is_a_tool_error_with_alternatives(appointments, world):  # noqa: F811
    tools, call, _ = appointments
    run(tools, call, "book_appointment", service="checkup", start="2027-01-18T10:00:00+00:00",
        name="Ann Lee")
    other, _ = start(world, "appt2", "appointments")
    error, refused, text = run(tools, other, "book_appointment", service="checkup",
                               start="2027-01-18T10:00:00+00:00", name="Bob Roe")
    assert error and refused["error"] == "slot_taken"
    # 10:00-10:30 is booked and the clinic keeps 5 minutes clear: 10:45 is next on the grid.
    assert refused["alternatives"] == ["2027-01-18T10:45:00+00:00",
                                       "2027-01-18T11:00:00+00:00",
                                       "2027-01-18T11:15:00+00:00"]
    assert "taken" in text


def test_a_time_outside_the_hours_is_refused_with_times_that_are_open(appointments):
    tools, call, _ = appointments
    error, refused, text = run(tools, call, "book_appointment", service="checkup",
                               start="2027-01-18T18:00:00", name="Ann Lee")
    assert error and refused["error"] == "not_bookable" and "opening hours" in text
    assert refused["alternatives"][0] == "2027-01-18T09:00:00+00:00"  # open times that day


def test_find_by_the_callers_number_then_move_then_cancel(appointments):
    tools, call, _ = appointments
    caller = call._replace(caller_number="+447700900123")
    runner = tools.booking_tools
    persona = tools.calls.persona_of(call)
    booked = runner.run("book_appointment", caller, persona, {
        "service": "checkup", "start": "2027-01-18T11:00:00+00:00", "name": "Ann Lee"})
    reference = booked.structured["reference"]
    found = runner.run("find_booking", caller, persona, {})
    assert [b["reference"] for b in found.structured["bookings"]] == [reference]
    assert runner.run("find_booking", call, persona, {}).structured == {"bookings": []}
    error, moved, _ = run(tools, call, "reschedule_appointment", reference=reference,
                          start="2027-01-18T15:00:00+00:00")
    assert not error and moved["start"] == "2027-01-18T15:00:00+00:00"
    error, cancelled, _ = run(tools, call, "cancel_appointment", reference=reference)
    assert not error and cancelled["cancelled"] is True
    error, _, text = run(tools, call, "cancel_appointment", reference="BK-ZZZZZ")
    assert error and "no booked appointment" in text
    assert tools.store.get_booking(reference).state == "cancelled"


def test_bad_arguments_never_reach_the_diary(appointments):
    tools, call, _ = appointments
    error, _, text = run(tools, call, "find_slots", service="massage", date="2027-01-18")
    assert error and "massage" in text
    error, _, text = run(tools, call, "book_appointment", service="checkup",
                         start="next tuesday at 3", name="Ann Lee")
    assert error and "ISO 8601" in text
