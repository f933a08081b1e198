"""The dialer: every few seconds, in the periodic runner of every worker and instance, it
settles the attempts whose calls are over, dials the scheduled calls that are due, and dials
each active campaign's due contacts as its pacing allows.

Exactly once: an attempt is dialled only by the worker whose claim moved it to ``dialling``
(store/outbound.py). The call is recorded and linked to the attempt before the dial is sent, so
a worker that dies before the dial leaves a call that was never dialled, and one that dies
during it leaves a call whose phone leg the gateway still reports. Either way the attempt is
settled, never dialled again: as ``failed`` (``worker_lost``) when no call was made, or by
what its call came to. A slot (``max_concurrent``) is held only while the call is live."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

from calls import lifecycle
from config import Settings
from observability import metrics
from outbound import rules
from outbound.rules import CallFacts, Policy, policy_from_json, zone
from sip.payload import mask_number
from sip.service import GuardRefused, SipService
from store import CallRecord, Store
from store.campaigns import PENDING, SUPPRESSED

logger = logging.getLogger(__name__)

#: How long a scheduled call that falls due while a cost guard holds (MAX_CONCURRENT_CALLS
#: reached, say) waits for room before it is given up as ``refused``.
REFUSED_WAIT_S = 600.0



class Dialer:
    def __init__(self, settings: Settings, store: Store, sip: SipService, *,
                 clock: Callable[[], float] | None = None,
                 plan: Callable[[], int] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.sip = sip
        self.clock = clock or store.clock
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        #: Run first in each round: the booking reminders' planner (outbound/reminders.py),
        #: handed in because it schedules through outbound.service, a sibling this module
        #: does not import. Its cancels land before this round dials.
        self.plan = plan

    def run_due(self) -> int:
        """One round; returns how many dials it started. A step that fails is logged and the
        round goes on: one bad campaign (say, its persona removed) holds up no other work."""
        started = 0
        for step in (self.plan, self.settle, self.dial_scheduled, self.dial_campaigns):
            if step is None:
                continue
            try:
                count = step()
            except Exception:
                logger.exception("outbound.round_failed", extra={"step": step.__name__})
                continue
            if step in (self.dial_scheduled, self.dial_campaigns):
                started += count
        return started

    # -- settling ------------------------------------------------------------------------------

    def settle(self) -> int:
        """Give every attempt whose call is over its disposition, and its contact its next
        state (a retry inside the window, or a final state)."""
        settled = 0
        now = self.clock()
        for attempt in self.store.open_attempts():
            if attempt["call_id"] is None:
                # Making the call takes a moment; a claim with none after a work lease lost
                # its worker before the dial.
                if now - (attempt["claimed_at"] or now) > self.store.work_lease_s:
                    settled += self._settle(attempt, rules.FAILED, {"cause": "worker_lost"}, now)
                continue
            if attempt["call_state"] in lifecycle.LIVE_STATES:
                self._end_if_lost(attempt, now)
                continue
            settled += self._settle_call(attempt, now)
        return settled

    def _end_if_lost(self, attempt: Mapping[str, Any], now: float) -> None:
        if now - (attempt["claimed_at"] or now) <= self.settings.dial_timeout_s:
            return
        call = self.store.get_call(attempt["call_id"])
        if call is None or call.caller_joined_at or call.gateway_callid:
            return
        if any(e["kind"] in ("call_answered", "outbound_answered")
               for e in self.store.timeline(call.id)):
            return
        logger.warning("outbound.dial_lost", extra={"call_id": call.id})
        self.sip.end(call, "dial_lost")

    def _settle_call(self, attempt: Mapping[str, Any], now: float) -> int:
        call = self.store.get_call(attempt["call_id"])
        if call is None:  # deleted by retention meanwhile
            return self._settle(attempt, rules.FAILED, {"cause": "call_deleted"}, now)
        opted = self.store.get_suppression(call.called_number or "")
        facts = CallFacts(end_reason=call.end_reason, caller_joined_at=call.caller_joined_at,
                          ended_at=call.ended_at, timeline=self.store.timeline(call.id),
                          opted_out=bool(opted and opted["call_id"] == call.id))
        disposition, detail = rules.disposition(facts)
        return self._settle(attempt, disposition, detail, now)

    def _settle(self, attempt: Mapping[str, Any], disposition: str,
                detail: Mapping[str, Any], now: float) -> int:
        contact_change = None
        if attempt["contact_id"] is not None:
            contact_change = self._next(attempt, disposition, now)
        if not self.store.settle_attempt(attempt["id"], disposition=disposition, detail=detail,
                                         contact=contact_change):
            return 0  # another worker settled it first
        metrics.outbound_attempt(disposition)
        logger.info("outbound.attempt", extra={
            "call_id": attempt["call_id"], "campaign_id": attempt["campaign_id"],
            "disposition": disposition, **({"next": contact_change["state"]}
                                           if contact_change else {})})
        return 1

    def _next(self, attempt: Mapping[str, Any], disposition: str,
              now: float) -> dict[str, Any] | None:
        contact = self.store.get_contact(attempt["contact_id"])
        campaign = self.store.get_campaign(attempt["campaign_id"])
        if contact is None or campaign is None:
            return None
        policy = policy_from_json(campaign["policy"])
        state, next_at = rules.next_step(disposition, contact["attempts"], policy,
                                         zone(contact["timezone"] or policy.timezone), now)
        return {"state": state, "next_at": next_at}

    # -- scheduled calls -----------------------------------------------------------------------

    def dial_scheduled(self) -> int:
        started = 0
        now = self.clock()
        for attempt in self.store.due_scheduled(now):
            call = self.store.get_call(attempt["call_id"])
            if call is None:
                continue
            if self.store.get_suppression(call.called_number or ""):
                # Listed after it was scheduled: it is never dialled.
                if self.store.cancel_scheduled(call.id, reason="suppressed",
                                               disposition=rules.SUPPRESSED):
                    metrics.outbound_attempt(rules.SUPPRESSED)
                continue
            refused = self.sip.calls.admission()
            if refused:
                # At capacity for a moment: it waits, up to REFUSED_WAIT_S, then is refused.
                if now - attempt["due_at"] > REFUSED_WAIT_S and self.store.cancel_scheduled(
                        call.id, reason=f"refused_{refused}", disposition=rules.REFUSED):
                    self.sip.calls.refused(call.id, refused, direction="outbound")
                    metrics.outbound_attempt(rules.REFUSED)
                continue
            if not self.store.claim_scheduled(attempt["id"], now=now, holder=self.holder):
                continue  # another worker took it
            call = self.store.get_call(attempt["call_id"])
            if call is None:
                continue
            self._dial(call, attempt["options"])
            started += 1
        return started

    # -- campaigns -----------------------------------------------------------------------------

    def dial_campaigns(self) -> int:
        now = self.clock()
        due = self.store.campaigns_with_due_contacts(now)
        if not due or self.sip.calls.admission():
            return 0  # a cost guard holds: contacts wait (nothing is claimed, nothing lost)
        room = self._room()
        started = 0
        for campaign in due:
            if room is not None and room <= 0:
                break
            policy = policy_from_json(campaign["policy"])
            claimed = self.store.claim_campaign_dials(
                campaign["id"], now=now, max_open=policy.pacing.max_concurrent,
                per_minute=policy.pacing.per_minute, holder=self.holder, limit=room)
            for attempt in claimed:
                started += self._dial_contact(campaign, policy, attempt, now)
            if room is not None:
                room -= len(claimed)
        return started

    def _room(self) -> int | None:
        """How many more calls MAX_CONCURRENT_CALLS allows now (None: no cap), so a round
        claims no contact that the guard would only refuse. Another worker's round may still
        take the room first: then the guard refuses, and the contact waits a minute."""
        limits = self.sip.calls.limits
        if not limits.max_concurrent_calls:
            return None
        return limits.max_concurrent_calls - self.store.usage(limits).open_calls

    def _dial_contact(self, campaign: Mapping[str, Any], policy: Policy,
                      attempt: Mapping[str, Any], now: float) -> int:
        number = attempt["number"]
        contact_zone = zone(attempt["timezone"] or policy.timezone)
        if self.store.get_suppression(number):
            self.store.skip_contact(attempt["id"], disposition=rules.SUPPRESSED,
                                    state=SUPPRESSED, next_at=None, counts=False)
            metrics.outbound_attempt(rules.SUPPRESSED)
            return 0
        opens = policy.window.next_open(now, contact_zone)
        if opens > now:  # the window closed between the contact falling due and now
            self.store.unclaim(attempt["id"], next_at=opens)
            return 0
        try:
            call = self.sip.outbound_call(
                to=number, caller_id=campaign["from_number"], persona=campaign["persona"],
                variables=dict(attempt["variables"]))
        except GuardRefused:
            self.store.skip_contact(
                attempt["id"], disposition=rules.REFUSED, state=PENDING, counts=False,
                next_at=policy.window.next_open(now + rules.REFUSED_RETRY_S, contact_zone))
            metrics.outbound_attempt(rules.REFUSED)
            return 0
        except Exception:
            # Nothing was dialled (a persona gone from the configuration, the store down):
            # the contact gets its attempt back and is tried again later.
            logger.exception("outbound.dial_not_made", extra={"campaign_id": campaign["id"]})
            self.store.unclaim(attempt["id"], next_at=policy.window.next_open(
                now + rules.REFUSED_RETRY_S, contact_zone))
            return 0
        # Linked before the dial goes out (see the module's docstring); a claim settled as
        # lost meanwhile (this worker took longer than a work lease) is not dialled.
        if not self.store.link_attempt_call(attempt["id"], call.id):
            self.sip.end(call, "claim_lost")
            return 0
        logger.info("outbound.dial", extra={"call_id": call.id, "campaign_id": campaign["id"],
                                            "to": mask_number(number),
                                            "attempt": attempt["attempt_number"]})
        self._dial(call, campaign["policy"])
        return 1

    def _dial(self, call: CallRecord, options: Mapping[str, Any]) -> None:
        """Dial ``call`` with the gateway options stored when it was scheduled or its campaign
        made (region, prompt, and the address the request came in on, for the events URL)."""
        self.sip.dial(call, region=options.get("region") or "NA",
                      prompt=options.get("prompt") or "false",
                      events_url=self.sip.events_url(options.get("base_url")))


class DialerRunner(threading.Thread):
    """The dialer's round every SWEEP_INTERVAL_S in each worker, in a thread of its own beside
    the reconciler's: a slow post-call analysis or agent listing there never holds up a call
    that is due. (Without background threads, GET /api/reconcile runs the round instead.)"""

    def __init__(self, dialer: Dialer, interval_s: float) -> None:
        super().__init__(name="dialer", daemon=True)
        self.dialer = dialer
        self.interval_s = interval_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            self.dialer.run_due()  # logs its own failures and never raises
