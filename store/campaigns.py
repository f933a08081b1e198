"""The store's part for outbound campaigns (outbound/ decides them): a campaign, its policy
and state, and its contacts as they move from pending to a final state. Their dial attempts
are store/outbound.py's."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.base import StoreBase
from store.schema import campaign_contacts, campaigns, dial_attempts

#: Contact and attempt states (the issue's contract names the contact states).
PENDING, DIALLING, COMPLETED, EXHAUSTED = "pending", "dialling", "completed", "exhausted"
OPTED_OUT, SUPPRESSED, CANCELLED = "opted_out", "suppressed", "cancelled"
CONTACT_STATES = (PENDING, DIALLING, COMPLETED, EXHAUSTED, OPTED_OUT, SUPPRESSED, CANCELLED)
QUEUED, DONE = "queued", "done"
#: Campaign states.
ACTIVE, PAUSED, FINISHED = "active", "paused", "completed"


def as_json(value: Any) -> str | None:
    return json.dumps(value, separators=(",", ":")) if value else None


def from_json(text: str | None) -> Any:
    return json.loads(text) if text else {}


def attempt_dict(row: Any) -> dict[str, Any]:
    """A dial_attempts row as a dict, its JSON columns read."""
    found = dict(row._mapping)
    found["detail"] = from_json(found["detail"])
    found["options"] = from_json(found["options"])
    return found


class CampaignRecords(StoreBase):
    """Campaigns and their contacts."""

    # -- campaigns -----------------------------------------------------------------------------

    def create_campaign(self, campaign: Mapping[str, Any],
                        contacts: list[Mapping[str, Any]]) -> None:
        """A campaign and its contacts (each with its first ``next_at``), in one transaction."""
        now = self.clock()
        with self._write() as conn:
            conn.execute(campaigns.insert().values(
                id=campaign["id"], name=campaign.get("name"), persona=campaign["persona"],
                from_number=campaign["from_number"], state=ACTIVE,
                policy=json.dumps(campaign["policy"], separators=(",", ":")),
                created_at=now, updated_at=now))
            if contacts:
                conn.execute(campaign_contacts.insert(), [{
                    "campaign_id": campaign["id"], "position": i, "number": c["number"],
                    "timezone": c.get("timezone"), "variables": as_json(c.get("variables")),
                    "state": c.get("state", PENDING), "attempts": 0, "next_at": c["next_at"],
                    "updated_at": now} for i, c in enumerate(contacts)])
            # Every contact may already be final (all on the do-not-call list).
            self._finish_if_done(conn, campaign["id"], now)

    def get_campaign(self, campaign_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(sa.select(campaigns).where(campaigns.c.id == campaign_id)).first()
        return self._campaign(row) if row else None

    @staticmethod
    def _campaign(row: Any) -> dict[str, Any]:
        found = dict(row._mapping)
        found["policy"] = json.loads(found["policy"])
        return found

    def list_campaigns(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            return [self._campaign(r) for r in conn.execute(
                sa.select(campaigns).order_by(campaigns.c.created_at.desc()))]

    def set_campaign_state(self, campaign_id: str, state: str, *,
                           only_from: tuple[str, ...]) -> bool:
        """Move a campaign to ``state`` if it is in one of ``only_from``. Cancelling also
        cancels its contacts that are not being dialled (an open call is left to finish)."""
        now = self.clock()
        with self._write() as conn:
            moved = conn.execute(campaigns.update().where(
                campaigns.c.id == campaign_id, campaigns.c.state.in_(only_from)).values(
                state=state, updated_at=now)).rowcount
            if moved and state == CANCELLED:
                conn.execute(campaign_contacts.update().where(
                    campaign_contacts.c.campaign_id == campaign_id,
                    campaign_contacts.c.state == PENDING).values(
                    state=CANCELLED, next_at=None, updated_at=now))
            return bool(moved)

    def campaign_counts(self, campaign_id: str) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(sa.select(campaign_contacts.c.state, sa.func.count()).where(
                campaign_contacts.c.campaign_id == campaign_id).group_by(
                campaign_contacts.c.state)).all()
        return {state: int(n) for state, n in rows}

    def campaign_contacts(self, campaign_id: str) -> list[dict[str, Any]]:
        """The contacts in order, each with its attempts (oldest first)."""
        with self._read() as conn:
            contacts = [dict(r._mapping) for r in conn.execute(
                sa.select(campaign_contacts).where(
                    campaign_contacts.c.campaign_id == campaign_id).order_by(
                    campaign_contacts.c.position))]
            attempts = conn.execute(sa.select(dial_attempts).where(
                dial_attempts.c.campaign_id == campaign_id).order_by(
                dial_attempts.c.created_at)).all()
        by_contact: dict[int, list[dict[str, Any]]] = {}
        for row in attempts:
            by_contact.setdefault(row.contact_id, []).append(attempt_dict(row))
        for contact in contacts:
            contact["variables"] = from_json(contact["variables"])
            contact["attempt_list"] = by_contact.get(contact["id"], [])
        return contacts

    def campaigns_with_due_contacts(self, now: float) -> list[dict[str, Any]]:
        """Active campaigns that have a pending contact due now."""
        due = sa.exists().where(campaign_contacts.c.campaign_id == campaigns.c.id,
                                campaign_contacts.c.state == PENDING,
                                campaign_contacts.c.next_at <= now)
        with self._read() as conn:
            return [self._campaign(r) for r in conn.execute(
                sa.select(campaigns).where(campaigns.c.state == ACTIVE, due))]


    def get_contact(self, contact_id: int) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(sa.select(campaign_contacts).where(
                campaign_contacts.c.id == contact_id)).first()
        return dict(row._mapping) if row else None


    def _finish_if_done(self, conn: Connection, campaign_id: str | None, now: float) -> None:
        if campaign_id is None:
            return
        left = conn.execute(sa.select(campaign_contacts.c.id).where(
            campaign_contacts.c.campaign_id == campaign_id,
            campaign_contacts.c.state.in_((PENDING, DIALLING))).limit(1)).first()
        if left is None:
            conn.execute(campaigns.update().where(
                campaigns.c.id == campaign_id, campaigns.c.state.in_((ACTIVE, PAUSED))).values(
                state=FINISHED, updated_at=now))
