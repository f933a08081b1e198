"""The store's part for dial attempts (outbound/ decides them): a campaign contact's, or a
scheduled call's; their claims and their settling. The campaigns and contacts themselves are
store/campaigns.py's, which this extends.

Exactly-once: an attempt is dialled only by whoever moved it to ``dialling``, which is one
conditional update (a scheduled call) or happens under the campaign's row lock (PostgreSQL's
``FOR UPDATE``; SQLite's write lock is the whole database), so two workers or machines never
claim one attempt; a worker that dies after its claim leaves the attempt to be settled as
failed, never dialled again (outbound/dialer.py)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from calls import lifecycle
from store.campaigns import (
    ACTIVE,
    CANCELLED,
    DIALLING,
    DONE,
    PENDING,
    QUEUED,
    CampaignRecords,
    as_json,
    attempt_dict,
    from_json,
)
from store.schema import calls, campaign_contacts, campaigns, dial_attempts
from store.statements import dialect_insert

SCHEDULED = lifecycle.SCHEDULED


def new_attempt_id() -> str:
    return f"da_{secrets.token_hex(8)}"


class OutboundRecords(CampaignRecords):
    """Dial attempts, on top of the campaigns and contacts they are for."""

    # -- claiming campaign dials ---------------------------------------------------------------

    def claim_campaign_dials(self, campaign_id: str, *, now: float, max_open: int,
                             per_minute: int, holder: str,
                             limit: int | None = None) -> list[dict[str, Any]]:
        """Claim the contacts of an active campaign that are due, as many as its pacing allows
        now: at most ``max_open`` attempts open at once (an attempt holds its slot until its
        call is over) and ``per_minute`` started in the last 60 s. Each claimed contact is
        ``dialling`` with a new attempt; returns those attempts (with the contact's number,
        time zone and variables). ``limit``: no more than this many (the service's own room
        under MAX_CONCURRENT_CALLS)."""
        with self._write() as conn:
            campaign = conn.execute(sa.select(campaigns.c.state).where(
                campaigns.c.id == campaign_id).with_for_update()).first()
            if campaign is None or campaign.state != ACTIVE:
                return []
            room = min(max_open - self._open_attempts(conn, campaign_id),
                       per_minute - self._started_since(conn, campaign_id, now - 60),
                       max_open if limit is None else limit)
            if room <= 0:
                return []
            due = conn.execute(sa.select(campaign_contacts).where(
                campaign_contacts.c.campaign_id == campaign_id,
                campaign_contacts.c.state == PENDING,
                campaign_contacts.c.next_at <= now).order_by(
                campaign_contacts.c.next_at, campaign_contacts.c.position).limit(room)).all()
            claimed = []
            for contact in due:
                attempt = {"id": new_attempt_id(), "campaign_id": campaign_id,
                           "contact_id": contact.id, "state": DIALLING, "due_at": now,
                           "claimed_at": now, "holder": holder, "created_at": now}
                conn.execute(dial_attempts.insert().values(**attempt))
                conn.execute(campaign_contacts.update().where(
                    campaign_contacts.c.id == contact.id).values(
                    state=DIALLING, attempts=contact.attempts + 1, next_at=None,
                    updated_at=now))
                claimed.append({**attempt, "number": contact.number,
                                "timezone": contact.timezone,
                                "variables": from_json(contact.variables),
                                "attempt_number": contact.attempts + 1})
            return claimed

    def _open_attempts(self, conn: Connection, campaign_id: str) -> int:
        """Attempts of the campaign whose call is not over: claimed and not yet given a call,
        or with a live call. A call that ends frees its slot at once (while its agent is
        still being stopped, and before the attempt is settled)."""
        open_call = sa.exists().where(calls.c.id == dial_attempts.c.call_id,
                                      calls.c.state.in_(lifecycle.LIVE_STATES))
        return int(conn.execute(sa.select(sa.func.count()).select_from(dial_attempts).where(
            dial_attempts.c.campaign_id == campaign_id, dial_attempts.c.state == DIALLING,
            sa.or_(dial_attempts.c.call_id.is_(None), open_call))).scalar_one())

    def _started_since(self, conn: Connection, campaign_id: str, since: float) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(dial_attempts).where(
            dial_attempts.c.campaign_id == campaign_id, dial_attempts.c.claimed_at >= since,
            dial_attempts.c.disposition.is_distinct_from("suppressed"))).scalar_one())

    def open_campaign_attempts(self, campaign_id: str) -> int:
        with self._read() as conn:
            return self._open_attempts(conn, campaign_id)

    # -- scheduled calls -----------------------------------------------------------------------

    def schedule_attempt(self, *, call_id: str, due_at: float, options: Mapping[str, Any],
                         key: str | None = None) -> dict[str, Any] | None:
        """Queue a scheduled call's dial. With ``key``, at most one attempt ever has it: a
        second one returns None."""
        attempt = {"id": new_attempt_id(), "call_id": call_id, "key": key, "state": QUEUED,
                   "due_at": due_at, "options": as_json(dict(options)),
                   "created_at": self.clock()}
        with self._write() as conn:
            # ON CONFLICT, not a look first: two PostgreSQL transactions could both look, see
            # nothing, and the second insert would fail on the unique key instead of yielding.
            inserted = conn.execute(dialect_insert(conn.dialect.name, dial_attempts).values(
                **attempt).on_conflict_do_nothing().returning(dial_attempts.c.id)).first()
        if inserted is None:
            return None
        return {**attempt, "options": dict(options)}

    def due_scheduled(self, now: float, limit: int = 20) -> list[dict[str, Any]]:
        with self._read() as conn:
            return [attempt_dict(r) for r in conn.execute(sa.select(dial_attempts).where(
                dial_attempts.c.state == QUEUED, dial_attempts.c.due_at <= now).order_by(
                dial_attempts.c.due_at).limit(limit))]

    def claim_scheduled(self, attempt_id: str, *, now: float, holder: str) -> bool:
        """Take a due scheduled call: its attempt queued -> dialling and its call scheduled ->
        starting (with a work lease), in one transaction. Exactly one claimer wins."""
        with self._write() as conn:
            row = conn.execute(sa.select(dial_attempts.c.call_id).where(
                dial_attempts.c.id == attempt_id, dial_attempts.c.state == QUEUED,
                dial_attempts.c.due_at <= now).with_for_update()).first()
            if row is None:
                return False
            taken = conn.execute(dial_attempts.update().where(
                dial_attempts.c.id == attempt_id, dial_attempts.c.state == QUEUED).values(
                state=DIALLING, claimed_at=now, holder=holder)).rowcount
            if not taken:
                return False
            conn.execute(calls.update().where(
                calls.c.id == row.call_id, calls.c.state == SCHEDULED).values(
                state=lifecycle.STARTING, retry_at=now + self.work_lease_s, updated_at=now))
            self._event(conn, row.call_id, now, "service", "dial_due", None)
            return True

    def cancel_scheduled(self, call_id: str, *, reason: str = "cancelled",
                         disposition: str | None = None) -> bool:
        """Cancel a scheduled call that has not started: its attempt and its call, at once.
        With ``disposition`` (a cost guard refused it) the attempt is done, not cancelled."""
        now = self.clock()
        with self._write() as conn:
            taken = conn.execute(dial_attempts.update().where(
                dial_attempts.c.call_id == call_id, dial_attempts.c.state == QUEUED).values(
                state=DONE if disposition else CANCELLED, disposition=disposition,
                settled_at=now)).rowcount
            if not taken:
                return False
            self._end_scheduled(conn, call_id, reason, now)
            return True

    def end_scheduled_call(self, call_id: str, reason: str) -> None:
        """End a scheduled call's row that has no attempt (it lost a race for its key)."""
        with self._write() as conn:
            self._end_scheduled(conn, call_id, reason, self.clock())

    def _end_scheduled(self, conn: Connection, call_id: str, reason: str, now: float) -> None:
        conn.execute(calls.update().where(
            calls.c.id == call_id, calls.c.state == SCHEDULED).values(
            state=lifecycle.ENDED, end_reason=reason, ended_at=now, updated_at=now))
        self._event(conn, call_id, now, "service", "call_cancelled", {"reason": reason})

    def attempt_by_key(self, key: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(sa.select(dial_attempts).where(
                dial_attempts.c.key == key)).first()
        return attempt_dict(row) if row else None

    def attempt_for_call(self, call_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(sa.select(dial_attempts).where(
                dial_attempts.c.call_id == call_id)).first()
        return attempt_dict(row) if row else None

    # -- an attempt's dial and its settling ----------------------------------------------------

    def link_attempt_call(self, attempt_id: str, call_id: str) -> bool:
        """The call made for a claimed attempt (committed before the dial is sent, so a worker
        that dies in between leaves a call that was never dialled). False when the attempt
        is no longer this worker's to dial (settled as lost meanwhile): then do not dial."""
        with self._write() as conn:
            return bool(conn.execute(dial_attempts.update().where(
                dial_attempts.c.id == attempt_id, dial_attempts.c.state == DIALLING,
                dial_attempts.c.call_id.is_(None)).values(call_id=call_id)).rowcount)

    def open_attempts(self) -> list[dict[str, Any]]:
        """Every attempt being dialled, with its call's state (None: no call yet)."""
        query = sa.select(dial_attempts, calls.c.state.label("call_state")).select_from(
            dial_attempts.outerjoin(calls, calls.c.id == dial_attempts.c.call_id)).where(
            dial_attempts.c.state == DIALLING)
        with self._read() as conn:
            return [attempt_dict(r) for r in conn.execute(query)]

    def unclaim(self, attempt_id: str, *, next_at: float) -> None:
        """Undo a claim that was not dialled (the contact's window closed meanwhile, or the
        dial could not be made): the attempt goes, the contact waits for ``next_at`` with its
        attempt given back."""
        now = self.clock()
        with self._write() as conn:
            campaign_state = self._lock_campaign_of(conn, attempt_id)
            row = conn.execute(sa.select(dial_attempts.c.contact_id,
                                         dial_attempts.c.campaign_id).where(
                dial_attempts.c.id == attempt_id, dial_attempts.c.state == DIALLING,
                dial_attempts.c.call_id.is_(None))).first()
            if row is None:
                return
            conn.execute(dial_attempts.delete().where(dial_attempts.c.id == attempt_id))
            self._move_contact(conn, row.contact_id, PENDING, next_at, campaign_state, now,
                               give_back=True)
            self._finish_if_done(conn, row.campaign_id, now)

    def settle_attempt(self, attempt_id: str, *, disposition: str, detail: Mapping[str, Any],
                       contact: Mapping[str, Any] | None = None) -> bool:
        """Close a dialling attempt with its disposition and, for a campaign's, move its
        contact (``contact``: state, next_at, and counts: False gives the attempt back); a
        campaign with no contact left pending or dialling is completed. False when another
        worker settled it first."""
        now = self.clock()
        with self._write() as conn:
            campaign_state = self._lock_campaign_of(conn, attempt_id)
            row = conn.execute(sa.select(dial_attempts.c.contact_id,
                                         dial_attempts.c.campaign_id).where(
                dial_attempts.c.id == attempt_id, dial_attempts.c.state == DIALLING)
                .with_for_update()).first()
            if row is None:
                return False
            conn.execute(dial_attempts.update().where(dial_attempts.c.id == attempt_id).values(
                state=DONE, disposition=disposition, detail=as_json(dict(detail)),
                settled_at=now))
            if row.contact_id is not None and contact is not None:
                self._move_contact(conn, row.contact_id, contact["state"],
                                   contact.get("next_at"), campaign_state, now,
                                   give_back=not contact.get("counts", True))
                self._finish_if_done(conn, row.campaign_id, now)
            return True

    def skip_contact(self, attempt_id: str, *, disposition: str, state: str,
                     next_at: float | None, counts: bool) -> None:
        """An attempt claimed but not dialled (the number is suppressed, or a cost guard
        refused it): settled at once; ``counts`` False gives the contact its attempt back."""
        self.settle_attempt(attempt_id, disposition=disposition, detail={},
                            contact={"state": state, "next_at": next_at, "counts": counts})

    def _lock_campaign_of(self, conn: Connection, attempt_id: str) -> str | None:
        """Lock the attempt's campaign row, the first lock a claim takes too, so that claims,
        settles and a cancel of one campaign take turns (PostgreSQL; SQLite's write lock is
        already the whole database). Returns the campaign's state (None: a scheduled call)."""
        campaign_id = conn.execute(sa.select(dial_attempts.c.campaign_id).where(
            dial_attempts.c.id == attempt_id)).scalar()
        if campaign_id is None:
            return None
        return conn.execute(sa.select(campaigns.c.state).where(
            campaigns.c.id == campaign_id).with_for_update()).scalar()

    def _move_contact(self, conn: Connection, contact_id: int, state: str,
                      next_at: float | None, campaign_state: str | None, now: float, *,
                      give_back: bool = False) -> None:
        if campaign_state == CANCELLED and state == PENDING:
            state, next_at = CANCELLED, None  # cancelled while its attempt was open
        values: dict[str, Any] = {"state": state, "next_at": next_at, "updated_at": now}
        if give_back:
            values["attempts"] = campaign_contacts.c.attempts - 1
        conn.execute(campaign_contacts.update().where(
            campaign_contacts.c.id == contact_id).values(**values))
