"""Calls as operators see them: plain dicts with ISO times and the figures they ask about.

Shared by the admin API, the exports, the dashboard and the outbound events, so all four tell the
same story. No Flask here."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from calls.costs import Rates, call_cost
from calls.turns import turn_latency
from store import CallRecord, Store

#: The columns of the CSV export, in order (the JSON forms carry these and more).
EXPORT_FIELDS = ("id", "channel", "state", "persona", "direction", "caller_number",
                 "called_number", "started_at", "ended_at", "agent_id", "time_to_agent_ms",
                 "duration_s", "end_reason", "last_error", "estimated_cost", "currency",
                 "analysis_state", "success", "summary")


def time_to_agent_ms(record: CallRecord) -> int | None:
    """From the caller reaching the channel to ConvoAI accepting the agent's join. An agent
    started at ring time (the SIP lookup) is already there when the caller arrives: 0."""
    if record.agent_started_at is None:
        return None
    caller_at = record.caller_joined_at or record.created_at
    return max(0, round((record.agent_started_at - caller_at) * 1000))


def call_json(record: CallRecord, rates: Rates | None = None,
              now: float | None = None) -> dict[str, Any]:
    """A call as the API shows it; with ``rates``, its estimated ``cost`` (calls/costs.py) as
    of ``now`` (default: the clock) for a call still running."""
    duration = None
    if record.ended_at is not None:
        duration = round(record.ended_at - record.created_at, 3)
    return {
        "id": record.id, "channel": record.channel, "state": record.state,
        "persona": record.persona, "caller_uid": record.caller_uid,
        "direction": record.direction or "inbound", "caller_number": record.caller_number,
        "called_number": record.called_number,
        "started_at": iso(record.created_at), "ended_at": iso(record.ended_at),
        "caller_joined_at": iso(record.caller_joined_at),
        "agent_started_at": iso(record.agent_started_at),
        "agent_id": record.agent_id, "agent_name": record.agent_name,
        "time_to_agent_ms": time_to_agent_ms(record), "duration_s": duration,
        "end_reason": record.end_reason, "last_error": record.last_error,
        **({} if rates is None else
           {"cost": call_cost(record, rates, time.time() if now is None else now)}),
    }


def analysis_columns(analysis: dict[str, Any] | None, record: CallRecord) -> dict[str, Any]:
    """The analysis's columns of a call in the API's list and the exports."""
    if analysis is None:
        return {"analysis_state": "pending" if record.agent_id else "empty", "success": None,
                "summary": None}
    return {"analysis_state": analysis["state"], "success": analysis["success"],
            "summary": analysis["summary"]}


def export_row(call: dict[str, Any]) -> dict[str, Any]:
    """A :func:`call_json` as a CSV row: the cost flattened into two columns."""
    cost = call.get("cost") or {}
    return {**call, "estimated_cost": cost.get("estimated"), "currency": cost.get("currency")}


def find_call_detail(store: Store, call_id: str,
                     rates: Rates | None = None) -> dict[str, Any] | None:
    """:func:`call_detail` of the call ``call_id``, or None when there is no such call."""
    record = store.get_call(call_id)
    if record is None:
        return None
    detail = call_detail(record, store.timeline(call_id), store.tool_calls_of(call_id),
                         store.analysis_of(call_id), rates=rates, now=store.clock())
    attempt = store.attempt_for_call(call_id)
    if attempt is not None:
        # Dialled by outbound/ (a scheduled call or a campaign's): when, and how it went.
        detail["dial"] = {"due_at": iso(attempt["due_at"]), "state": attempt["state"],
                          "disposition": attempt["disposition"],
                          "campaign_id": attempt["campaign_id"], "detail": attempt["detail"]}
    return detail


def analysis_json(analysis: dict[str, Any] | None, record: CallRecord) -> dict[str, Any]:
    """``analysis`` as the API shows it; a call not analysed yet is ``pending`` (or ``empty``
    when it never had an agent to talk to)."""
    if analysis is None:
        state = "pending" if record.agent_id else "empty"
        return {"state": state, "summary": None, "data": None, "success": None, "model": None}
    return {"state": analysis["state"], "summary": analysis["summary"],
            "data": analysis["data"], "success": analysis["success"],
            "model": analysis["model"], "prompt_tokens": analysis["prompt_tokens"],
            "completion_tokens": analysis["completion_tokens"],
            "attempts": analysis["attempts"], "error": analysis["error"]}


def call_detail(record: CallRecord, timeline: list[dict[str, Any]],
                tool_calls: list[dict[str, Any]] | None = None,
                analysis: dict[str, Any] | None = None, *, rates: Rates | None = None,
                now: float | None = None) -> dict[str, Any]:
    """A call with its timeline, transcript, ConvoAI's errors (event 110), per-turn latency
    (events 111 and 112, calls/turns.py) and the agent's tool calls (arguments named like
    secrets masked), as the API and the pages show it."""
    return {**call_json(record, rates, now),
            "timeline": [{**e, "at": iso(e["at"])} for e in timeline],
            "transcript": transcript(timeline), "agent_errors": agent_errors(timeline),
            "turn_latency": turn_latency(timeline),
            "tool_calls": [{**t, "started_at": iso(t["started_at"]),
                            "finished_at": iso(t["finished_at"])}
                           for t in tool_calls or []],
            "analysis": analysis_json(analysis, record)}


def transcript(timeline: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The conversation from the latest history: ConvoAI's notification (productId 17, event
    103) or the history the service fetched just before stopping the agent."""
    for event in reversed(timeline):
        detail = event.get("detail") or {}
        if event["kind"] == "agent_history" and isinstance(detail.get("contents"), list):
            return [{"role": str(c.get("role", "")), "content": str(c.get("content", ""))}
                    for c in detail["contents"] if isinstance(c, dict)]
    return []


def agent_errors(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every error ConvoAI reported for the call (event 110): module, code, message, turn."""
    found = []
    for event in timeline:
        detail = event.get("detail") or {}
        if event["kind"] != "agent_error":
            continue
        for error in detail.get("errors") or [detail]:
            if isinstance(error, dict):
                found.append({"at": iso(event["at"]), "module": error.get("module"),
                              "code": error.get("code"), "message": error.get("message"),
                              "turn_id": error.get("turn_id", detail.get("turn_id"))})
    return found


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
