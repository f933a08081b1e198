"""What a booking is, the errors booking can end in, and what a calendar backend provides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

BOOKED = "booked"
CANCELLED = "cancelled"
STATES = (BOOKED, CANCELLED)


@dataclass(frozen=True)
class Booking:
    """One appointment. ``start`` and ``end`` are timezone-aware, in the business's zone;
    ``revision`` counts its changes (1 when booked), so each change is one operator event."""

    reference: str
    persona: str
    service: str
    start: datetime
    end: datetime
    name: str
    phone: str | None
    call_id: str | None
    state: str
    created_at: float
    revision: int = 1

    def as_json(self) -> dict[str, Any]:
        """The booking as the API, the exports and the operator's events show it."""
        return {"reference": self.reference, "persona": self.persona, "service": self.service,
                "start": self.start.isoformat(), "end": self.end.isoformat(),
                "name": self.name, "phone": self.phone, "call_id": self.call_id,
                "state": self.state, "revision": self.revision}


class BookingError(Exception):
    """A booking request that cannot be done; the message is for the agent to act on."""


class SlotTaken(BookingError):
    """The interval overlaps something busy; ``alternatives`` are the next free starts."""

    def __init__(self, message: str, alternatives: list[datetime] | None = None) -> None:
        super().__init__(message)
        self.alternatives = alternatives or []


class NotBookable(BookingError):
    """The time is outside the opening hours, on a closed day, past, or too far ahead."""


class UnknownBooking(BookingError):
    """No booked appointment has that reference (for this persona)."""


class CalendarUnavailable(BookingError):
    """A backend's calendar could not be read or written (a CalDAV server down or refusing);
    nothing was booked, moved or cancelled."""

    status = 503


class Calendar(Protocol):
    """What a backend adds to the store's own bookings (bookings/caldav_diary.py)."""

    def busy(self, start: datetime, end: datetime, *, ignore_reference: str | None = None
             ) -> list[tuple[datetime, datetime]]: ...  # a booking being moved leaves out its own

    def created(self, booking: Booking) -> None: ...  # write the event (UID from the reference)

    def changed(self, booking: Booking) -> None: ...

    def cancelled(self, booking: Booking) -> None: ...  # remove the event
