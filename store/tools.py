"""The store's part for agent tools: the MCP endpoint's per-call tokens, the ledger that makes a
side effect happen once per request, and the tarot cards drawn in each call.

A tool call is claimed by inserting its row; the row's id, for a side-effecting tool, is made
from the call, the tool and the canonical arguments (tools/ledger.py), so a repeat on any worker
finds the first row: done, it gets the first result; still running under a live lease, it waits;
running under a lease that ran out (its worker died), it may be taken over.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from calls import lifecycle
from store.base import CALL_COLUMNS, CallRecord, StoreBase, run
from store.schema import call_tokens, calls, tarot_draws, tool_calls
from store.statements import dialect_insert

#: A call's token opens the MCP endpoint while the call is open: from its start until it has
#: ended (``stopping`` included, so a repeat of ``end_call`` still gets its first answer).
TOKEN_STATES = (lifecycle.STARTING, lifecycle.ACTIVE, lifecycle.GRACE, lifecycle.STOPPING)


@dataclass(frozen=True)
class ToolClaim:
    """What a worker should do with a tool call it asked to run.

    ``run``: it is the first (or the earlier runs failed); run it. ``take_over``: the first
    run's worker stopped renewing its lease (it died); run again with the same id. ``done``:
    ``result`` is the first run's result. ``running``: another worker is running it now; wait.
    """

    action: str
    result: dict[str, Any] | None = None
    attempts: int = 1


class ToolRecords(StoreBase):
    # -- the MCP endpoint's tokens ---------------------------------------------------------

    def add_call_token(self, call_id: str, token_hash: str) -> None:
        with self._write() as conn:
            run(conn, self._sql.insert_call_token, {
                "token_hash": token_hash, "call_id": call_id, "created_at": self.clock()})

    def call_for_token(self, token_hash: str) -> CallRecord | None:
        """The open call a token belongs to; None for an unknown token or an ended call."""
        query = (sa.select(*(calls.c[name] for name in CALL_COLUMNS))
                 .join(call_tokens, call_tokens.c.call_id == calls.c.id)
                 .where(call_tokens.c.token_hash == token_hash,
                        calls.c.state.in_(TOKEN_STATES)))
        with self._read() as conn:
            row = conn.execute(query).first()
        return CallRecord._make(row) if row is not None else None

    # -- the ledger ------------------------------------------------------------------------

    def claim_tool_call(self, *, tool_call_id: str, call_id: str, tool: str, once: bool,
                        arguments: str, holder: str, lease_s: float) -> ToolClaim:
        now = self.clock()
        with self._write() as conn:
            inserted = conn.execute(
                dialect_insert(self.dialect, tool_calls).on_conflict_do_nothing()
                .returning(tool_calls.c.id),
                {"id": tool_call_id, "call_id": call_id, "tool": tool, "once": once,
                 "arguments": arguments, "state": "running", "holder": holder,
                 "lease_until": now + lease_s, "attempts": 1, "started_at": now}).first()
            if inserted is not None:
                return ToolClaim("run")
            row = conn.execute(sa.select(tool_calls).where(tool_calls.c.id == tool_call_id)
                               .with_for_update()).first()
            if row is None or row.call_id != call_id:  # pragma: no cover - ids are per call
                raise ValueError("tool call id of another call")
            if row.state == "done":
                return ToolClaim("done", json.loads(row.result))
            if row.state == "running" and row.lease_until is not None and row.lease_until > now:
                return ToolClaim("running")
            # Run again: the first run's worker died (its lease ran out), or the first run
            # failed, and a failure is not kept as the answer to a later request.
            attempts = row.attempts + 1
            conn.execute(tool_calls.update().where(tool_calls.c.id == tool_call_id).values(
                holder=holder, lease_until=now + lease_s, attempts=attempts))
            return ToolClaim("run" if row.state == "failed" else "take_over", attempts=attempts)

    def finish_tool_call(self, tool_call_id: str, *, call_id: str, tool: str,
                         result: dict[str, Any], outcome: str, latency_ms: int,
                         arguments: dict[str, Any], final: bool,
                         redacted: dict[str, int] | None = None) -> None:
        """Record the result and put the call on the timeline. A ``final`` result (a success)
        answers every repeat; another answers the repeats waiting on this run, and a later
        repeat runs again. ``arguments`` come redacted; ``redacted`` counts what was removed."""
        now = self.clock()
        detail: dict[str, Any] = {"tool": tool, "arguments": arguments, "outcome": outcome,
                                  "latency_ms": latency_ms, "tool_call_id": tool_call_id}
        if redacted:
            detail["redacted"] = redacted
        with self._write() as conn:
            conn.execute(tool_calls.update().where(tool_calls.c.id == tool_call_id).values(
                state="done" if final else "failed",
                result=json.dumps(result, separators=(",", ":")),
                outcome=outcome, finished_at=now, lease_until=None))
            self._event(conn, call_id, now, "agent", "tool_called", detail)

    def tool_call_result(self, tool_call_id: str) -> ToolClaim:
        """Where a tool call stands now (for a repeat waiting on the first run)."""
        with self._read() as conn:
            row = conn.execute(sa.select(tool_calls.c.state, tool_calls.c.result,
                                         tool_calls.c.lease_until)
                               .where(tool_calls.c.id == tool_call_id)).first()
        if row is None:
            return ToolClaim("run")
        if row.state in ("done", "failed"):
            return ToolClaim("done", json.loads(row.result))
        if row.lease_until is not None and row.lease_until <= self.clock():
            return ToolClaim("take_over")
        return ToolClaim("running")

    def tool_calls_of(self, call_id: str) -> list[dict[str, Any]]:
        """A call's tool calls, oldest first, as the API shows them."""
        with self._read() as conn:
            rows = conn.execute(sa.select(tool_calls).where(tool_calls.c.call_id == call_id)
                                .order_by(tool_calls.c.started_at, tool_calls.c.id)).all()
        out = []
        for row in rows:
            result = json.loads(row.result) if row.result else None
            out.append({
                "id": row.id, "tool": row.tool, "once": bool(row.once),
                "arguments": json.loads(row.arguments), "state": row.state,
                "outcome": row.outcome, "attempts": row.attempts,
                "started_at": row.started_at, "finished_at": row.finished_at,
                "latency_ms": (round((row.finished_at - row.started_at) * 1000)
                               if row.finished_at is not None else None),
                "is_error": bool(result.get("isError")) if result else None,
                "structured": result.get("structuredContent") if result else None,
            })
        return out

    def flag_urgent(self, call_id: str, summary: str, *,
                    redacted: dict[str, int] | None = None) -> None:
        """Mark the call urgent for a person: on its timeline, and (EVENTS_WEBHOOK_URL) a
        ``call.escalated`` operator event, once per call however often it is flagged. The
        summary comes already redacted; ``redacted`` counts what was removed, by kind."""
        now = self.clock()
        detail: dict[str, Any] = {"summary": summary}
        if redacted:
            detail["redacted"] = redacted
        with self._write() as conn:
            self._event(conn, call_id, now, "agent", "flagged_urgent", detail)
            self._emit(conn, "escalated", call_id, now)

    # -- tarot -----------------------------------------------------------------------------

    def draw_tarot_cards(self, call_id: str, deck: Sequence[str], count: int,
                         rng: random.Random) -> list[tuple[str, bool]] | None:
        """Draw ``count`` cards not yet drawn in this call, each upright or reversed; None when
        fewer than ``count`` are left. A card taken by a concurrent draw is drawn again."""
        for _ in range(5):
            now = self.clock()
            try:
                with self._write() as conn:
                    drawn = set(conn.execute(sa.select(tarot_draws.c.card).where(
                        tarot_draws.c.call_id == call_id)).scalars())
                    left = [card for card in deck if card not in drawn]
                    if len(left) < count:
                        return None
                    cards = [(card, rng.random() < 0.5) for card in rng.sample(left, count)]
                    conn.execute(tarot_draws.insert(), [
                        {"call_id": call_id, "card": card, "reversed": rev, "drawn_at": now}
                        for card, rev in cards])
                    return cards
            except sa.exc.IntegrityError:
                continue  # another worker drew one of these cards a moment ago
        return None
