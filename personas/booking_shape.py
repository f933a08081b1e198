"""A persona's ``[booking]`` table: the diary its agent books into (docs/bookings.md).

:func:`read_booking` checks its shape into a :class:`~personas.reader.Problems`, collecting every
problem; the loader then reads ``[booking.caldav] password_env`` into
:attr:`BookingSpec.caldav_password` (:func:`with_password`). bookings/slots.py turns a spec into
free start times.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, time
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from personas.reader import ENV_NAME, Problems
from personas.reminder_shape import ReminderSpec, read_reminders

#: The tools a persona with a ``[booking]`` table gives its agent (tools/booking_tools.py).
BOOKING_TOOL_NAMES = ("find_slots", "book_appointment", "find_booking",
                      "reschedule_appointment", "cancel_appointment")
BOOKING_FIELDS = ("backend", "timezone", "services", "buffer_minutes", "max_days_ahead",
                  "closed", "hours", "caldav", "reminders")
CALDAV_FIELDS = ("url", "username", "password_env")
BACKENDS = ("store", "caldav")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_ -]{0,47}$")
HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
#: (low, high, default) for the whole-number fields; a service lasts 5 minutes to 12 hours.
RANGES = {"buffer_minutes": (0, 240, 0), "max_days_ahead": (1, 366, 60)}
SERVICE_MINUTES = (5, 720)


@dataclass(frozen=True)
class BookingSpec:
    """A persona's diary: when it is open, what it offers, and where bookings are kept.

    ``hours`` maps a weekday (0 is Monday) to its opening and closing time; a weekday that is
    not there is closed. ``caldav_password`` is what ``caldav_password_env`` names (the loader
    reads it; "" until then).
    """

    timezone: str
    services: Mapping[str, int]
    hours: Mapping[int, tuple[time, time]]
    backend: str = "store"
    buffer_minutes: int = 0
    max_days_ahead: int = 60
    closed: frozenset[date] = frozenset()
    caldav_url: str | None = None
    caldav_username: str | None = None
    caldav_password_env: str | None = None
    caldav_password: str = field(default="", repr=False)
    #: ``[booking.reminders]``: the calls placed before each appointment (outbound/reminders.py).
    reminders: ReminderSpec | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def hours_text(spec: BookingSpec) -> str:
    """The opening hours in a line: ``mon 09:00-17:00, sat 10:00-14:00``."""
    return ", ".join(f"{WEEKDAYS[d]} {o:%H:%M}-{'24:00' if c == time.max else f'{c:%H:%M}'}"
                     for d, (o, c) in sorted(spec.hours.items()))


def with_password(spec: BookingSpec | None, read: Any) -> BookingSpec | None:
    """The spec with its CalDAV password read through the loader's ``read(field, var)``."""
    if spec is None or not spec.caldav_password_env:
        return spec
    password = read("booking.caldav.password_env", spec.caldav_password_env)
    return replace(spec, caldav_password=password or "")


def read_booking(reader: Problems, data: Mapping[str, Any]) -> BookingSpec | None:
    """The persona's diary, or None when it has no ``[booking]``; problems go to ``reader``."""
    if "booking" not in data:
        return None
    table = data["booking"]
    if not isinstance(table, dict):
        reader.problem("booking", "must be a table such as [booking] timezone = \"Europe/London\"")
        return None
    for key in table:
        if key not in BOOKING_FIELDS:
            reader.problem(f"booking.{key}", f"unknown field (known: {', '.join(BOOKING_FIELDS)})")
    backend = table.get("backend", "store")
    if backend not in BACKENDS:
        reader.problem("booking.backend", "must be \"store\" or \"caldav\"")
        backend = "store"
    zone = _timezone(reader, table.get("timezone"))
    services = _services(reader, table.get("services"))
    numbers = {key: _number(reader, table, key) for key in RANGES}
    closed = _closed(reader, table.get("closed", []))
    hours = _hours(reader, table.get("hours"))
    caldav = _caldav(reader, table.get("caldav"), backend)
    reminders = read_reminders(reader, table.get("reminders"))
    return BookingSpec(timezone=zone, services=services, hours=hours, backend=backend,
                       closed=closed, reminders=reminders, **numbers, **caldav)


def _timezone(reader: Problems, value: Any) -> str:
    if value is None:
        reader.problem("booking.timezone", "missing (an IANA name such as Europe/London)")
        return "UTC"
    try:
        if not isinstance(value, str) or not value:
            raise ValueError
        ZoneInfo(value)
    except (ValueError, ZoneInfoNotFoundError):
        reader.problem("booking.timezone", f"unknown time zone {value!r} (use an IANA name "
                                           "such as Europe/London)")
        return "UTC"
    return value


def _services(reader: Problems, value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or not value:
        reader.problem("booking.services", "must be a table of services and their minutes, "
                                           "such as { haircut = 30 }")
        return {}
    low, high = SERVICE_MINUTES
    out: dict[str, int] = {}
    for name, minutes in value.items():
        if not SERVICE_NAME.match(name):
            reader.problem(f"booking.services.{name}", "a service name is lower-case letters, "
                                                       "digits, spaces, '-' and '_'")
        elif isinstance(minutes, bool) or not isinstance(minutes, int) \
                or not low <= minutes <= high:
            reader.problem(f"booking.services.{name}", f"must be whole minutes, {low} to {high}")
        else:
            out[name] = minutes
    return out


def _number(reader: Problems, table: Mapping[str, Any], key: str) -> int:
    low, high, default = RANGES[key]
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        reader.problem(f"booking.{key}", f"must be a whole number between {low} and {high}")
        return default
    return value


def _closed(reader: Problems, value: Any) -> frozenset[date]:
    if not isinstance(value, list):
        reader.problem("booking.closed", "must be a list of dates such as [\"2026-12-25\"]")
        return frozenset()
    days: set[date] = set()
    for item in value:
        try:
            # TOML's own dates arrive as dates; quoted ones as text.
            days.add(item if isinstance(item, date) else date.fromisoformat(str(item)))
        except ValueError:
            reader.problem("booking.closed", f"{item!r} is not a date (YYYY-MM-DD)")
    return frozenset(days)


def _hours(reader: Problems, value: Any) -> dict[int, tuple[time, time]]:
    if not isinstance(value, dict) or not value:
        reader.problem("booking.hours", "must be a table of weekdays and their hours, such as "
                                        "mon = \"09:00-17:00\" (a weekday left out is closed)")
        return {}
    out: dict[int, tuple[time, time]] = {}
    for day, text in value.items():
        where = f"booking.hours.{day}"
        if day not in WEEKDAYS:
            reader.problem(where, f"unknown weekday (known: {', '.join(WEEKDAYS)})")
            continue
        match = HOURS.match(text) if isinstance(text, str) else None
        if match is None:
            reader.problem(where, "must be opening and closing time, \"HH:MM-HH:MM\"")
            continue
        opens = time(int(match[1]), int(match[2]))
        closes = time.max if match[3] == "24" else time(int(match[3]), int(match[4]))
        if match[3] == "24" and match[4] != "00" or closes <= opens:
            reader.problem(where, "must close after it opens, on the same day")
            continue
        out[WEEKDAYS.index(day)] = (opens, closes)
    return out


def _caldav(reader: Problems, value: Any, backend: str) -> dict[str, Any]:
    if value is None:
        if backend == "caldav":
            reader.problem("booking.caldav", "missing: backend \"caldav\" needs [booking.caldav] "
                                             "url, username and password_env")
        return {}
    if not isinstance(value, dict):
        reader.problem("booking.caldav", "must be a table")
        return {}
    if backend != "caldav":
        reader.problem("booking.caldav", "is only used with backend = \"caldav\"")
    for key in value:
        if key == "password":
            reader.problem("booking.caldav.password", "a password must not be written in the "
                                                      "file; name the environment variable "
                                                      "that holds it in password_env")
        elif key not in CALDAV_FIELDS:
            reader.problem(f"booking.caldav.{key}",
                           f"unknown field (known: {', '.join(CALDAV_FIELDS)})")
    out: dict[str, Any] = {}
    url = value.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") \
            or not urlsplit(url).netloc:
        reader.problem("booking.caldav.url", "must be the calendar's http(s) URL")
    else:
        out["caldav_url"] = url
    username = value.get("username")
    if not isinstance(username, str) or not username:
        reader.problem("booking.caldav.username", "must be text")
    else:
        out["caldav_username"] = username
    env = value.get("password_env")
    if not isinstance(env, str) or not ENV_NAME.match(env):
        reader.problem("booking.caldav.password_env", "must be the name of an environment "
                                                      "variable, such as CLINIC_CALDAV_PASSWORD")
    else:
        out["caldav_password_env"] = env
    return out
