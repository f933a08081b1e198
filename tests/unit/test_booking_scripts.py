"""The appointments persona's ready scripts (book, move, cancel) and the ``{{path}}`` arguments
that let a script use what an earlier turn's result gave (sandbox/conversation.py)."""

from __future__ import annotations

import pytest

from sandbox.conversation import ScriptError, fill, load_script, play

KNOWN = {"today": "2027-01-15", "reference": "BK-7H3Q9",
         "slots": ["2027-01-18T09:00:00+00:00", "2027-01-18T09:15:00+00:00"],
         "bookings": [{"reference": "BK-7H3Q9"}]}


def test_a_whole_value_placeholder_takes_the_earlier_value_with_its_type():
    assert fill({"start": "{{slots.1}}", "ref": "{{ bookings.0.reference }}", "days": 7,
                 "nested": {"d": "{{today}}"}, "text": "at {{today}}"}, KNOWN, "turn 2") == {
        "start": "2027-01-18T09:15:00+00:00", "ref": "BK-7H3Q9", "days": 7,
        "nested": {"d": "2027-01-15"}, "text": "at {{today}}"}
    assert fill({"slots": "{{slots}}"}, KNOWN, "turn 2") == {"slots": KNOWN["slots"]}


@pytest.mark.parametrize("value", ["{{slots.5}}", "{{nothing}}", "{{reference.x}}"])
def test_a_placeholder_nothing_gave_is_a_one_line_script_error(value):
    with pytest.raises(ScriptError, match=r"^turn 3: .* has no value"):
        fill({"start": value}, KNOWN, "turn 3")


@pytest.mark.parametrize(("name", "tools"), [
    ("appointments", ["find_slots", "book_appointment"]),
    ("appointments_move", ["find_slots", "book_appointment", "find_booking",
                           "reschedule_appointment"]),
    ("appointments_cancel", ["find_slots", "book_appointment", "find_booking",
                             "cancel_appointment"]),
])
def test_the_booking_scripts_use_the_booking_tools(name, tools):
    script = load_script(name)
    assert script.persona == "appointments" and script.tools == tools


class Agents:
    """Answers like the sandbox's agent: the results a real diary would give."""

    def __init__(self) -> None:
        self.sent: list[tuple[str | None, dict]] = []

    def agent(self, agent_id):
        return {"state": "RUNNING", "tools_state": "ready",
                "tools": [{"name": n} for n in ("find_slots", "book_appointment",
                                                "find_booking", "cancel_appointment")]}

    def say(self, agent_id, text, tool, arguments):
        self.sent.append((tool, dict(arguments)))
        structured = {"find_slots": {"slots": ["2027-01-18T09:00:00+00:00"]},
                      "book_appointment": {"reference": "BK-7H3Q9",
                                           "start": "2027-01-18T09:00:00+00:00",
                                           "end": "2027-01-18T09:30:00+00:00"},
                      "find_booking": {"bookings": [{"reference": "BK-7H3Q9"}]},
                      "cancel_appointment": {"reference": "BK-7H3Q9", "cancelled": True},
                      }.get(tool)
        return {"is_error": False, "text": "ok", "structured": structured}


def test_the_cancel_script_cancels_the_reference_its_booking_turn_got():
    agents = Agents()
    play(load_script("appointments_cancel"), agents, "a1", echo=lambda line: None,
         sleep=lambda s: None)
    assert agents.sent[1][1]["start"] == "2027-01-18T09:00:00+00:00"
    assert agents.sent[3] == ("cancel_appointment", {"reference": "BK-7H3Q9"})
