"""A small client for Agora's Conversational AI (ConvoAI) REST API v2.

On the shared upstream transport (upstream/base.py): Basic auth with the customer id/secret, an
explicit timeout on every call, and retries decided by :class:`~upstream.retry.RetryPolicy`. Calls
whose repetition is harmless (join with a deterministic name, leave, update, reads) are retried;
``speak`` and ``interrupt`` are not, because doing them twice is audible.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import requests
from requests.auth import HTTPBasicAuth

from upstream.base import FailureHook, TimeoutSpec, UpstreamClient
from upstream.errors import MALFORMED_RESPONSE, UpstreamFailure
from upstream.retry import NO_RETRY, RetryPolicy

from .errors import AgentNotFound, UpstreamError, UpstreamUnavailable, error_from_response
from .models import (
    Agent,
    AgentPage,
    AgentStatus,
    AgentSummary,
    History,
    encode_states,
    opt_int,
    opt_str,
)
from .telephony import TelephonyCalls

logger = logging.getLogger(__name__)

#: ``speak`` text limit, in UTF-8 bytes (API reference 2.6).
MAX_SPEAK_BYTES = 512
SPEAK_PRIORITIES = frozenset({"INTERRUPT", "APPEND", "IGNORE"})

DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 5.0)
DEFAULT_RETRY = RetryPolicy()


class ConvoAIClient(TelephonyCalls, UpstreamClient):
    """ConvoAI v2 REST calls for one project (App ID); the telephony calls (place, status,
    hang up) come from convoai/telephony.py."""

    log_name = "convoai"
    logger = logger

    def __init__(
        self,
        base_url: str,
        app_id: str,
        customer_id: str,
        customer_secret: str,
        *,
        timeout: TimeoutSpec = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] | None = None,
        on_failure: FailureHook | None = None,
    ) -> None:
        if not base_url:
            raise ValueError("base_url is required")
        if not app_id:
            raise ValueError("app_id is required")
        if not customer_id or not customer_secret:
            raise ValueError("customer_id and customer_secret are required")
        super().__init__(base_url, timeout=timeout, session=session, retry=retry, sleep=sleep,
                         clock=clock, rand=rand, on_failure=on_failure)
        self._project_url = f"{base_url.rstrip('/')}/v2/projects/{quote(app_id, safe='')}"
        self._session.auth = HTTPBasicAuth(customer_id, customer_secret)
        self._session.headers["Accept"] = "application/json"

    # -- agent lifecycle -------------------------------------------------------------------

    def join(
        self,
        name: str,
        properties: dict[str, Any],
        *,
        timeout: TimeoutSpec | None = None,
        budget_s: float | None = None,
    ) -> Agent:
        """Start an agent.

        Retried: the name is deterministic, so a retry of a join that did reach Agora gets
        :class:`~convoai.errors.TaskConflict`, which the caller resolves with :meth:`find_by_name`.
        ``budget_s`` overrides the policy's time budget for this call.
        """
        resp = self._request(
            "POST",
            "/join",
            json={"name": name, "properties": properties},
            timeout=timeout,
            budget_s=budget_s,
        )
        return self._agent(resp)

    def leave(self, agent_id: str) -> None:
        """Stop an agent; raises AgentNotFound on 404, which callers treat as already gone."""
        self._request("POST", f"{_agent_path(agent_id)}/leave")

    def update(
        self, agent_id: str, properties: dict[str, Any], *, budget_s: float | None = None
    ) -> Agent:
        """Change a running agent (token, LLM messages/params; ``llm.params`` is replaced whole).
        ``budget_s`` overrides the policy's time budget for this call."""
        resp = self._request(
            "POST", f"{_agent_path(agent_id)}/update", json={"properties": properties},
            budget_s=budget_s,
        )
        return self._agent(resp)

    def query(self, agent_id: str) -> AgentStatus:
        """Current state of one agent."""
        resp = self._request("GET", _agent_path(agent_id))
        body = self._json_object(resp, "response")
        return AgentStatus(
            agent_id=opt_str(body.get("agent_id")) or agent_id,
            name=opt_str(body.get("name")),
            status=self._required_str(body, "status", "query", resp),
            start_ts=opt_int(body.get("start_ts")),
            stop_ts=opt_int(body.get("stop_ts")),
            message=opt_str(body.get("message")),
        )

    # -- listing ---------------------------------------------------------------------------

    def list_agents(
        self,
        *,
        channel: str | None = None,
        states: Sequence[str] | None = None,
        from_time: int | None = None,
        to_time: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AgentPage:
        """One page of agents. Without ``states`` Agora lists RUNNING only; without
        ``from_time`` it looks back two hours."""
        params: dict[str, str | int] = {}
        if channel is not None:
            params["channel"] = channel
        if states is not None:
            params["state"] = encode_states(states)
        if from_time is not None:
            params["from_time"] = from_time
        if to_time is not None:
            params["to_time"] = to_time
        if limit is not None:
            params["limit"] = limit
        if cursor:
            params["cursor"] = cursor
        resp = self._request("GET", "/agents", params=params)
        body = self._json_object(resp, "response")
        data = body.get("data") or {}
        meta = body.get("meta") or {}
        if not isinstance(data, dict) or not isinstance(meta, dict):
            raise self._malformed("list", "data/meta are not objects", resp)
        raw_items = data.get("list") or []
        if not isinstance(raw_items, list) or not all(isinstance(i, dict) for i in raw_items):
            raise self._malformed("list", "data.list is not a list of objects", resp)
        items = tuple(
            AgentSummary(
                agent_id=self._required_str(item, "agent_id", "list", resp),
                status=self._required_str(item, "status", "list", resp),
                start_ts=opt_int(item.get("start_ts")),
            )
            for item in raw_items
        )
        return AgentPage(
            items=items,
            cursor=opt_str(meta.get("cursor")) or None,
            total=opt_int(meta.get("total")),
        )

    def iter_agents(
        self,
        *,
        channel: str | None = None,
        states: Sequence[str] | None = None,
        from_time: int | None = None,
        to_time: int | None = None,
        limit: int | None = None,
    ) -> Iterator[AgentSummary]:
        """Every agent matching the filters, following ``meta.cursor`` page by page."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = self.list_agents(
                channel=channel,
                states=states,
                from_time=from_time,
                to_time=to_time,
                limit=limit,
                cursor=cursor,
            )
            yield from page.items
            if page.cursor is None:
                return
            if page.cursor in seen:
                # A cursor we already followed would loop forever.
                raise self._malformed("list", "pagination cursor repeated")
            seen.add(page.cursor)
            cursor = page.cursor

    def find_by_name(
        self, name: str, *, channel: str | None = None, from_time: int | None = None
    ) -> AgentStatus | None:
        """The live (STARTING or RUNNING) agent called ``name``, or None.

        Used to adopt an agent after a join answered 409. List entries carry no name, so each
        candidate is queried; one that vanished in between is skipped.
        """
        for summary in self.iter_agents(
            channel=channel, states=("STARTING", "RUNNING"), from_time=from_time
        ):
            try:
                status = self.query(summary.agent_id)
            except AgentNotFound:
                continue
            if status.name == name:
                return status
        return None

    # -- conversation ----------------------------------------------------------------------

    def history(self, agent_id: str, *, budget_s: float | None = None) -> History:
        """The running agent's conversation (``role``/``content`` entries)."""
        resp = self._request("GET", f"{_agent_path(agent_id)}/history", budget_s=budget_s)
        body = self._json_object(resp, "response")
        contents = body.get("contents") or []
        if not isinstance(contents, list) or not all(isinstance(c, dict) for c in contents):
            raise self._malformed("history", "contents is not a list of objects", resp)
        return History(
            agent_id=opt_str(body.get("agent_id")) or agent_id,
            status=self._required_str(body, "status", "history", resp),
            start_ts=opt_int(body.get("start_ts")),
            contents=tuple(contents),
        )

    def speak(
        self,
        agent_id: str,
        text: str,
        *,
        priority: str = "INTERRUPT",
        interruptable: bool = True,
    ) -> dict[str, Any]:
        """Have the agent say ``text`` through TTS. Not retried: speaking twice is audible."""
        if not text:
            raise ValueError("text must not be empty")
        size = len(text.encode("utf-8"))
        if size > MAX_SPEAK_BYTES:
            raise ValueError(f"text is {size} bytes in UTF-8; the limit is {MAX_SPEAK_BYTES}")
        if priority not in SPEAK_PRIORITIES:
            raise ValueError(f"priority must be one of {sorted(SPEAK_PRIORITIES)}")
        payload = {"text": text, "priority": priority, "interruptable": interruptable}
        resp = self._request("POST", f"{_agent_path(agent_id)}/speak", json=payload, retry=False)
        return self._json_object(resp, "response")

    def interrupt(self, agent_id: str) -> dict[str, Any]:
        """Stop the agent's current speech or thinking. Not retried."""
        resp = self._request("POST", f"{_agent_path(agent_id)}/interrupt", json={}, retry=False)
        return self._json_object(resp, "response")

    # -- transport -------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str | int] | None = None,
        retry: bool = True,
        timeout: TimeoutSpec | None = None,
        budget_s: float | None = None,
    ) -> requests.Response:
        """Send one call, retrying per policy; return the 2xx response or raise ConvoAIError.

        Only the method, path, status and timing are logged: headers carry the credentials
        and bodies carry provider API keys."""
        return self._send(
            method, self._project_url + path, {"method": method, "path": path},
            policy=None if retry else NO_RETRY, timeout=timeout, budget_s=budget_s,
            json=json, params=params,
        )

    def _error_for(self, resp: requests.Response, sent: Any) -> UpstreamFailure | None:
        return None if 200 <= resp.status_code < 300 else error_from_response(resp)

    def _unavailable(self, exc: Exception, context: Mapping[str, Any]) -> UpstreamFailure:
        # Not str(exc): keep the message to what we chose to say.
        return UpstreamUnavailable(
            detail=f"{type(exc).__name__} on {context['method']} {context['path']}")

    def _malformed_error(
        self, what: str, problem: str, resp: requests.Response | None
    ) -> UpstreamFailure:
        return UpstreamError(
            status=resp.status_code if resp is not None else None,
            reason=MALFORMED_RESPONSE,
            detail=f"{what}: {problem}",
            response=resp,
        )

    # -- reading answers -------------------------------------------------------------------

    def _agent(self, resp: requests.Response) -> Agent:
        body = self._json_object(resp, "response")
        created_at = opt_int(body.get("create_ts"))
        if created_at is None:
            raise self._malformed("agent", "missing create_ts", resp)
        return Agent(
            agent_id=self._required_str(body, "agent_id", "agent", resp),
            status=self._required_str(body, "status", "agent", resp),
            created_at=created_at,
        )

    def _required_str(
        self, body: dict[str, Any], key: str, what: str, resp: requests.Response | None = None
    ) -> str:
        value = body.get(key)
        if not isinstance(value, str) or not value:
            raise self._malformed(what, f"missing {key}", resp)
        return value


def _agent_path(agent_id: str) -> str:
    if not agent_id:
        raise ValueError("agent_id is required")
    return f"/agents/{quote(agent_id, safe='')}"
