"""ConvoAI's notifications about this service's agents (NCS productId 17): each goes on its call's
timeline once, a conversation's history redacted as its persona says, and an agent whose RTC
token is about to expire gets a fresh one. ConvoAI telephony's call states (201/202) are
sip/convoai_dialer.py's. No Flask here."""

from __future__ import annotations

import logging
from typing import Any

from calls import lifecycle
from calls.service import CallService
from calls.turns import finished_turns
from convoai.errors import ConvoAIError
from convoai.payload import agent_token, is_our_agent
from ncs.events import AgentEvent

logger = logging.getLogger(__name__)


def handle_agent_event(calls: CallService, event: AgentEvent, *,
                       notice_id: str) -> dict[str, Any]:
    """Record ConvoAI's notification about one of our agents (others are ignored)."""
    if not is_our_agent(calls.settings.agent_name_prefix, event.labels, event.name):
        return {"status": "ignored", "reason": "not an agent of this service"}
    detail = finished_turns(event.payload) if event.kind == "turns_finished" \
        else _agent_event_detail(event)
    if event.kind == "agent_history":
        detail = calls.redaction.history_detail(detail, event.labels.get("call_id"),
                                                event.agent_id)
    outcome = calls.store.apply_agent_event(
        notice_id=notice_id, event_type=event.event_type, kind=event.kind,
        call_id=event.labels.get("call_id"), agent_id=event.agent_id, detail=detail,
        agent_left=event.kind == "agent_left")
    logger.info("agent.event", extra={"kind": event.kind, "agent_id": event.agent_id,
                                      "call_id": event.labels.get("call_id"),
                                      "outcome": outcome})
    if outcome == "recorded" and event.kind == "agent_token_expiring":
        return _renew_token(calls, event)
    answer = {"status": "ok" if outcome not in ("duplicate_notice", "unknown_call")
              else "ignored", "outcome": outcome}
    if outcome == "unknown_call":
        answer["reason"] = "no call of this service has this agent"
    return answer


def _renew_token(calls: CallService, event: AgentEvent) -> dict[str, Any]:
    """Event 104: the agent's RTC token is about to expire (sessions may outlive the 24 h
    token). Send a fresh one through ``/update``, for the agent of a live call only.

    One update within JOIN_BUDGET_S (retried by the client's policy), so the answer stays
    inside NCS's 10 s. A failure is logged and put on the timeline, and the answer is still
    200: the notice is recorded already, so a retried delivery would be a duplicate, and
    what makes ConvoAI refuse a token (a wrong certificate, an agent gone) would not change
    between NCS's retries anyway."""
    store, settings = calls.store, calls.settings
    call_id = event.labels.get("call_id")
    call = store.get_call(call_id) if call_id else store.call_by_agent_id(event.agent_id or "")
    if call is None or not event.agent_id or call.agent_id != event.agent_id or \
            call.state not in lifecycle.LIVE_STATES:
        return {"status": "ignored", "outcome": "agent_not_live",
                "reason": "the agent is not the live agent of a call: nothing to renew"}
    extra = {"call_id": call.id, "agent_id": call.agent_id, "channel": call.channel}
    try:
        calls.convoai.update(call.agent_id, {"token": agent_token(settings, call.channel)},
                             budget_s=settings.join_budget_s)
    except ConvoAIError as exc:
        store.record_event(call.id, "service", "agent_token_renew_failed",
                           {"agent_id": call.agent_id, "error": str(exc)})
        logger.error("agent.token_renew_failed", extra={**extra, "reason": exc.reason,
                                                        "status": exc.status})
        return {"status": "ok", "outcome": "token_renew_failed", "call_id": call.id}
    store.record_event(call.id, "service", "agent_token_renewed", {"agent_id": call.agent_id})
    logger.info("agent.token_renewed", extra=extra)
    return {"status": "ok", "outcome": "token_renewed", "call_id": call.id}


def _agent_event_detail(event: AgentEvent) -> dict[str, Any]:
    """The parts of a ConvoAI notification worth keeping on the call's timeline."""
    keep = ("agent_id", "start_ts", "stop_ts", "status", "message", "contents", "errors",
            "metrics", "state", "report_ms")
    return {k: event.payload[k] for k in keep if k in event.payload}
