"""Finding, booking, moving and cancelling appointments in a persona's diary.

Nothing is ever double-booked: a booking or a move checks the diary and writes in one
transaction that holds the persona's diary lock (store/bookings.py), so of two callers taking
one slot at once, on any worker or instance, exactly one gets it; the other gets
:class:`SlotTaken` with the next free times. With the ``caldav`` backend the calendar's busy
times are read, and its event written, inside that same lock: a calendar that refuses the write
leaves no booking behind.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from bookings.models import (
    BOOKED,
    CANCELLED,
    Booking,
    Calendar,
    NotBookable,
    SlotTaken,
    UnknownBooking,
)
from bookings.references import new_reference, normalise
from bookings.slots import MAX_SLOTS, free_starts, overlaps, why_not
from personas.booking_shape import BookingSpec
from personas.model import Persona
from store import Diary, Store

logger = logging.getLogger(__name__)

#: How many next free times a refused booking offers.
ALTERNATIVES = 3


def calendar_for(spec: BookingSpec) -> Calendar | None:
    """The calendar a backend keeps in step with the store: none for ``store``."""
    if spec.backend != "caldav":
        return None
    # Imported here so that the caldav library loads only for a persona that uses it.
    from bookings.caldav_diary import CalDAVCalendar

    return CalDAVCalendar(spec.caldav_url, spec.caldav_username, spec.caldav_password)


def normalise_phone(text: str | None) -> str | None:
    """A phone number as digits with an optional leading +, so one number matches itself however
    it was spoken or passed on; None for nothing usable."""
    if not text:
        return None
    digits = re.sub(r"\D", "", text)
    if not digits:
        return None
    return ("+" if text.strip().startswith("+") else "") + digits[:32]


class BookingService:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 choice: Callable[[str], str] = secrets.choice,
                 calendars: Callable[[BookingSpec], Calendar | None] = calendar_for) -> None:
        self.store = store
        self.clock = clock
        self.choice = choice
        self.calendars = calendars

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # -- reading -------------------------------------------------------------------------------

    def find_slots(self, persona: Persona, service: str, first_day: date, days: int = 1,
                   *, limit: int = MAX_SLOTS) -> list[datetime]:
        """Free starts for ``service`` on ``days`` days from ``first_day``."""
        spec = _spec(persona)
        start, end = _span(spec, first_day, days)
        busy = self.store.booked_intervals(persona.name, start, end)
        calendar = self.calendars(spec)
        if calendar is not None:
            busy += calendar.busy(start, end)
        return free_starts(spec, service, first_day, days, busy, self.now(), limit=limit)

    def find(self, persona: Persona, *, reference: str | None = None,
             phone: str | None = None) -> list[Booking]:
        """The booking with this reference, or the booked, upcoming ones made from this phone."""
        if reference:
            booking = self.store.get_booking(normalise(reference))
            return [booking] if booking and booking.persona == persona.name else []
        number = normalise_phone(phone)
        if number is None:
            return []
        return self.store.list_bookings(persona=persona.name, phone=number, state=BOOKED,
                                        start_from=self.clock(), limit=10)

    # -- changing ------------------------------------------------------------------------------

    def book(self, persona: Persona, service: str, start: datetime, name: str, *,
             phone: str | None = None, call_id: str | None = None) -> Booking:
        spec = _spec(persona)
        start, end = self._checked(spec, service, start)
        calendar = self.calendars(spec)
        with self.store.diary(persona.name) as diary:
            self._refuse_if_busy(diary, calendar, spec, service, start, end, exclude=None)
            reference = new_reference(self.choice)
            while diary.taken(reference):
                reference = new_reference(self.choice)
            booking = Booking(reference=reference, persona=persona.name, service=service,
                              start=start, end=end, name=name.strip()[:200],
                              phone=normalise_phone(phone), call_id=call_id, state=BOOKED,
                              created_at=diary.now)
            diary.insert(booking)
            if calendar is not None:
                calendar.created(booking)
        logger.info("bookings.booked", extra={"persona": persona.name, "reference": reference,
                                              "service": service, "call_id": call_id})
        return booking

    def reschedule(self, persona: Persona, reference: str, start: datetime) -> Booking:
        spec = _spec(persona)
        calendar = self.calendars(spec)
        with self.store.diary(persona.name) as diary:
            booking = _booked(diary, reference)
            start, end = self._checked(spec, booking.service, start)
            self._refuse_if_busy(diary, calendar, spec, booking.service, start, end,
                                 exclude=booking.reference)
            moved = replace(booking, start=start, end=end, revision=booking.revision + 1)
            diary.update(moved)
            if calendar is not None:
                calendar.changed(moved)
        logger.info("bookings.moved", extra={"persona": persona.name,
                                             "reference": moved.reference})
        return moved

    def cancel(self, persona: Persona, reference: str) -> Booking:
        spec = _spec(persona)
        calendar = self.calendars(spec)
        with self.store.diary(persona.name) as diary:
            booking = _booked(diary, reference)
            cancelled = replace(booking, state=CANCELLED, revision=booking.revision + 1)
            diary.update(cancelled)
            if calendar is not None:
                calendar.cancelled(cancelled)
        logger.info("bookings.cancelled", extra={"persona": persona.name,
                                                 "reference": cancelled.reference})
        return cancelled

    # -- the rules -----------------------------------------------------------------------------

    def _checked(self, spec: BookingSpec, service: str,
                 start: datetime) -> tuple[datetime, datetime]:
        """The start in the business's zone and the end, or NotBookable."""
        start = start.astimezone(spec.zone)
        reason = why_not(spec, service, start, self.now())
        if reason is not None:
            raise NotBookable(reason)
        return start, start + timedelta(minutes=spec.services[service])

    def _refuse_if_busy(self, diary: Diary, calendar: Calendar | None, spec: BookingSpec,
                        service: str, start: datetime, end: datetime, *,
                        exclude: str | None) -> None:
        """SlotTaken, with the next free times, if [start, end) is busy (under the lock)."""
        buffer = timedelta(minutes=spec.buffer_minutes)
        busy = diary.busy(start - buffer, end + buffer, exclude=exclude)
        if calendar is not None:
            busy += calendar.busy(start - buffer, end + buffer, ignore_reference=exclude)
        if not overlaps(start, end, busy, buffer):
            return
        first_day = start.astimezone(spec.zone).date()
        days = spec.max_days_ahead + 1
        span_start, span_end = _span(spec, first_day, days)
        busy = diary.busy(span_start, span_end, exclude=exclude)
        if calendar is not None:
            busy += calendar.busy(span_start, span_end, ignore_reference=exclude)
        alternatives = free_starts(spec, service, first_day, days, busy, self.now(),
                                   not_before=start, limit=ALTERNATIVES)
        raise SlotTaken("That time has just been taken.", alternatives)


def _spec(persona: Persona) -> BookingSpec:
    if persona.booking is None:
        raise NotBookable(f"The persona {persona.name} has no diary.")
    return persona.booking


def _span(spec: BookingSpec, first_day: date, days: int) -> tuple[datetime, datetime]:
    """From the first day's midnight to the midnight after the last, in UTC."""
    zone = spec.zone
    start = datetime.combine(first_day, datetime.min.time(), zone)
    end = datetime.combine(first_day + timedelta(days=days), datetime.min.time(), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def _booked(diary: Diary, reference: str) -> Booking:
    booking = diary.get(normalise(reference))
    if booking is None or booking.state != BOOKED:
        raise UnknownBooking(f"There is no booked appointment with the reference {reference}.")
    return booking

