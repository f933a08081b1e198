"""A persona's ``[booking.reminders]`` table: when to call people before their appointments
(docs/bookings.md, "Reminders").

:func:`read_reminders` checks its shape into a :class:`~personas.reader.Problems`, collecting every
problem. Whether ``persona`` names a persona that exists is a question about every file, so
personas/registry.py asks it once all are loaded. outbound/reminders.py plans the calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from personas.reader import Problems
from personas.routing import NAME, NAME_RULE
from sip.numbers import e164

REMINDER_FIELDS = ("before", "persona", "from")
DURATION = re.compile(r"^\s*(\d{1,4})\s*([mhd])\s*$")
UNIT_S = {"m": 60, "h": 3600, "d": 86400}
#: A reminder is a phone call: not minutes before (nobody could still move the appointment),
#: not over a month ahead (the diary itself takes bookings up to a year ahead).
LOWEST_S, HIGHEST_S = 15 * 60, 30 * 86400
MAX_REMINDERS = 5


@dataclass(frozen=True)
class ReminderSpec:
    """``before``: seconds before the start, largest first; ``persona``: the persona that
    places the call (None: the booking's own); ``caller_id``: the number the person sees
    (None: OUTBOUND_CALLER_ID)."""

    before_s: tuple[int, ...]
    persona: str | None = None
    caller_id: str | None = None


def duration_s(text: Any) -> int | None:
    """``"24h"`` -> 86400 (``m``, ``h`` or ``d``); None for anything else."""
    found = DURATION.match(text) if isinstance(text, str) else None
    return None if found is None else int(found[1]) * UNIT_S[found[2]]


def reminders_text(spec: ReminderSpec, own: str) -> str:
    """``24h, 90m before; by appointments, from OUTBOUND_CALLER_ID`` (``personas show``)."""
    def said(seconds: int) -> str:
        for unit in ("d", "h", "m"):  # 24h stays 24h; 2d and more in days
            if seconds % UNIT_S[unit] == 0 and (unit != "d" or seconds >= 2 * 86400):
                return f"{seconds // UNIT_S[unit]}{unit}"
        return f"{seconds}s"

    return (f"{', '.join(said(s) for s in spec.before_s)} before; by {spec.persona or own}, "
            f"from {spec.caller_id or 'OUTBOUND_CALLER_ID'}")


def read_reminders(reader: Problems, value: Any) -> ReminderSpec | None:
    """The diary's reminders, or None when there are none; problems go to ``reader``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        reader.problem("booking.reminders", "must be a table such as [booking.reminders] "
                                            "before = [\"24h\"]")
        return None
    for key in value:
        if key not in REMINDER_FIELDS:
            reader.problem(f"booking.reminders.{key}",
                           f"unknown field (known: {', '.join(REMINDER_FIELDS)})")
    before = _before(reader, value.get("before"))
    persona = value.get("persona")
    if persona is not None and (not isinstance(persona, str) or not NAME.match(persona)):
        reader.problem("booking.reminders.persona", f"must be a persona's name ({NAME_RULE})")
        persona = None
    caller_id = value.get("from")
    if caller_id is not None:
        try:
            caller_id = e164(caller_id)
        except ValueError as exc:
            reader.problem("booking.reminders.from", f"the number the person sees: {exc}")
            caller_id = None
    if not before:
        return None
    return ReminderSpec(before_s=before, persona=persona, caller_id=caller_id)


def _before(reader: Problems, value: Any) -> tuple[int, ...]:
    where = "booking.reminders.before"
    if not isinstance(value, list) or not value or len(value) > MAX_REMINDERS:
        reader.problem(where, f"must be a list of 1 to {MAX_REMINDERS} durations before the "
                              "appointment, such as [\"24h\", \"90m\", \"2d\"]")
        return ()
    out: list[int] = []
    for item in value:
        seconds = duration_s(item)
        if seconds is None:
            reader.problem(where, f"{item!r} is not a duration: a whole number and m, h or d, "
                                  "such as \"24h\"")
        elif not LOWEST_S <= seconds <= HIGHEST_S:
            reader.problem(where, f"{item!r}: a reminder is 15m to 30d before the appointment")
        elif seconds in out:
            reader.problem(where, f"{item!r} is there twice")
        else:
            out.append(seconds)
    return tuple(sorted(out, reverse=True))
