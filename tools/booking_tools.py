"""The booking tools of a persona with a ``[booking]`` table: ``find_slots``,
``book_appointment``, ``find_booking``, ``reschedule_appointment`` and ``cancel_appointment``.

:func:`booking_specs` describes them for ``tools/list`` (their schemas name the persona's own
services); tools/booking_runner.py runs them through bookings/service.py. The three that change
the diary are ``once``: the ledger runs each request exactly once. Times go both ways as ISO 8601
with the business's offset; a time the agent sends without an offset is taken as the business's
local time. The caller's number is the booking's phone when the agent gives none.
"""

from __future__ import annotations

from personas.booking_shape import hours_text
from personas.model import Persona
from tools.spec import ToolSpec

#: The same as the built-ins': a CalDAV calendar is a round trip or two, the store far quicker.
BOOKING_TIMEOUT_S = 10.0
ONCE = frozenset({"book_appointment", "reschedule_appointment", "cancel_appointment"})
MAX_DAYS = 14
#: How many free times the agent's text names (the structured result has them all).
SPOKEN_SLOTS = 6
DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$",
        "description": "A day, YYYY-MM-DD, in the business's time zone."}
START = {"type": "string", "minLength": 16, "maxLength": 40,
         "description": "The start, ISO 8601 with the offset, e.g. 2026-06-04T14:30:00+01:00, "
                        "exactly as find_slots gave it."}
REFERENCE = {"type": "string", "minLength": 3, "maxLength": 16,
             "description": "The booking reference, e.g. BK-7H3Q9."}
PHONE = {"type": "string", "minLength": 3, "maxLength": 32,
         "description": "The caller's phone number; leave it out to use the number of this "
                        "call (theirs, whether they rang or were rung)."}


def booking_specs(persona: Persona) -> list[ToolSpec]:
    """The booking tools of ``persona``: none unless it has a ``[booking]`` table."""
    spec = persona.booking
    if spec is None:
        return []
    where = (f"Times are in {spec.timezone}; open {hours_text(spec)}"
             + (f"; closed on {', '.join(sorted(d.isoformat() for d in spec.closed))}"
                if spec.closed else "")
             + f"; bookings up to {spec.max_days_ahead} days ahead.")
    service = {"type": "string", "enum": sorted(spec.services),
               "description": "The service: " + ", ".join(
                   f"{name} ({minutes} minutes)" for name, minutes in spec.services.items())}
    tools = {
        "find_slots": (
            "Find free start times for a service on a day, or on several days from it. "
            + where,
            {"service": service, "date": DATE,
             "days": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS,
                      "description": "How many days from date to look at (default 1)."}},
            ["service", "date"]),
        "book_appointment": (
            "Book an appointment at a free start time (from find_slots) once the caller has "
            "confirmed the name, service, day and time. Gives the booking reference to read "
            "back. If the time was taken meanwhile, the error lists the next free times.",
            {"service": service, "start": START,
             "name": {"type": "string", "minLength": 1, "maxLength": 200,
                      "description": "The caller's full name."},
             "phone": PHONE},
            ["service", "start", "name"]),
        "find_booking": (
            "Find a caller's upcoming appointments by booking reference or by phone number "
            "(by default the number of this call: theirs, whether they rang or were rung).",
            {"reference": REFERENCE, "phone": PHONE}, []),
        "reschedule_appointment": (
            "Move a booked appointment to a new free start time, once the caller has confirmed "
            "it. If the time is taken, the error lists the next free times.",
            {"reference": REFERENCE, "start": START}, ["reference", "start"]),
        "cancel_appointment": (
            "Cancel a booked appointment, once the caller has confirmed which one.",
            {"reference": REFERENCE}, ["reference"]),
    }
    return [ToolSpec(name, description,
                     {"type": "object", "properties": properties, "required": required,
                      "additionalProperties": False},
                     once=name in ONCE, timeout_s=BOOKING_TIMEOUT_S, family="booking")
            for name, (description, properties, required) in tools.items()]
