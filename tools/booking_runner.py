"""Running the booking tools (tools/booking_tools.py describes them) through
bookings/service.py: each answer is a :class:`~tools.spec.Done` with the text the agent reads and
the structured result (``{"slots"}``, ``{"reference", "start", "end"}``, ``{"bookings"}``, or
an error's ``{"error", "alternatives"}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from bookings.models import Booking, BookingError, NotBookable, SlotTaken, UnknownBooking
from bookings.service import ALTERNATIVES, BookingService
from personas.booking_shape import BookingSpec
from personas.model import Persona
from store import CallRecord
from tools.booking_tools import MAX_DAYS, SPOKEN_SLOTS
from tools.spec import Done


class BookingTools:
    def __init__(self, bookings: BookingService) -> None:
        self.bookings = bookings

    def run(self, name: str, call: CallRecord, persona: Persona,
            arguments: Mapping[str, Any]) -> Done:
        spec = persona.booking
        if spec is None:
            return Done("no_diary", "This line has no diary.")
        try:
            return getattr(self, name)(call, persona, spec, arguments)
        except SlotTaken as exc:
            return _refused("slot_taken", str(exc), exc.alternatives)
        except NotBookable as exc:
            return self._not_bookable(persona, spec, arguments, str(exc))
        except UnknownBooking as exc:
            return Done("unknown_booking", f"{exc} Check the reference with the caller, or look "
                                           "it up by phone number.")
        except BookingError as exc:  # CalendarUnavailable, from a backend's calendar
            return Done("booking_failed", f"{exc} Nothing was changed; a person will follow up.")
        except BadArgument as exc:
            return Done("invalid_arguments", str(exc))

    def find_slots(self, call: CallRecord, persona: Persona, spec: BookingSpec,
                   arguments: Mapping[str, Any]) -> Done:
        first = _day(arguments["date"])
        days = int(arguments.get("days") or 1)
        slots = self.bookings.find_slots(persona, arguments["service"], first, days)
        if not slots:
            return Done("ok", f"No free times for a {arguments['service']} on those days.",
                        {"slots": []})
        shown = ", ".join(s.isoformat() for s in slots[:SPOKEN_SLOTS])
        more = f" and {len(slots) - SPOKEN_SLOTS} more" if len(slots) > SPOKEN_SLOTS else ""
        return Done("ok", f"Free starts: {shown}{more}.",
                    {"slots": [s.isoformat() for s in slots]})

    def book_appointment(self, call: CallRecord, persona: Persona, spec: BookingSpec,
                         arguments: Mapping[str, Any]) -> Done:
        booking = self.bookings.book(
            persona, arguments["service"], _start(arguments["start"], spec),
            arguments["name"], phone=arguments.get("phone") or call.their_number,
            call_id=call.id)
        return Done("ok", f"Booked: {_said(booking)}. The reference is {booking.reference}.",
                    _times(booking))

    def find_booking(self, call: CallRecord, persona: Persona, spec: BookingSpec,
                     arguments: Mapping[str, Any]) -> Done:
        reference = arguments.get("reference")
        phone = None if reference else arguments.get("phone") or call.their_number
        found = self.bookings.find(persona, reference=reference, phone=phone)
        structured = {"bookings": [{**_times(b), "service": b.service, "name": b.name,
                                    "state": b.state} for b in found]}
        if not found:
            return Done("ok", "No booking found.", structured)
        return Done("ok", "Found: " + "; ".join(
            f"{_said(b)}, reference {b.reference}" + (" (cancelled)" if b.state != "booked"
                                                       else "") for b in found) + ".",
            structured)

    def reschedule_appointment(self, call: CallRecord, persona: Persona, spec: BookingSpec,
                               arguments: Mapping[str, Any]) -> Done:
        booking = self.bookings.reschedule(persona, arguments["reference"],
                                           _start(arguments["start"], spec))
        return Done("ok", f"Moved: {_said(booking)}. The reference is still "
                          f"{booking.reference}.", _times(booking))

    def cancel_appointment(self, call: CallRecord, persona: Persona, spec: BookingSpec,
                           arguments: Mapping[str, Any]) -> Done:
        booking = self.bookings.cancel(persona, arguments["reference"])
        return Done("ok", f"Cancelled: {_said(booking)}.",
                    {**_times(booking), "cancelled": True})

    def _not_bookable(self, persona: Persona, spec: BookingSpec, arguments: Mapping[str, Any],
                      reason: str) -> Done:
        """The reason, and the next free times from that day when there are some."""
        service = arguments.get("service")
        try:
            start = _start(arguments.get("start", ""), spec)
        except BadArgument:
            start = None
        alternatives: list[datetime] = []
        if start is not None and service in spec.services:
            first = start.astimezone(spec.zone).date()
            alternatives = self.bookings.find_slots(persona, service, first, MAX_DAYS,
                                                    limit=ALTERNATIVES)
        return _refused("not_bookable", reason, alternatives)



class BadArgument(Exception):
    """An argument its schema allows that still means nothing (a date that does not exist)."""


def _refused(outcome: str, reason: str, alternatives: list[datetime]) -> Done:
    times = [t.isoformat() for t in alternatives]
    offer = f" The next free times: {', '.join(times)}." if times else ""
    return Done(outcome, reason + offer, {"error": outcome, "alternatives": times})


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadArgument(f"date: {text!r} is not a day (YYYY-MM-DD)") from None


def _start(text: str, spec: BookingSpec) -> datetime:
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise BadArgument(f"start: {text!r} is not an ISO 8601 time, such as "
                         "2026-06-04T14:30:00+01:00") from None
    return start.replace(tzinfo=spec.zone) if start.tzinfo is None else start


def _times(booking: Booking) -> dict[str, Any]:
    return {"reference": booking.reference, "start": booking.start.isoformat(),
            "end": booking.end.isoformat()}


def _said(booking: Booking) -> str:
    return (f"{booking.service} for {booking.name} on {booking.start:%A} "
            f"{booking.start.date().isoformat()} at {booking.start:%H:%M}")
