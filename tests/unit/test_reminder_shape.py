"""A persona's [booking.reminders] table (personas/reminder_shape.py): the example loads, each
mistake is one `file: field: problem` line, and a reminder persona that does not exist is a
problem of the registry (what `flask personas check` prints)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from config import ConfigError, Settings
from personas import inspect_personas, load_registry
from personas.loader import parse
from tests.unit.test_booking_shape import EXAMPLE
from tests.unit.test_persona_tools import HEAD, VENDORS

REMINDERS = '''
[booking.reminders]
before = ["24h", "90m", "2d"]
persona = "support"
from = "+44 20 7946 0000"
'''


def load(text: str):
    data = tomllib.loads(HEAD + EXAMPLE + text + VENDORS)
    return parse(data, source="personas/shop.toml", stem="shop", builtin=False,
                 resolve=lambda var: (f"{var}-value", "set"))


def test_the_example_loads_largest_offset_first():
    persona, problems = load(REMINDERS)
    assert problems == []
    spec = persona.booking.reminders
    assert spec.before_s == (2 * 86400, 86400, 90 * 60)
    assert (spec.persona, spec.caller_id) == ("support", "+442079460000")


def test_no_table_is_no_reminders_and_defaults_are_none():
    assert load("")[0].booking.reminders is None
    persona, problems = load('[booking.reminders]\nbefore = ["24h"]\n')
    assert problems == []
    assert (persona.booking.reminders.persona, persona.booking.reminders.caller_id) == (
        None, None)


@pytest.mark.parametrize(("change", "field", "words"), [
    (('"24h", "90m", "2d"', '"24 hours"'), "booking.reminders.before", "not a duration"),
    (('"24h", "90m", "2d"', '"5m"'), "booking.reminders.before", "15m to 30d"),
    (('"24h", "90m", "2d"', '"31d"'), "booking.reminders.before", "15m to 30d"),
    (('"24h", "90m", "2d"', '"24h", "1d"'), "booking.reminders.before", "twice"),
    (('before = ["24h", "90m", "2d"]', "before = []"), "booking.reminders.before",
     "list of 1 to 5"),
    (('before = ["24h", "90m", "2d"]', 'before = "24h"'), "booking.reminders.before",
     "list of 1 to 5"),
    (('persona = "support"', 'persona = "Support Line"'), "booking.reminders.persona",
     "persona's name"),
    (('from = "+44 20 7946 0000"', 'from = "reception"'), "booking.reminders.from",
     "phone number"),
    (('from = "+44 20 7946 0000"', 'when = "daily"'), "booking.reminders.when",
     "unknown field"),
])
def test_each_mistake_is_a_file_field_problem_line(change, field, words):
    persona, problems = load(REMINDERS.replace(*change))
    lines = [str(p) for p in problems]
    mine = [line for line in lines if line.startswith(f"personas/shop.toml: {field}: ")]
    assert persona is None and mine and words in mine[0], lines


def test_a_reminder_persona_that_does_not_exist_is_a_problem(tmp_path: Path):
    (tmp_path / "shop.toml").write_text(HEAD + EXAMPLE + REMINDERS + VENDORS)
    settings = Settings.for_tests(personas_dir=str(tmp_path))
    assert inspect_personas(settings, strict=True).problems == []
    text = HEAD + EXAMPLE + REMINDERS.replace('"support"', '"nobody"') + VENDORS
    (tmp_path / "shop.toml").write_text(text)
    assert inspect_personas(settings, strict=True).problems == [
        f"{tmp_path / 'shop.toml'}: booking.reminders.persona: no persona named 'nobody' "
        "(known: appointments, orders, shop, support, tarot, triage)"]
    with pytest.raises(ConfigError, match="no persona named 'nobody'"):
        load_registry(Settings.for_tests(personas_dir=str(tmp_path)))  # start-up refuses it too


def test_the_appointments_persona_reminds_a_day_before():
    persona = inspect_personas(Settings.for_tests()).personas["appointments"]
    assert persona.booking.reminders.before_s == (86400,)
    assert "{{reminder}}" in persona.prompt and persona.variables["reminder"]


def test_personas_show_lists_the_reminders(runner):
    out = runner.invoke(args=["personas", "show", "appointments"]).output
    assert "24h before; by appointments, from OUTBOUND_CALLER_ID" in out
