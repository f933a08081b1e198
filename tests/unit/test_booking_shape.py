"""A persona's [booking] table (personas/booking_shape.py): the issue's example loads, each
mistake is one `file: field: problem` line, and the diary's zone gives the agent its date."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, time

import pytest

from config import Settings
from convoai.payload import build_join_properties
from personas import load_registry
from personas.booking_shape import BOOKING_TOOL_NAMES
from personas.loader import parse
from tests.unit.test_persona_tools import HEAD, VENDORS

#: The issue's contract example, verbatim.
EXAMPLE = '''
[booking]
backend = "store"                  # or "caldav"
timezone = "Europe/London"         # IANA
services = { haircut = 30, colour = 90 }   # minutes
buffer_minutes = 10
max_days_ahead = 60
closed = ["2026-12-25"]
[booking.hours]                    # per weekday; absent = closed
mon = "09:00-17:00"
sat = "10:00-14:00"
'''
CALDAV = '''
[booking.caldav]                   # backend = "caldav" only
url = "https://dav.example.com/calendars/clinic/diary/"
username = "clinic"
password_env = "CLINIC_CALDAV_PASSWORD"
'''


def load(booking: str, resolve=lambda var: (f"{var}-value", "set")):
    data = tomllib.loads(HEAD + booking + VENDORS)
    return parse(data, source="personas/shop.toml", stem="shop", builtin=False, resolve=resolve)


def test_the_issues_example_loads_into_a_booking_spec():
    persona, problems = load(EXAMPLE)
    assert problems == []
    spec = persona.booking
    assert (spec.backend, spec.timezone, spec.buffer_minutes, spec.max_days_ahead) == (
        "store", "Europe/London", 10, 60)
    assert spec.services == {"haircut": 30, "colour": 90}
    assert spec.hours == {0: (time(9), time(17)), 5: (time(10), time(14))}
    assert spec.closed == frozenset({date(2026, 12, 25)})
    assert persona.tool_names[-5:] == BOOKING_TOOL_NAMES


def test_caldav_reads_its_password_from_the_environment_and_keeps_it_secret():
    persona, problems = load(EXAMPLE.replace('"store"', '"caldav"') + CALDAV)
    assert problems == []
    spec = persona.booking
    assert (spec.caldav_url, spec.caldav_username, spec.caldav_password) == (
        "https://dav.example.com/calendars/clinic/diary/", "clinic",
        "CLINIC_CALDAV_PASSWORD-value")
    assert "CLINIC_CALDAV_PASSWORD-value" not in repr(spec)
    assert "CLINIC_CALDAV_PASSWORD-value" in persona.secret_values()
    assert [(r.field, r.var) for r in persona.env if r.var == "CLINIC_CALDAV_PASSWORD"] == [
        ("booking.caldav.password_env", "CLINIC_CALDAV_PASSWORD")]


@pytest.mark.parametrize(("change", "field", "words"), [
    (("Europe/London", "Europe/Londn"), "booking.timezone", "unknown time zone"),
    (('timezone = "Europe/London"', ""), "booking.timezone", "missing"),
    (("haircut = 30", "haircut = 0"), "booking.services.haircut", "5 to 720"),
    (("haircut = 30", "Haircut = 30"), "booking.services.Haircut", "lower-case"),
    (("buffer_minutes = 10", "buffer_minutes = -1"), "booking.buffer_minutes", "between 0"),
    (("max_days_ahead = 60", "max_days_ahead = 0"), "booking.max_days_ahead", "between 1"),
    (('"2026-12-25"', '"25/12/2026"'), "booking.closed", "not a date"),
    (('mon = "09:00-17:00"', 'mon = "9-5"'), "booking.hours.mon", "HH:MM-HH:MM"),
    (('mon = "09:00-17:00"', 'mon = "17:00-09:00"'), "booking.hours.mon", "close after"),
    (('mon = "09:00-17:00"', 'monday = "09:00-17:00"'), "booking.hours.monday",
     "unknown weekday"),
    (('backend = "store"', 'backend = "paper"'), "booking.backend", "\"store\" or \"caldav\""),
    (('backend = "store"', 'backend = "caldav"'), "booking.caldav", "missing"),
    (("buffer_minutes = 10", "buffer = 10"), "booking.buffer", "unknown field"),
])
def test_each_mistake_is_a_file_field_problem_line(change, field, words):
    persona, problems = load(EXAMPLE.replace(*change))
    lines = [str(p) for p in problems]
    mine = [line for line in lines if line.startswith(f"personas/shop.toml: {field}: ")]
    assert persona is None and mine and words in mine[0], lines


@pytest.mark.parametrize(("caldav", "field", "words"), [
    (CALDAV.replace("https://", "ftp://"), "booking.caldav.url", "http(s) URL"),
    (CALDAV.replace('password_env = "CLINIC_CALDAV_PASSWORD"', 'password = "hunter2"'),
     "booking.caldav.password", "must not be written in the file"),
    (CALDAV.replace("CLINIC_CALDAV_PASSWORD", "not a name"), "booking.caldav.password_env",
     "environment variable"),
])
def test_caldav_mistakes_are_problem_lines(caldav, field, words):
    persona, problems = load(EXAMPLE.replace('"store"', '"caldav"') + caldav)
    lines = [str(p) for p in problems]
    assert any(line.startswith(f"personas/shop.toml: {field}: ") and words in line
               for line in lines), lines
    assert "hunter2" not in "".join(lines)


def test_caldav_settings_without_the_caldav_backend_are_a_problem():
    _, problems = load(EXAMPLE + CALDAV)
    assert [p.field for p in problems] == ["booking.caldav"]


def test_a_persona_with_a_diary_is_told_the_diarys_date_and_time():
    settings = Settings.for_tests(timezone="America/New_York")
    persona = load_registry(settings).get("appointments")
    assert persona.booking.timezone == "Europe/London"
    properties = build_join_properties(settings, persona, call_id="c1", channel="room-1",
                                       now=datetime(2026, 6, 2, 23, 30, tzinfo=UTC))
    variables = properties["llm"]["template_variables"]
    assert (variables["local_date"], variables["local_time"], variables["timezone"]) == (
        "Wednesday 3 June 2026", "00:30", "Europe/London")
    assert "cannot see the diary" not in persona.prompt


def test_personas_show_describes_the_diary(runner):
    out = runner.invoke(args=["personas", "show", "appointments"]).output
    assert "store diary in Europe/London: checkup 30 min" in out
    assert "mon 09:00-17:00" in out and "closed 2026-12-25" in out
