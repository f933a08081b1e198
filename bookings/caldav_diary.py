"""A persona's diary in any CalDAV calendar (Nextcloud, Fastmail, iCloud, Radicale, ...).

The store keeps every booking; this adapter adds what the calendar knows. ``busy`` reads every
event in a range (ones people added by hand included), and each booking is written as one event
whose UID is made from its reference, so it is found again to move or remove it. Whatever goes
wrong on the way (network, timeout, refused login, a server error) is one ``CalendarUnavailable``
whose message names neither the password nor the caller."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import caldav
from caldav.lib import error as dav_error
from caldav.lib.vcal import create_ical

from bookings.models import CalendarUnavailable

logger = logging.getLogger(__name__)

#: The UID of a booking's event is ``<reference>@phone-agent``.
UID_SUFFIX = "@phone-agent"


class BookingLike(Protocol):
    """What the adapter reads from a booking (bookings.models.Booking has these and more)."""

    @property
    def reference(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def name(self) -> str: ...
    @property
    def phone(self) -> str | None: ...


def event_uid(reference: str) -> str:
    """The stable UID of the event that carries booking ``reference``."""
    return f"{reference}{UID_SUFFIX}"


def _public_url(url: str) -> str:
    """The URL as it may appear in logs and messages: no user information, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class CalDAVCalendar:
    """One CalDAV calendar collection, reached at ``url`` with a username and password.

    ``zone`` is where dates without a time (all-day events) and floating times are placed; by
    default, the zone of the ``start`` that ``busy`` is asked about (the business's own)."""

    def __init__(self, url: str, username: str, password: str, *, timeout_s: float = 10,
                 zone: tzinfo | None = None) -> None:
        if urlsplit(url).password is not None:
            raise ValueError("the CalDAV URL carries a password: give it through password_env")
        self.url = _public_url(url)
        self._zone = zone
        self._client = caldav.DAVClient(url=self.url, username=username, password=password,
                                        timeout=timeout_s)
        self._calendar = self._client.calendar(url=self.url)

    def __repr__(self) -> str:
        return f"CalDAVCalendar({self.url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> CalDAVCalendar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------------

    def busy(self, start: datetime, end: datetime, *, ignore_reference: str | None = None
             ) -> list[tuple[datetime, datetime]]:
        """Every event overlapping ``[start, end)``, as sorted (start, end) pairs in ``start``'s
        zone: timed events, all-day events (the whole local day), each occurrence of a repeating
        one. Cancelled events (STATUS:CANCELLED) are not busy. ``ignore_reference`` leaves out
        that booking's own event (a reschedule must not collide with the time it leaves)."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("busy() needs timezone-aware start and end")
        zone = self._zone or start.tzinfo
        ignored = event_uid(ignore_reference) if ignore_reference else None
        with self._reaching("read"):
            found = self._calendar.search(start=start, end=end, event=True, expand=True)
            components = [c for event in found
                          for c in event.icalendar_instance.walk("VEVENT")]
        intervals = []
        for component in components:
            if ignored and str(component.get("UID", "")) == ignored:
                continue
            interval = _interval(component, zone)
            if interval and interval[0] < end and start < interval[1]:
                intervals.append((interval[0].astimezone(start.tzinfo),
                                  interval[1].astimezone(start.tzinfo)))
        return sorted(intervals)

    # -- writing -------------------------------------------------------------------------------

    def created(self, booking: BookingLike) -> None:
        """Write the booking's event (written again, not duplicated, if it is already there)."""
        with self._reaching("create"):
            self._calendar.save_event(_event_ical(booking))
        logger.info("caldav.event_created",
                    extra={"calendar": self.url, "reference": booking.reference})

    def changed(self, booking: BookingLike) -> None:
        """Rewrite the booking's event (its new time, service or name), wherever it is stored;
        an event someone deleted by hand is written anew."""
        with self._reaching("change"):
            event = self._event(booking.reference)
            if event is None:
                self._calendar.save_event(_event_ical(booking))
            else:
                event.data = _event_ical(booking)
                event.save()
        logger.info("caldav.event_changed",
                    extra={"calendar": self.url, "reference": booking.reference})

    def cancelled(self, booking: BookingLike) -> None:
        """Remove the booking's event; one that is already gone is fine."""
        with self._reaching("cancel"):
            event = self._event(booking.reference)
            if event is not None:
                event.delete()
        logger.info("caldav.event_removed",
                    extra={"calendar": self.url, "reference": booking.reference})

    # -- plumbing ------------------------------------------------------------------------------

    def _event(self, reference: str) -> Any:
        try:
            return self._calendar.event_by_uid(event_uid(reference))
        except dav_error.NotFoundError:
            return None

    @contextmanager
    def _reaching(self, action: str) -> Iterator[None]:
        """Turn the transport's and the server's failures into CalendarUnavailable (requests'
        and niquests' exceptions are OSErrors; caldav's own derive from DAVError)."""
        try:
            yield
        except (dav_error.DAVError, OSError) as exc:
            reason = _reason(exc)
            logger.warning("caldav.unavailable", extra={
                "calendar": self.url, "action": action, "error": type(exc).__name__,
                "reason": reason})
            raise CalendarUnavailable(
                f"the calendar could not {action} ({reason}); try again later") from None


def _reason(exc: BaseException) -> str:
    """A short reason that names no secret (the exception's own text may quote the request)."""
    if isinstance(exc, dav_error.AuthorizationError):
        return "the calendar refused the username or password"
    if isinstance(exc, dav_error.NotFoundError):
        return "the calendar URL was not found"
    if isinstance(exc, dav_error.DAVError):
        return "the calendar server answered with an error"
    if "timeout" in type(exc).__name__.lower() or isinstance(exc, TimeoutError):
        return "the calendar server did not answer in time"
    return "the calendar server could not be reached"


def _event_ical(booking: BookingLike) -> str:
    lines = [f"Booking reference: {booking.reference}", f"Service: {booking.service}",
             f"Name: {booking.name}"]
    if booking.phone:
        lines.append(f"Phone: {booking.phone}")
    # UTC times: every server takes them without a VTIMEZONE of ours.
    return create_ical(
        objtype="VEVENT", uid=event_uid(booking.reference),
        dtstart=booking.start.astimezone(UTC),
        dtend=booking.end.astimezone(UTC),
        summary=f"{booking.service}: {booking.name}", description="\n".join(lines))


def _interval(component: Any, zone: tzinfo) -> tuple[datetime, datetime] | None:
    """A VEVENT's (start, end), aware; None for a cancelled or start-less one."""
    if str(component.get("STATUS", "")).upper() == "CANCELLED" or "DTSTART" not in component:
        return None
    first = component.decoded("DTSTART")
    if "DTEND" in component:
        last = component.decoded("DTEND")
    elif "DURATION" in component:
        last = first + component.decoded("DURATION")
    elif isinstance(first, datetime):
        last = first  # RFC 5545: a timed event with neither ends when it starts
    else:
        last = first + timedelta(days=1)  # an all-day event with neither lasts the day
    return _aware(first, zone), _aware(last, zone)


def _aware(value: date | datetime, zone: tzinfo) -> datetime:
    if not isinstance(value, datetime):
        return datetime.combine(value, time(0), zone)
    return value if value.tzinfo else value.replace(tzinfo=zone)
