"""The operator's outbox, named leases, and SQLite's checkpoint: the periodic runner's tables."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import sqlalchemy as sa

from store.base import StoreBase, short_error
from store.schema import leases, outbox

logger = logging.getLogger(__name__)


class Outbox(StoreBase):
    """The outbox and the leases."""

    # -- the outbox ----------------------------------------------------------------------------

    def claim_outbox(self, *, limit: int, lease_s: float) -> list[dict[str, Any]]:
        """Events due for delivery, each leased to the caller for ``lease_s`` (a conditional
        update, so two workers never send one event at once)."""
        now = self.clock()
        due = sa.and_(outbox.c.delivered_at.is_(None), outbox.c.next_attempt_at <= now)
        with self._read() as conn:
            if conn.execute(sa.select(outbox.c.id).where(due).limit(1)).first() is None:
                return []
        claimed = []
        with self._write() as conn:
            rows = conn.execute(sa.select(outbox).where(due).order_by(outbox.c.created_at)
                                .limit(limit)).all()
            for row in rows:
                taken = conn.execute(outbox.update().where(
                    outbox.c.id == row.id, outbox.c.next_attempt_at == row.next_attempt_at)
                    .values(next_attempt_at=now + lease_s)).rowcount
                if taken:
                    claimed.append(dict(row._mapping))
        return claimed

    def outbox_done(self, event_id: str) -> None:
        with self._write() as conn:
            conn.execute(outbox.update().where(outbox.c.id == event_id).values(
                delivered_at=self.clock(), last_error=None))

    def outbox_failed(self, event_id: str, error: str, *, retry_in: float | None) -> None:
        """A failed delivery: try again in ``retry_in`` seconds, or never (None)."""
        with self._write() as conn:
            conn.execute(outbox.update().where(outbox.c.id == event_id).values(
                attempts=outbox.c.attempts + 1, last_error=error[:300],
                next_attempt_at=None if retry_in is None else self.clock() + retry_in))

    def outbox_events(self, call_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(outbox).order_by(outbox.c.created_at, outbox.c.id)
        if call_id:
            query = query.where(outbox.c.call_id == call_id)
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # -- leases and the reconciler's reads -------------------------------------------------------

    def take_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take the named lease if nobody holds it (or it ran out): one worker at a time runs
        the job it guards, and it runs at most once per ``ttl_s`` across all workers."""
        now = self.clock()
        # Look first, with a read: every worker asks every few seconds and the answer is
        # nearly always no, which must not cost a write lock that webhooks would wait for.
        with self._read() as conn:
            held = conn.execute(sa.select(leases.c.expires_at).where(
                leases.c.name == name)).scalar()
        if held is not None and held > now:
            return False
        with self._write() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name)
                               .with_for_update()).first()
            if row is None:
                conn.execute(leases.insert().values(name=name, holder=holder,
                                                    expires_at=now + ttl_s))
                return True
            if row.expires_at > now:
                return False
            conn.execute(leases.update().where(leases.c.name == name).values(
                holder=holder, expires_at=now + ttl_s))
            return True

    def checkpoint(self) -> None:
        """SQLite: copy the write-ahead log into the database without blocking anyone. Done by
        the sweeper so that no webhook's commit pays for it (see make_engine)."""
        if self.dialect != "sqlite":
            return
        # Outside any transaction (SQLite refuses a checkpoint inside one), on the bare driver
        # connection. A busy database just means the next sweep does it.
        raw = self.engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").close()
        except sqlite3.OperationalError as exc:
            logger.debug("store.checkpoint_skipped", extra={"error": short_error(exc)})
        finally:
            raw.close()
