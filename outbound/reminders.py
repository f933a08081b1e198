"""Reminder calls for bookings (docs/bookings.md, "Reminders"): a persona's
``[booking.reminders] before = ["24h"]`` becomes one scheduled call per booking with a phone
number and offset, kept in step with the booking as it is moved or cancelled.

The planner runs at the start of every dialer round, in every worker, so it must be cheap and
must never make a call twice:

- Cheap: each round reads one number, the latest ``updated_at`` of any booking (an index read).
  Only when it changed, and for ``SLACK_S`` after, are the recently changed bookings planned; a
  full pass over every upcoming booking runs once per ``FULL_PASS_S`` per worker (and at start),
  which catches whatever a round missed (a booking whose transaction committed late, a worker
  that was down).
- Exactly once: each reminder's scheduled call has the unique key
  ``reminder:<reference>:<revision>:<seconds before>``. Two workers planning one booking at once
  make one call (store/outbound.py's insert keeps the key unique); a key that exists in any
  state, dialled or cancelled, is never scheduled again. A move or a cancel counts the
  booking's revision up, so its reminders get new keys and the old ones, still queued, are
  cancelled. A reminder already dialled is left alone.

bookings/service.py knows nothing of this: it only writes bookings, and this reads them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bookings.models import BOOKED, Booking
from config import Settings
from outbound.rules import Invalid
from outbound.service import OutboundService
from personas import Registry
from personas.model import Persona
from personas.reminder_shape import ReminderSpec
from sip.numbers import e164
from sip.payload import mask_number
from store import Store
from store.reminders import REMINDER_PREFIX

logger = logging.getLogger(__name__)

#: How often each worker plans every upcoming booking again, and how long after a change it
#: keeps looking at recent changes (a booking's transaction can commit a little after its
#: ``updated_at``: the diary lock waits, a CalDAV calendar answers within 10 s).
FULL_PASS_S = 600.0
SLACK_S = 60.0
#: Calling hours in the business's zone: a reminder is never placed outside them.
CALL_FROM, CALL_UNTIL = time(9, 0), time(20, 0)


def reminder_key(reference: str, revision: int, before_s: int) -> str:
    return f"{REMINDER_PREFIX}{reference}:{revision}:{before_s}"


def key_reference(key: str) -> str | None:
    """The booking reference a reminder key is for."""
    parts = key.split(":")
    return parts[1] if len(parts) == 4 and parts[0] + ":" == REMINDER_PREFIX else None


def reminder_at(start: datetime, before_s: int, zone: ZoneInfo, now: float) -> float | None:
    """When to place the reminder ``before_s`` ahead of ``start``, or None for none.

    Counted on the wall clock in ``zone`` (24h before 10:00 on the Monday after the clocks
    change is 10:00 on the Sunday). A time outside CALL_FROM..CALL_UNTIL moves to the latest
    one inside before it (the evening before, for a morning time); a time that is not after
    ``now`` is no reminder."""
    wall = start.astimezone(zone).replace(tzinfo=None) - timedelta(seconds=before_s)
    if wall.time() < CALL_FROM:
        wall = datetime.combine(wall.date() - timedelta(days=1), CALL_UNTIL)
    elif wall.time() > CALL_UNTIL:
        wall = datetime.combine(wall.date(), CALL_UNTIL)
    at = wall.replace(tzinfo=zone).timestamp()
    return at if at > now else None


def reminder_variables(booking: Booking, persona: Persona) -> dict[str, str]:
    """The reminder call's template variables: what the agent needs to say which appointment
    it is calling about, and the reference its booking tools take."""
    start = booking.start
    business = persona.variables.get("business_name")
    said = (f"{start:%A} {start.day} {start:%B %Y} at {start:%H:%M}")
    variables = {
        "reminder": (f"yes: you are calling {booking.name} to remind them of their "
                     f"{booking.service} appointment on {said}, booking reference "
                     f"{booking.reference}"),
        "booking_reference": booking.reference,
        "booking_service": booking.service,
        "appointment_date": start.date().isoformat(),
        "appointment_day": f"{start:%A}",
        "appointment_time": f"{start:%H:%M}",
        "appointment_start": start.isoformat(),
        "customer_name": booking.name,
    }
    if business:
        variables["business_name"] = business
    return variables


@dataclass
class Plan:
    """What one pass decided: reminders to schedule (key -> booking, spec, when) and queued
    reminder calls to cancel."""

    schedule: dict[str, tuple[Booking, ReminderSpec, float]]
    cancel: list[str]


class ReminderPlanner:
    def __init__(self, settings: Settings, store: Store, outbound: OutboundService,
                 personas: Registry, *, clock: Callable[[], float] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.outbound = outbound
        self.personas = personas
        self.clock = clock or store.clock
        #: The personas whose diary has reminders: none, and a round costs nothing at all.
        self.specs = {p.name: p.booking.reminders for p in personas
                      if p.booking is not None and p.booking.reminders is not None}
        for name, spec in list(self.specs.items()):
            if not (spec.caller_id or settings.outbound_caller_id):
                # Said once here, not at every booking: nothing can show the person who rings.
                logger.warning("reminders.no_caller_id", extra={"persona": name})
                del self.specs[name]
        self.zones = {name: personas.get(name).booking.zone  # type: ignore[union-attr]
                      for name in self.specs}
        self.seen: float | None = None  # the latest booking change planned for
        self.next_full_at = 0.0

    def run(self) -> int:
        """One round; returns how many reminders it scheduled or cancelled."""
        if not self.specs:
            return 0
        now = self.clock()
        latest = self.store.latest_booking_change()
        if now >= self.next_full_at:
            self.next_full_at = now + FULL_PASS_S
            self.seen = latest
            return self.full_pass(now)
        if latest is None or (latest == self.seen and now - latest > SLACK_S):
            return 0
        since = min(latest, self.seen if self.seen is not None else latest) - SLACK_S
        self.seen = latest
        return self.apply(self.plan(self.store.bookings_changed_since(since), now), now)

    def full_pass(self, now: float) -> int:
        """Every upcoming booking, and every queued reminder (whatever became of its
        booking)."""
        bookings = {b.reference: b for b in self.store.upcoming_bookings(now)}
        queued = self.store.queued_reminders()
        missing = {key_reference(q["key"]) for q in queued} - set(bookings) - {None}
        for booking in self.store.bookings_by_reference(r for r in missing if r):
            bookings[booking.reference] = booking
        return self.apply(self.plan(bookings.values(), now, queued=queued), now)

    # -- deciding ------------------------------------------------------------------------------

    def plan(self, bookings: Iterable[Booking], now: float, *,
             queued: list[Mapping[str, Any]] | None = None) -> Plan:
        """What to schedule and cancel for ``bookings`` (their queued reminders only)."""
        by_reference = {b.reference: b for b in bookings}
        keep: set[str] = set()
        wanted: dict[str, tuple[Booking, ReminderSpec, float]] = {}
        for booking in by_reference.values():
            spec = self.specs.get(booking.persona)
            if spec is None or booking.state != BOOKED or not booking.phone:
                continue
            zone = self.zones[booking.persona]
            for before_s in spec.before_s:
                key = reminder_key(booking.reference, booking.revision, before_s)
                keep.add(key)  # whatever its time: a due one may be about to be dialled
                at = reminder_at(booking.start, before_s, zone, now)
                if at is not None:
                    wanted[key] = (booking, spec, at)
        if queued is None:
            queued = self.store.queued_reminders()
        mine = [q for q in queued if key_reference(q["key"]) in by_reference]
        # One who asked not to be called gets no more reminders either.
        blocked = self.store.suppressed_numbers(q["called_number"] for q in mine
                                                if q["called_number"])
        cancel = [q["call_id"] for q in mine
                  if q["key"] not in keep or q["called_number"] in blocked]
        existing = self.store.existing_keys(wanted)
        return Plan({k: v for k, v in wanted.items() if k not in existing}, cancel)

    # -- doing ---------------------------------------------------------------------------------

    def apply(self, plan: Plan, now: float) -> int:
        done = 0
        for call_id in plan.cancel:
            # False when it started meanwhile: a reminder being dialled is left alone.
            if self.store.cancel_scheduled(call_id, reason="booking_changed"):
                logger.info("reminders.cancelled", extra={"call_id": call_id})
                done += 1
        for key, (booking, spec, at) in sorted(plan.schedule.items(), key=lambda i: i[1][2]):
            done += self.schedule(key, booking, spec, at)
        return done

    def schedule(self, key: str, booking: Booking, spec: ReminderSpec, at: float) -> int:
        try:
            number = e164(booking.phone)
        except ValueError:
            number = ""
        if not number or number.startswith("+0"):
            # A national number (07700 900123) has no country code to dial it by.
            logger.warning("reminders.no_number", extra={"reference": booking.reference})
            return 0
        if self.store.get_suppression(number):
            logger.info("reminders.suppressed", extra={"reference": booking.reference,
                                                       "to": mask_number(number)})
            return 0
        caller_id = spec.caller_id or self.settings.outbound_caller_id
        persona = spec.persona or booking.persona
        variables = reminder_variables(booking, self.personas.get(booking.persona))
        try:
            scheduled = self.outbound.schedule_call(
                to=number, caller_id=caller_id, persona=persona, variables=variables, at=at,
                key=key)
        except (Invalid, ValueError) as exc:
            logger.warning("reminders.not_scheduled", extra={
                "reference": booking.reference, "error": str(exc)})
            return 0
        if scheduled is None:
            return 0  # another worker scheduled this key first
        logger.info("reminders.scheduled", extra={
            "reference": booking.reference, "call_id": scheduled.call.id, "due_at": at})
        return 1
