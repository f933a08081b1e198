"""The store's part for bookings (bookings/service.py decides them): the rows, the per-persona
diary lock, and the operator's ``booking.*`` events written in the same transaction."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bookings.models import BOOKED, CANCELLED, Booking
from store.base import StoreBase
from store.schema import booking_locks, bookings
from store.statements import dialect_insert

Interval = tuple[datetime, datetime]


def _booking(row: Any) -> Booking:
    zone = ZoneInfo(row.timezone)
    return Booking(reference=row.reference, persona=row.persona, service=row.service,
                   start=datetime.fromtimestamp(row.start_at, zone),
                   end=datetime.fromtimestamp(row.end_at, zone), name=row.name, phone=row.phone,
                   call_id=row.call_id, state=row.state, created_at=row.created_at,
                   revision=row.revision)


def _intervals(conn: Connection, persona: str, start: datetime, end: datetime,
               exclude: str | None) -> list[Interval]:
    query = sa.select(bookings.c.start_at, bookings.c.end_at).where(
        bookings.c.persona == persona, bookings.c.state == BOOKED,
        bookings.c.start_at < end.timestamp(), bookings.c.end_at > start.timestamp())
    if exclude:
        query = query.where(bookings.c.reference != exclude)
    return [(datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC))
            for s, e in conn.execute(query)]


class Diary:
    """One persona's diary inside the transaction that holds its lock (:meth:`BookingRecords.
    diary`): what it reads is what it writes against, until the transaction ends."""

    def __init__(self, records: BookingRecords, conn: Connection, persona: str,
                 now: float) -> None:
        self.records, self.conn, self.persona, self.now = records, conn, persona, now

    def busy(self, start: datetime, end: datetime, *,
             exclude: str | None = None) -> list[Interval]:
        """The booked intervals of this persona that overlap [start, end), UTC."""
        return _intervals(self.conn, self.persona, start, end, exclude)

    def get(self, reference: str) -> Booking | None:
        row = self.conn.execute(sa.select(bookings).where(
            bookings.c.reference == reference, bookings.c.persona == self.persona)).first()
        return None if row is None else _booking(row)

    def taken(self, reference: str) -> bool:
        """Whether any persona's booking already has this reference."""
        return self.conn.execute(sa.select(bookings.c.reference).where(
            bookings.c.reference == reference)).first() is not None

    def insert(self, booking: Booking) -> None:
        self.conn.execute(bookings.insert().values(
            reference=booking.reference, persona=booking.persona, service=booking.service,
            start_at=booking.start.timestamp(), end_at=booking.end.timestamp(),
            timezone=str(booking.start.tzinfo), name=booking.name, phone=booking.phone,
            call_id=booking.call_id, state=booking.state, revision=booking.revision,
            created_at=booking.created_at, updated_at=self.now))
        self.records._emit_booking(self.conn, "booking_created", booking, self.now)

    def update(self, booking: Booking) -> None:
        """Write a moved or cancelled booking (its ``revision`` already counted up)."""
        self.conn.execute(bookings.update().where(
            bookings.c.reference == booking.reference).values(
            start_at=booking.start.timestamp(), end_at=booking.end.timestamp(),
            state=booking.state, revision=booking.revision, updated_at=self.now))
        kind = "booking_cancelled" if booking.state == CANCELLED else "booking_changed"
        self.records._emit_booking(self.conn, kind, booking, self.now)


class BookingRecords(StoreBase):
    @contextmanager
    def diary(self, persona: str) -> Iterator[Diary]:
        """A write transaction holding ``persona``'s diary lock: every other booking, move or
        cancel of that persona, on any worker or instance, waits until it ends."""
        now = self.clock()
        with self._write() as conn:
            locked = conn.execute(booking_locks.update().where(
                booking_locks.c.persona == persona).values(taken_at=now)).rowcount
            if not locked:
                conn.execute(dialect_insert(self.dialect, booking_locks)
                             .on_conflict_do_nothing(), {"persona": persona, "taken_at": now})
                conn.execute(booking_locks.update().where(
                    booking_locks.c.persona == persona).values(taken_at=now))
            yield Diary(self, conn, persona, now)

    def booked_intervals(self, persona: str, start: datetime,
                         end: datetime) -> list[Interval]:
        """The persona's booked intervals overlapping [start, end), read without the lock (for
        offering times; booking checks again under it)."""
        with self._read() as conn:
            return _intervals(conn, persona, start, end, None)

    def get_booking(self, reference: str) -> Booking | None:
        with self._read() as conn:
            row = conn.execute(sa.select(bookings).where(
                bookings.c.reference == reference)).first()
        return None if row is None else _booking(row)

    def list_bookings(self, *, persona: str | None = None, service: str | None = None,
                      state: str | None = None, phone: str | None = None,
                      start_from: float | None = None, start_before: float | None = None,
                      limit: int = 500) -> list[Booking]:
        """Bookings in start order, filtered by whatever is given."""
        query = sa.select(bookings).order_by(bookings.c.start_at, bookings.c.reference)
        for column, value in ((bookings.c.persona, persona), (bookings.c.service, service),
                              (bookings.c.state, state), (bookings.c.phone, phone)):
            if value is not None:
                query = query.where(column == value)
        if start_from is not None:
            query = query.where(bookings.c.start_at >= start_from)
        if start_before is not None:
            query = query.where(bookings.c.start_at < start_before)
        with self._read() as conn:
            return [_booking(row) for row in conn.execute(query.limit(limit))]

    def _emit_booking(self, conn: Connection, kind: str, booking: Booking, now: float) -> None:
        """Queue ``booking.created``/``changed``/``cancelled``: one per booking, kind and
        revision, carrying the booking as it was then (the row changes again later)."""
        self._emit(conn, kind, booking.call_id, now,
                   event_id=f"evt_{booking.reference}_{booking.revision}_{kind.split('_')[1]}",
                   payload=json.dumps(booking.as_json(), ensure_ascii=False,
                                      separators=(",", ":")))

