"""The store's reads for booking reminders (outbound/reminders.py plans them): which bookings
changed, which reminder calls are queued, which keys exist. A reminder is a scheduled call whose
dial attempt has the key ``reminder:<reference>:<revision>:<seconds before>``; scheduling and
cancelling it are store/outbound.py's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from bookings.models import BOOKED, Booking
from store.base import StoreBase, chunked, values_present
from store.bookings import _booking
from store.campaigns import QUEUED
from store.schema import bookings, calls, dial_attempts

REMINDER_PREFIX = "reminder:"

class ReminderRecords(StoreBase):
    def latest_booking_change(self) -> float | None:
        """The latest ``updated_at`` of any booking (an index read, ix_bookings_updated_at)."""
        with self._read() as conn:
            return conn.execute(sa.select(sa.func.max(bookings.c.updated_at))).scalar()

    def bookings_changed_since(self, since: float) -> list[Booking]:
        """Bookings made, moved or cancelled after ``since``, in any state."""
        with self._read() as conn:
            return [_booking(r) for r in conn.execute(sa.select(bookings).where(
                bookings.c.updated_at > since))]

    def upcoming_bookings(self, now: float) -> list[Booking]:
        """Every booked appointment that has not started."""
        with self._read() as conn:
            return [_booking(r) for r in conn.execute(sa.select(bookings).where(
                bookings.c.state == BOOKED, bookings.c.start_at > now))]

    def bookings_by_reference(self, references: Iterable[str]) -> list[Booking]:
        found: list[Booking] = []
        with self._read() as conn:
            for chunk in chunked(references):
                found += [_booking(r) for r in conn.execute(sa.select(bookings).where(
                    bookings.c.reference.in_(chunk)))]
        return found

    def queued_reminders(self) -> list[dict[str, Any]]:
        """Every reminder call still waiting for its dial: its attempt's key and call, and the
        number it will ring."""
        query = sa.select(dial_attempts.c.key, dial_attempts.c.call_id,
                          calls.c.called_number).select_from(dial_attempts.outerjoin(
                              calls, calls.c.id == dial_attempts.c.call_id)).where(
            dial_attempts.c.state == QUEUED, dial_attempts.c.key.like(f"{REMINDER_PREFIX}%"))
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def existing_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` an attempt already has, in any state (dialled, cancelled too)."""
        with self._read() as conn:
            return values_present(conn, dial_attempts.c.key, keys)
