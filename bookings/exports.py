"""The operator's views of the diary, with no Flask in them: which bookings a query means, and
the CSV and iCalendar (RFC 5545) exports."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from bookings.models import Booking

CSV_FIELDS = ("reference", "persona", "service", "start", "end", "name", "phone", "state",
              "revision", "call_id")
#: Formula characters a spreadsheet would run; E.164 numbers (+44...) are left alone.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


#: The days a query may name: far enough either way, and clear of datetime's limits.
FIRST_DAY, LAST_DAY = date(1970, 1, 2), date(9000, 12, 31)


def parse_day(text: str) -> date:
    """A YYYY-MM-DD day within FIRST_DAY..LAST_DAY, else ValueError."""
    day = date.fromisoformat(text)
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"{text} is out of range")
    return day


def day_span(day: date, days: int, zone: ZoneInfo) -> tuple[float, float]:
    """Epoch seconds from ``day``'s local midnight to the midnight ``days`` days later."""
    start = datetime.combine(day, datetime.min.time(), zone)
    end = datetime.combine(day + timedelta(days=days), datetime.min.time(), zone)
    return start.timestamp(), end.timestamp()


def csv_lines(bookings: Iterable[Booking]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for booking in bookings:
        writer.writerow({k: _cell(v) for k, v in booking.as_json().items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, str) and value[:1] in FORMULA_START \
            and not (value[:1] == "+" and value[1:].isdigit()):
        return "'" + value
    return value


def ics(bookings: Iterable[Booking], *, now: float) -> str:
    """The bookings as one calendar: an event each, UID from the reference, cancelled ones as
    STATUS:CANCELLED (so a calendar that imported the booking drops it)."""
    stamp = _utc(datetime.fromtimestamp(now, UTC))
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//phone-agent//bookings//EN",
             "CALSCALE:GREGORIAN"]
    for b in bookings:
        phone = b.phone or "-"
        lines += ["BEGIN:VEVENT", f"UID:{b.reference}@phone-agent", f"DTSTAMP:{stamp}",
                  f"DTSTART:{_utc(b.start)}", f"DTEND:{_utc(b.end)}",
                  f"SEQUENCE:{b.revision - 1}", f"SUMMARY:{_text(f'{b.service}: {b.name}')}",
                  f"DESCRIPTION:{_text(f'Reference {b.reference}; phone {phone}')}",
                  f"STATUS:{'CANCELLED' if b.state == 'cancelled' else 'CONFIRMED'}",
                  "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return "".join(_fold(line) + "\r\n" for line in lines)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _text(value: str) -> str:
    """A TEXT value, escaped (RFC 5545 3.3.11)."""
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r", "").replace("\n", "\\n"))


def _fold(line: str) -> str:
    """Lines longer than 75 octets folded (RFC 5545 3.1), never inside a UTF-8 character."""
    out, current = [], ""
    for char in line:
        limit = 75 if not out else 74
        if len((current + char).encode()) > limit:
            out.append(current)
            current = ""
        current += char
    out.append(current)
    return "\r\n ".join(out)
