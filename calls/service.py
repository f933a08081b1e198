"""Carries out the lifecycle's decisions: the store records them, the ConvoAI client acts on them.

Commit, then send: a caller's event is decided and committed first (a new call as ``starting``,
with its work lease), and only then is the join or leave sent. In ``inline`` mode (the default)
it is sent from the webhook's own request, the quickest way to the agent's greeting; a slow
ConvoAI holds only that caller's gunicorn thread, and JOIN_BUDGET_S keeps the answer inside NCS's
10 s.
In ``background`` mode the webhook answers once the decision is committed and the join or leave
runs on a thread pool. Either way the store holds the pending work, so the sweeper finishes or
undoes it if the worker dies half way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from calls import costs, guards, lifecycle
from calls.lifecycle import CallerEvent, CallerJoined
from calls.redaction import ConversationRedaction
from config import Settings
from convoai.client import ConvoAIClient
from convoai.errors import AgentNotFound, ConvoAIError, LimitExceeded, TaskConflict
from convoai.payload import build_join_properties, mcp_server_entry
from observability import metrics
from personas import Persona, Registry, load_registry
from store import Applied, CallRecord, Notice, Store, StoreUnavailable
from tools.catalog import BUILTIN_TIMEOUT_S
from tools.tokens import new_token, token_hash
from upstream.errors import UpstreamFailure

logger = logging.getLogger(__name__)

#: How long after a failed leave the sweeper tries again.
STOP_RETRY_S = 10.0
#: The most the conversation fetch before a stop may delay that stop.
HISTORY_BUDGET_S = 2.0


def new_call_id() -> str:
    """16 hex characters: unique enough for a call and short enough for an agent name."""
    return secrets.token_hex(8)


def count_convoai_failure(error: UpstreamFailure) -> None:
    """The ConvoAI client's failure hook: a request that failed for good, counted once."""
    metrics.upstream_error("convoai", error.kind)


def call_id_for_join(notice_id: str) -> str:
    """The id of the call a caller's join begins, from the delivery's noticeId: whatever sends
    that join again then names the same agent, gets 409 and adopts it instead of starting
    another."""
    return hashlib.sha256(b"call\0" + notice_id.encode()).hexdigest()[:16]


class CallService:
    """The call lifecycle, end to end."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        convoai: ConvoAIClient,
        *,
        new_id: Callable[[], str] | None = None,
        executor: ThreadPoolExecutor | None = None,
        personas: Registry | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.convoai = convoai
        self.new_id = new_id or new_call_id
        #: A call begun by a caller's join takes its id from the join's noticeId, unless the
        #: ids are given (tests number their calls).
        self._ids_from_notices = new_id is None
        self.executor = executor
        self.personas = personas or load_registry(settings)
        #: What each call's persona removes from a conversation before it is stored.
        self.redaction = ConversationRedaction(store, self.persona_of)
        #: Every rate in force, for each call's estimated cost and DAILY_BUDGET.
        self.rates = costs.Rates.build(settings, self.personas)
        self.limits = guards.Limits(max_concurrent_calls=settings.max_concurrent_calls,
                                    daily_agent_minutes=settings.daily_agent_minutes,
                                    daily_budget=settings.daily_budget, rates=self.rates)

    def cost_totals(self) -> dict[str, float]:
        """The estimated cost of every ended call in the store, by persona: read when metrics
        are scraped, so every worker and instance reports the same figure, each call once."""
        return costs.totals_by_persona(self.store.ended_agent_seconds(), self.rates)

    def admission(self) -> str | None:
        """The cost guard a call made now would break (for calls made before their caller
        joins: the SIP lookup and outbound calls), or None."""
        if not self.limits.active:
            return None
        return guards.refusal_reason(self.store.usage(self.limits), self.limits)

    def refused(self, call_id: str | None, reason: str, **extra: Any) -> None:
        """Count and log a call the cost guards kept from having an agent."""
        metrics.call_refused(reason)
        logger.warning("call.refused", extra={"call_id": call_id, "reason": reason, **extra})

    # -- caller events -----------------------------------------------------------------------

    def handle_caller_event(self, event: CallerEvent, *, event_type: int) -> dict[str, Any]:
        """Apply a caller's join or leave and set its consequences going; returns the answer."""
        persona = self.personas.route(event.channel)
        # A join to a channel whose persona has tools commits the token it hands the agent in
        # the transaction that decides the call (one write before the join, not two). A call
        # made before its caller came (SIP lookup, outbound) has the persona chosen then: if it
        # differs, a token the agent did not need stays unused, or one is made at the start.
        tools_token = new_token() if isinstance(event, CallerJoined) and \
            self._has_tools(persona) else None
        applied = self.store.apply_caller_event(
            event, grace_s=self.settings.rejoin_grace_s,
            agent_name_prefix=self.settings.agent_name_prefix, new_id=self._new_id_for(event),
            event_type=event_type, persona=persona.name, limits=self.limits,
            tools_token_hash=token_hash(tools_token) if tools_token else None)
        # Committed: now the agent's join or leave may go out (the leases and the agent's
        # deterministic name make a second attempt, by anyone, adopt rather than duplicate).
        self._follow_up(applied, tools_token)
        decision = applied.decision
        if applied.refused:
            self.refused(applied.call_id, applied.refused, channel=event.channel)
        logger.info("call.event", extra={
            "outcome": decision.outcome, "call_id": applied.call_id, "channel": event.channel,
            "seq": event.seq, "notice_id": event.notice_id})
        answer: dict[str, Any] = {"status": "ok" if decision.applied else "ignored",
                                  "outcome": "call_refused" if applied.refused
                                  else decision.outcome}
        if applied.refused:
            answer["reason"] = applied.refused
        if applied.call_id:
            answer["call_id"] = applied.call_id
        return answer

    def _new_id_for(self, event: CallerEvent) -> Callable[[], str]:
        """The id generator for the call this event may begin: a join's call takes its id from
        the join's noticeId (unless the ids are given), and a random one if that id is taken (a
        delivery replayed after its notice was forgotten makes a call of its own)."""
        if not isinstance(event, CallerJoined) or not self._ids_from_notices:
            return self.new_id
        return _offering(call_id_for_join(event.notice_id), then=self.new_id)

    def _follow_up(self, applied: Applied, tools_token: str | None) -> None:
        if applied.stop:
            call_id, agent_id = applied.stop
            self.run_in_background(self.stop_agent, call_id, agent_id)
        if applied.start:
            self.run_in_background(self.start_agent, applied.start.id, applied.start,
                                   applied.notice, tools_token)

    def start_in_background_or_inline(self, call: CallRecord) -> None:
        """Start the agent of a call made before its caller joined, per AGENT_START_MODE."""
        self.run_in_background(self.start_agent, call.id, call)

    def run_in_background(self, work: Callable[..., None], *args: Any) -> None:
        """Run ``work`` on the background pool (AGENT_START_MODE=background), else now."""
        if self.executor is None:
            work(*args)
        else:
            self.executor.submit(_logged(work), *args)

    # -- starting and stopping ---------------------------------------------------------------

    def start_agent(self, call_id: str, call: CallRecord | None = None,
                    notice: Notice | None = None, tools_token: str | None = None) -> None:
        """Start the call's agent; adopt it on 409; stop it at once if the call ended meanwhile.
        ``call`` is the record just committed, when the caller has it (saves a read);
        ``notice`` the caller event that asked for the agent, recorded with the outcome;
        ``tools_token`` a token for the MCP endpoint already kept with the call."""
        call = call or self.store.get_call(call_id)
        if call is None or call.state not in (lifecycle.STARTING, lifecycle.GRACE,
                                              lifecycle.STOPPING):
            if notice is not None:
                self.store.record_notice(notice)
            return
        if call.state == lifecycle.STOPPING and call.agent_id is None:
            # The caller left before we got here (or the sweeper took over a start whose worker
            # died): an agent may exist under this name from an earlier attempt.
            if notice is not None:
                self.store.record_notice(notice)
            self._stop_by_name(call)
            return
        persona, properties = self.join_properties(call, tools_token)
        extra = {"call_id": call.id, "channel": call.channel, "agent_name": call.agent_name,
                 "persona": persona.name}
        try:
            agent_id = self.convoai.join(call.agent_name, properties,
                                         budget_s=self.settings.join_budget_s).agent_id
        except TaskConflict:
            found = self.convoai.find_by_name(call.agent_name, channel=call.channel)
            if found is None:
                self.store.start_failed(call.id, state=lifecycle.FAILED,
                                        reason="TaskConflict but no live agent has our name",
                                        notice=notice)
                logger.error("agent.start_failed", extra={**extra, "reason": "TaskConflict"})
                return
            agent_id = found.agent_id
            logger.info("agent.adopted", extra={**extra, "agent_id": agent_id})
        except LimitExceeded as exc:
            self.store.start_failed(call.id, state=lifecycle.REFUSED, reason=str(exc),
                                    notice=notice)
            logger.warning("agent.refused", extra={**extra, "reason": exc.reason})
            return
        except ConvoAIError as exc:
            self.store.start_failed(call.id, state=lifecycle.FAILED, reason=str(exc),
                                    notice=notice)
            logger.error("agent.start_failed", extra={**extra, "reason": exc.reason,
                                                      "status": exc.status})
            return
        outcome = self.store.agent_started(call.id, agent_id, notice=notice)
        if outcome == "active":
            metrics.agent_start(self.store.clock() - (call.caller_joined_at or call.created_at))
        logger.info("agent.started", extra={**extra, "agent_id": agent_id, "then": outcome})
        if outcome == "stop":
            self.stop_agent(call.id, agent_id)

    def join_properties(self, call: CallRecord, tools_token: str | None = None
                        ) -> tuple[Persona, dict[str, Any]]:
        """The call's persona and the ``properties`` its agent starts with: the join's, and
        ConvoAI telephony's ``/call`` (sip/convoai_dialer.py), which takes the same object."""
        persona = self.persona_of(call)
        return persona, build_join_properties(
            self.settings, persona, call_id=call.id, channel=call.channel,
            variables=json.loads(call.variables) if call.variables else None,
            mcp_server=self._tools_server(call, persona, tools_token), direction=call.direction)

    def _has_tools(self, persona: Persona) -> bool:
        """Whether the persona's agents get the MCP endpoint: it has tools and agents can reach
        the endpoint."""
        return bool(persona.tool_names and self.settings.tools_url)

    def _tools_server(self, call: CallRecord, persona: Persona,
                      token: str | None = None) -> dict[str, Any] | None:
        """The join's MCP server entry when the persona has tools: ``token`` if the call already
        keeps it, else a new bearer token kept now (only its hash is kept, with the call). A new
        token per join, so an agent adopted after a retried join keeps the token it was started
        with."""
        if not self._has_tools(persona):
            return None
        if token is None:
            token = new_token()
            self.store.add_call_token(call.id, token_hash(token))
        timeout_s = max([BUILTIN_TIMEOUT_S, *(tool.timeout_s for tool in persona.tools)])
        return mcp_server_entry(self.settings.tools_url, token, persona.tool_names, timeout_s)

    def persona_of(self, call: CallRecord) -> Persona:
        """The persona recorded with the call; routing again only if it has since vanished."""
        if call.persona:
            try:
                return self.personas.get(call.persona)
            except KeyError:
                logger.warning("persona.missing", extra={"call_id": call.id,
                                                         "persona": call.persona})
        return self.personas.route(call.channel)

    def stop_agent(self, call_id: str, agent_id: str) -> None:
        """Stop an agent; a 404 means it is already gone."""
        extra = {"call_id": call_id, "agent_id": agent_id}
        self._save_history(call_id, agent_id)
        try:
            self.convoai.leave(agent_id)
        except AgentNotFound:
            self.store.agent_stopped(call_id, already_gone=True)
            logger.info("agent.already_gone", extra=extra)
            return
        except ConvoAIError as exc:
            self.store.stop_failed(call_id, str(exc), retry_in=STOP_RETRY_S)
            logger.error("agent.stop_failed", extra={**extra, "reason": exc.reason,
                                                     "status": exc.status})
            return
        self.store.agent_stopped(call_id)
        logger.info("agent.stopped", extra=extra)

    def _save_history(self, call_id: str, agent_id: str) -> None:
        """Keep the conversation before the agent goes: ConvoAI also sends it (productId 17,
        event 103) after the stop, but a notification can be lost or not configured. Best
        effort within HISTORY_BUDGET_S; the stop goes ahead either way."""
        try:
            history = self.convoai.history(agent_id, budget_s=HISTORY_BUDGET_S)
            if history.contents:
                contents, found = self.redaction.contents(list(history.contents), call_id,
                                                          agent_id)
                self.store.record_history(call_id, contents, redacted=found)
        except (ConvoAIError, StoreUnavailable) as exc:
            logger.info("agent.history_unavailable", extra={
                "call_id": call_id, "agent_id": agent_id, "error": type(exc).__name__})

    def _stop_by_name(self, call: CallRecord) -> None:
        try:
            found = self.convoai.find_by_name(call.agent_name, channel=call.channel)
        except ConvoAIError as exc:
            self.store.stop_failed(call.id, str(exc), retry_in=STOP_RETRY_S)
            return
        if found is None:
            self.store.agent_stopped(call.id, already_gone=True)
        else:
            self.stop_agent(call.id, found.agent_id)

    # -- the sweeper -------------------------------------------------------------------------

    def sweep(self) -> int:
        """Finish due work: close calls whose caller did not return within the grace window,
        retry failed stops, and complete or undo starts whose worker vanished."""
        claimed = self.store.claim_due_work(caller_wait_s=self.settings.lookup_join_timeout_s)
        for call in claimed:
            if call.state == lifecycle.STOPPING and call.agent_id:
                self.stop_agent(call.id, call.agent_id)
            else:
                # A start that never finished: joining again under the same name either starts
                # the agent or, if the first attempt got through, answers 409 and we adopt it.
                self.start_agent(call.id)
        return len(claimed)


def _offering(first: str, *, then: Callable[[], str]) -> Callable[[], str]:
    """An id generator that gives ``first``, then whatever ``then`` gives."""
    offered = iter((first,))
    return lambda: next(offered, None) or then()


def _logged(work: Callable[..., None]) -> Callable[..., None]:
    """Background work must not fail silently: log what escaped (the sweeper retries it)."""

    def run(*args: Any) -> None:
        try:
            work(*args)
        except Exception:
            logger.exception("background.failed", extra={"work": work.__name__})

    return run
