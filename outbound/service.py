"""Outbound calls that are not dialled at once: scheduled calls, campaigns and the do-not-call
list. No Flask here: outbound/views.py adapts it to HTTP and outbound/cli.py to the shell; the
dialling itself is outbound/dialer.py's, in every worker's periodic runner."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from calls.records import iso
from config import Settings
from outbound.contacts import Contacts
from outbound.rules import Invalid, parse_policy, zone
from personas import Registry
from sip.inputs import dial_options
from sip.numbers import e164
from sip.payload import mask_number
from sip.service import SipService
from store import CallRecord, Store
from store.campaigns import ACTIVE, CANCELLED, CONTACT_STATES, PAUSED, PENDING, SUPPRESSED
from store.outbound import SCHEDULED

logger = logging.getLogger(__name__)

#: How far ahead a call may be scheduled, and how late an ``at`` in the past is still "now"
#: (a clock a little behind ours), in seconds.
MAX_SCHEDULE_AHEAD_S = 366 * 86400
PAST_GRACE_S = 60.0
#: Which state moves are allowed, by the verb an operator uses.
CONTROLS = {"pause": (PAUSED, (ACTIVE,)), "resume": (ACTIVE, (PAUSED,)),
            "cancel": (CANCELLED, (ACTIVE, PAUSED))}


class NotFound(LookupError):
    """No such campaign or call."""


class Conflict(Exception):
    """The campaign or call is not in a state that allows this."""


@dataclass(frozen=True)
class Scheduled:
    call: CallRecord
    due_at: float


class OutboundService:
    """Scheduling, campaigns and suppressions, on top of SipService."""

    def __init__(self, settings: Settings, store: Store, sip: SipService,
                 personas: Registry) -> None:
        self.settings = settings
        self.store = store
        self.sip = sip
        self.personas = personas

    # -- scheduled calls -----------------------------------------------------------------------

    def schedule_call(self, *, to: str, caller_id: str | None, persona: str | None,
                      variables: dict[str, str], at: float, region: str = "NA",
                      prompt: str = "false", base_url: str | None = None,
                      key: str | None = None) -> Scheduled | None:
        """Record a call as ``scheduled`` and queue its dial for ``at`` (epoch seconds). With
        ``key`` (a booking's reminder), a second call with the same key is not made: None."""
        now = self.store.clock()
        if at < now - PAST_GRACE_S:
            raise Invalid("at is in the past")
        if at > now + MAX_SCHEDULE_AHEAD_S:
            raise Invalid("at is more than a year ahead")
        if key is not None and self.store.attempt_by_key(key) is not None:
            return None
        # The numbers and dial options are checked now; the cost guards when it is dialled.
        region, prompt = dial_options(region, prompt)
        call = self.sip.outbound_call(to=to, caller_id=caller_id or
                                      self.settings.outbound_caller_id or None, persona=persona,
                                      variables=variables, state=SCHEDULED, guard=False)
        attempt = self.store.schedule_attempt(
            call_id=call.id, due_at=max(at, now), key=key,
            options={"region": region, "prompt": prompt, "base_url": base_url})
        if attempt is None:  # another worker scheduled the same key in between
            self.store.end_scheduled_call(call.id, "duplicate")
            return None
        logger.info("outbound.scheduled", extra={"call_id": call.id, "due_at": at})
        return Scheduled(call, attempt["due_at"])

    def cancel_call(self, call_id: str, *, reason: str = "cancelled") -> None:
        """Cancel a scheduled call before it is dialled (NotFound, or Conflict once it has
        started: then it is hung up, not cancelled)."""
        if self.store.cancel_scheduled(call_id, reason=reason):
            logger.info("outbound.cancelled", extra={"call_id": call_id})
            return
        call = self.store.get_call(call_id)
        if call is None:
            raise NotFound(f"no call {call_id}")
        raise Conflict(f"call {call_id} is {call.state}, not scheduled: only a scheduled call "
                       "can be cancelled (hang up a live one with POST /api/calls/<id>/hangup)")

    # -- campaigns -----------------------------------------------------------------------------

    def create_campaign(self, body: Mapping[str, Any], contacts: Contacts, *,
                        base_url: str | None = None) -> dict[str, Any]:
        """Check and store a campaign; its contacts are dialled from now on, each inside its
        window. Invalid says what is wrong."""
        persona = body.get("persona")
        outbound = self.outbound_personas()
        if not isinstance(persona, str) or persona not in outbound:
            # Only a persona whose outbound greeting says it is an AI, and for whom it calls
            # (checked when it loads), may call a list of people.
            raise Invalid(f"persona must be one with an [outbound] section: "
                          f"{', '.join(outbound) or 'none is configured'}")
        caller = body.get("from") or self.settings.outbound_caller_id
        try:
            from_number = e164(caller)
        except ValueError as exc:
            raise Invalid("from is required (or set OUTBOUND_CALLER_ID): the number the callee "
                          f"sees; {exc}") from None
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise Invalid("name must be text of at most 200 characters")
        policy = parse_policy(body)
        try:
            region, prompt = dial_options(str(body.get("region") or "NA"),
                                          str(body.get("prompt") or "false"))
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        now = self.store.clock()
        suppressed = self.store.suppressed_numbers(c.number for c in contacts.contacts)
        rows = []
        for contact in contacts.contacts:
            contact_zone = zone(contact.timezone or policy.timezone)
            rows.append({"number": contact.number, "timezone": contact.timezone,
                         "variables": dict(contact.variables),
                         "state": SUPPRESSED if contact.number in suppressed else PENDING,
                         "next_at": policy.window.next_open(now, contact_zone)})
        campaign_id = f"cmp_{secrets.token_hex(6)}"
        stored = {**policy.as_json(), "region": region, "prompt": prompt, "base_url": base_url}
        self.store.create_campaign({"id": campaign_id, "name": name, "persona": persona,
                                    "from_number": from_number, "policy": stored}, rows)
        logger.info("outbound.campaign_created", extra={
            "campaign_id": campaign_id, "contacts": len(rows), "persona": persona})
        status = self.status(campaign_id)
        status["duplicates_skipped"] = contacts.duplicates
        return status

    def control(self, campaign_id: str, verb: str) -> dict[str, Any]:
        """Pause, resume or cancel (NotFound, Conflict); returns the campaign's status."""
        state, only_from = CONTROLS[verb]
        if not self.store.set_campaign_state(campaign_id, state, only_from=only_from):
            found = self.store.get_campaign(campaign_id)
            if found is None:
                raise NotFound(f"no campaign {campaign_id}")
            raise Conflict(f"campaign {campaign_id} is {found['state']}: it cannot {verb}")
        logger.info("outbound.campaign_" + verb, extra={"campaign_id": campaign_id})
        return self.status(campaign_id)

    def status(self, campaign_id: str) -> dict[str, Any]:
        campaign = self.store.get_campaign(campaign_id)
        if campaign is None:
            raise NotFound(f"no campaign {campaign_id}")
        contacts = self.store.campaign_contacts(campaign_id)
        counts = dict.fromkeys(CONTACT_STATES, 0)
        for contact in contacts:
            counts[contact["state"]] = counts.get(contact["state"], 0) + 1
        return {**campaign_summary(campaign, counts),
                "contacts": [contact_json(c) for c in contacts]}

    def summary(self, campaign_id: str) -> dict[str, Any]:
        """The status without its contacts: counted in the database, cheap enough to poll."""
        campaign = self.store.get_campaign(campaign_id)
        if campaign is None:
            raise NotFound(f"no campaign {campaign_id}")
        return campaign_summary(campaign, self.store.campaign_counts(campaign_id))

    def summaries(self) -> list[dict[str, Any]]:
        return [campaign_summary(c, self.store.campaign_counts(c["id"]))
                for c in self.store.list_campaigns()]

    def outbound_personas(self) -> list[str]:
        """The personas a campaign may call with: those with an [outbound] section."""
        return sorted(p.name for p in self.personas if p.outbound is not None)

    # -- the do-not-call list ------------------------------------------------------------------

    def suppress(self, number: Any, *, source: str = "api",
                 note: str | None = None) -> tuple[str, bool]:
        """List ``number``: its E.164 form, and whether it is new to the list."""
        try:
            key = e164(number)
        except ValueError as exc:
            raise Invalid(f"number: {exc}") from None
        added = self.store.add_suppression(key, source=source, note=note)
        logger.info("outbound.suppressed", extra={"number": mask_number(key), "new": added})
        return key, added

    def unsuppress(self, number: str) -> None:
        try:
            key = e164(number)
        except ValueError as exc:
            raise Invalid(f"number: {exc}") from None
        if not self.store.remove_suppression(key):
            raise NotFound(f"{mask_number(key)} is not on the do-not-call list")

    def import_suppressions(self, numbers: Iterable[str]) -> int:
        return self.store.add_suppressions(numbers, source="csv")


def campaign_summary(campaign: Mapping[str, Any], counts: Mapping[str, int]) -> dict[str, Any]:
    policy = campaign["policy"]
    total = sum(counts.values())
    final = sum(n for state, n in counts.items() if state not in (PENDING, "dialling"))
    return {
        "id": campaign["id"], "name": campaign["name"], "state": campaign["state"],
        "persona": campaign["persona"], "from": campaign["from_number"],
        "created_at": iso(campaign["created_at"]),
        "window": policy["window"], "pacing": policy["pacing"], "retry": policy["retry"],
        "timezone": policy["timezone"],
        "counts": {state: int(counts.get(state, 0)) for state in CONTACT_STATES},
        "total": total, "done": final,
    }


def contact_json(contact: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "number": contact["number"], "state": contact["state"],
        "timezone": contact["timezone"], "variables": contact["variables"],
        "next_at": iso(contact["next_at"]),
        "attempts": [{"at": iso(a["claimed_at"] or a["created_at"]),
                      "disposition": a["disposition"], "call_id": a["call_id"],
                      **({"detail": a["detail"]} if a["detail"] else {})}
                     for a in contact["attempt_list"]],
    }

