"""The store's part for post-call analyses (calls/analysis.py runs them): queueing ended calls,
leasing due ones to one worker at a time, and recording what came of each."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from calls import lifecycle
from store.base import StoreBase
from store.schema import call_analyses, calls
from store.statements import dialect_insert


class AnalysisRecords(StoreBase):
    def queue_analyses(self, *, ended_before: float, ended_after: float) -> int:
        """Queue every call that ended between the two times and has no analysis yet (each is
        queued once: the call id is the row's key)."""
        now = self.clock()
        with self._read() as conn:
            ids = conn.execute(
                sa.select(calls.c.id)
                .outerjoin(call_analyses, call_analyses.c.call_id == calls.c.id)
                .where(calls.c.state == lifecycle.ENDED, calls.c.agent_id.is_not(None),
                       calls.c.ended_at <= ended_before, calls.c.ended_at > ended_after,
                       call_analyses.c.call_id.is_(None))
                .limit(100)).scalars().all()
        if not ids:
            return 0
        with self._write() as conn:
            conn.execute(dialect_insert(self.dialect, call_analyses).on_conflict_do_nothing(), [
                {"call_id": call_id, "state": "pending", "attempts": 0, "next_attempt_at": now,
                 "created_at": now} for call_id in ids])
        return len(ids)

    def claim_analyses(self, *, limit: int, lease_s: float) -> list[dict[str, Any]]:
        """Analyses due now, each leased for ``lease_s`` (a conditional update: two workers
        never run one at once)."""
        now = self.clock()
        due = sa.and_(call_analyses.c.state == "pending", call_analyses.c.next_attempt_at <= now)
        with self._read() as conn:
            rows = conn.execute(sa.select(call_analyses).where(due)
                                .order_by(call_analyses.c.next_attempt_at).limit(limit)).all()
        if not rows:
            return []
        claimed = []
        with self._write() as conn:
            for row in rows:
                taken = conn.execute(call_analyses.update().where(
                    call_analyses.c.call_id == row.call_id, call_analyses.c.state == "pending",
                    call_analyses.c.next_attempt_at == row.next_attempt_at)
                    .values(next_attempt_at=now + lease_s,
                            attempts=call_analyses.c.attempts + 1)).rowcount
                if taken:
                    claimed.append({**row._mapping, "attempts": row.attempts + 1})
        return claimed

    def analysis_done(self, call_id: str, *, summary: str, data: dict[str, Any],
                      success: bool | None, model: str | None, prompt_tokens: int | None,
                      completion_tokens: int | None) -> None:
        """The analysis, its timeline entry and (EVENTS_WEBHOOK_URL) one ``call.analyzed``."""
        now = self.clock()
        with self._write() as conn:
            done = conn.execute(call_analyses.update().where(
                call_analyses.c.call_id == call_id, call_analyses.c.state == "pending").values(
                state="done", summary=summary, data=json.dumps(data, ensure_ascii=False),
                success=success, model=(model or "")[:128] or None,
                prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                last_error=None, next_attempt_at=None, finished_at=now)).rowcount
            if done:
                self._event(conn, call_id, now, "service", "analysis_done", {
                    "model": model, "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens})
                self._emit(conn, "analyzed", call_id, now)

    def analysis_retry(self, call_id: str, error: str, *, retry_in: float | None) -> None:
        """A failed attempt: again in ``retry_in`` seconds, or never (None: ``failed``, with the
        call's timeline saying ``analysis_failed``)."""
        now = self.clock()
        with self._write() as conn:
            values: dict[str, Any] = {"last_error": error[:300]}
            if retry_in is None:
                values.update(state="failed", next_attempt_at=None, finished_at=now)
            else:
                values["next_attempt_at"] = now + retry_in
            changed = conn.execute(call_analyses.update().where(
                call_analyses.c.call_id == call_id, call_analyses.c.state == "pending")
                .values(**values)).rowcount
            if changed and retry_in is None:
                self._event(conn, call_id, now, "service", "analysis_failed",
                            {"error": error[:300]})

    def analysis_empty(self, call_id: str) -> None:
        """No transcript: nothing to analyse, nothing sent."""
        with self._write() as conn:
            conn.execute(call_analyses.update().where(
                call_analyses.c.call_id == call_id, call_analyses.c.state == "pending").values(
                state="empty", next_attempt_at=None, finished_at=self.clock()))

    def analysis_of(self, call_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(sa.select(call_analyses).where(
                call_analyses.c.call_id == call_id)).first()
        if row is None:
            return None
        return {"state": row.state, "summary": row.summary,
                "data": json.loads(row.data) if row.data else None, "success": row.success,
                "model": row.model, "prompt_tokens": row.prompt_tokens,
                "completion_tokens": row.completion_tokens, "attempts": row.attempts,
                "error": row.last_error}

    def analyses_of(self, call_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The analyses of several calls at once (a page of the API's list), by call id."""
        if not call_ids:
            return {}
        with self._read() as conn:
            rows = conn.execute(sa.select(call_analyses.c.call_id, call_analyses.c.state,
                                          call_analyses.c.success, call_analyses.c.summary)
                                .where(call_analyses.c.call_id.in_(call_ids))).all()
        return {r.call_id: {"state": r.state, "success": r.success, "summary": r.summary}
                for r in rows}
