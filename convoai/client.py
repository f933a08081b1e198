"""A small client for Agora's Conversational AI (ConvoAI) REST API v2.

One ``requests.Session`` per client, Basic auth with the customer id/secret, an explicit timeout on
every call, and retries decided by :class:`~convoai.retry.RetryPolicy`. Calls whose repetition is
harmless (join with a deterministic name, leave, update, reads) are retried; ``speak`` and
``interrupt`` are not, because doing them twice is audible.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import requests
from requests.auth import HTTPBasicAuth

from observability import metrics

from .errors import AgentNotFound, UpstreamError, UpstreamUnavailable, error_from_response
from .retry import NO_RETRY, RetryPolicy

logger = logging.getLogger(__name__)

#: Agent state names and the numeric codes the list endpoint's ``state`` filter expects.
STATE_CODES: dict[str, int] = {
    "IDLE": 0,
    "STARTING": 1,
    "RUNNING": 2,
    "STOPPING": 3,
    "STOPPED": 4,
    "RECOVERING": 5,
    "FAILED": 6,
}

#: ``speak`` text limit, in UTF-8 bytes (API reference 2.6).
MAX_SPEAK_BYTES = 512
SPEAK_PRIORITIES = frozenset({"INTERRUPT", "APPEND", "IGNORE"})

DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 5.0)
DEFAULT_RETRY = RetryPolicy()

TimeoutSpec = float | tuple[float, float]


@dataclass(frozen=True)
class Agent:
    """An agent as returned by ``join`` and ``update``."""

    agent_id: str
    status: str
    created_at: int


@dataclass(frozen=True)
class AgentStatus:
    """The result of querying one agent."""

    agent_id: str
    name: str | None
    status: str
    start_ts: int | None
    stop_ts: int | None
    message: str | None


@dataclass(frozen=True)
class AgentSummary:
    """One entry of the agent list (the list carries no name)."""

    agent_id: str
    status: str
    start_ts: int | None


@dataclass(frozen=True)
class AgentPage:
    """One page of the agent list; ``cursor`` is None on the last page."""

    items: tuple[AgentSummary, ...]
    cursor: str | None
    total: int | None


@dataclass(frozen=True)
class History:
    """The conversation so far of a running agent."""

    agent_id: str
    status: str
    start_ts: int | None
    contents: tuple[dict[str, Any], ...]


class ConvoAIClient:
    """ConvoAI v2 REST calls for one project (App ID)."""

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
    ) -> None:
        if not base_url:
            raise ValueError("base_url is required")
        if not app_id:
            raise ValueError("app_id is required")
        if not customer_id or not customer_secret:
            raise ValueError("customer_id and customer_secret are required")
        self._project_url = f"{base_url.rstrip('/')}/v2/projects/{quote(app_id, safe='')}"
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        # Jitter from a generator of the client's own: the global one is shared state that
        # other code (and property tests) may rely on.
        self._rand = rand or random.Random().random
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # requests re-reads proxy and CA settings from the environment on every request
            # (a measurable share of each join); read them once here instead.
            proxies = requests.utils.get_environ_proxies(base_url)
            session.trust_env = False
            session.proxies.update(proxies)
            session.verify = (os.environ.get("REQUESTS_CA_BUNDLE")
                              or os.environ.get("CURL_CA_BUNDLE") or True)
        self._session = session
        self._session.auth = HTTPBasicAuth(customer_id, customer_secret)
        self._session.headers["Accept"] = "application/json"

    def close(self) -> None:
        """Close the session, if this client created it (a session passed in is the caller's)."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> ConvoAIClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

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
        return _agent(resp)

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
        return _agent(resp)

    def query(self, agent_id: str) -> AgentStatus:
        """Current state of one agent."""
        resp = self._request("GET", _agent_path(agent_id))
        body = _json_object(resp)
        return AgentStatus(
            agent_id=_opt_str(body.get("agent_id")) or agent_id,
            name=_opt_str(body.get("name")),
            status=_required_str(body, "status", "query", resp),
            start_ts=_opt_int(body.get("start_ts")),
            stop_ts=_opt_int(body.get("stop_ts")),
            message=_opt_str(body.get("message")),
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
            params["state"] = _encode_states(states)
        if from_time is not None:
            params["from_time"] = from_time
        if to_time is not None:
            params["to_time"] = to_time
        if limit is not None:
            params["limit"] = limit
        if cursor:
            params["cursor"] = cursor
        resp = self._request("GET", "/agents", params=params)
        body = _json_object(resp)
        data = body.get("data") or {}
        meta = body.get("meta") or {}
        if not isinstance(data, dict) or not isinstance(meta, dict):
            raise _malformed("list", "data/meta are not objects", resp)
        raw_items = data.get("list") or []
        if not isinstance(raw_items, list) or not all(isinstance(i, dict) for i in raw_items):
            raise _malformed("list", "data.list is not a list of objects", resp)
        items = tuple(
            AgentSummary(
                agent_id=_required_str(item, "agent_id", "list", resp),
                status=_required_str(item, "status", "list", resp),
                start_ts=_opt_int(item.get("start_ts")),
            )
            for item in raw_items
        )
        return AgentPage(
            items=items,
            cursor=_opt_str(meta.get("cursor")) or None,
            total=_opt_int(meta.get("total")),
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
                raise _malformed("list", "pagination cursor repeated")
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
        body = _json_object(resp)
        contents = body.get("contents") or []
        if not isinstance(contents, list) or not all(isinstance(c, dict) for c in contents):
            raise _malformed("history", "contents is not a list of objects", resp)
        return History(
            agent_id=_opt_str(body.get("agent_id")) or agent_id,
            status=_required_str(body, "status", "history", resp),
            start_ts=_opt_int(body.get("start_ts")),
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
        return _json_object(resp)

    def interrupt(self, agent_id: str) -> dict[str, Any]:
        """Stop the agent's current speech or thinking. Not retried."""
        resp = self._request("POST", f"{_agent_path(agent_id)}/interrupt", json={}, retry=False)
        return _json_object(resp)

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
        """Send one call, retrying per policy; return the 2xx response or raise ConvoAIError."""
        policy = self._retry if retry else NO_RETRY
        if budget_s is not None:
            policy = dataclasses.replace(policy, budget_s=budget_s)
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            attempt_timeout = timeout or self._timeout
            if budget_s is not None:
                # Never let one attempt outlast the caller's budget (NCS waits only 10 s).
                remaining = max(0.5, budget_s - (self._clock() - started))
                attempt_timeout = _cap_timeout(attempt_timeout, remaining)
            try:
                resp = self._send(method, path, json, params, attempt_timeout, attempt)
            except UpstreamUnavailable as exc:
                error = exc
            else:
                if 200 <= resp.status_code < 300:
                    return resp
                error = error_from_response(resp)
            delay = policy.next_delay(attempt, error, self._clock() - started, self._rand())
            if delay is None:
                # Counted once per request, when it fails for good: a retry that then succeeds
                # is not an error anyone must act on (each retry is logged as convoai.retry).
                metrics.upstream_error("convoai", type(error).__name__)
                raise error
            logger.warning(
                "convoai.retry",
                extra={
                    "method": method,
                    "path": path,
                    "status": error.status,
                    "error": type(error).__name__,
                    "attempt": attempt,
                    "delay_ms": round(delay * 1000),
                },
            )
            self._sleep(delay)

    def _send(
        self,
        method: str,
        path: str,
        json: Any,
        params: dict[str, str | int] | None,
        timeout: TimeoutSpec,
        attempt: int,
    ) -> requests.Response:
        """One HTTP exchange; transport failures become UpstreamUnavailable chained to the cause.

        Only the method, path, status and timing are logged: headers carry the credentials
        and bodies carry provider API keys.
        """
        t0 = self._clock()
        status: int | None = None
        try:
            resp = self._session.request(
                method, self._project_url + path, json=json, params=params, timeout=timeout
            )
            status = resp.status_code
            return resp
        except (
            requests.Timeout,
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            # Not str(exc): keep the message to what we chose to say.
            raise UpstreamUnavailable(detail=f"{type(exc).__name__} on {method} {path}") from exc
        finally:
            logger.info(
                "convoai.request",
                extra={
                    "method": method,
                    "path": path,
                    "status": status,
                    "elapsed_ms": round((self._clock() - t0) * 1000),
                    "attempt": attempt,
                },
            )


def _agent_path(agent_id: str) -> str:
    if not agent_id:
        raise ValueError("agent_id is required")
    return f"/agents/{quote(agent_id, safe='')}"


def _encode_states(states: Sequence[str]) -> str:
    """State names to the comma-separated numeric codes of the list filter (``1,2``)."""
    if isinstance(states, str):
        states = (states,)
    if not states:
        raise ValueError("states must not be empty (omit it to get Agora's default, RUNNING)")
    codes = []
    for state in states:
        try:
            codes.append(STATE_CODES[state.upper()])
        except KeyError:
            raise ValueError(f"unknown agent state {state!r}") from None
    return ",".join(str(code) for code in codes)


def _agent(resp: requests.Response) -> Agent:
    body = _json_object(resp)
    created_at = _opt_int(body.get("create_ts"))
    if created_at is None:
        raise _malformed("agent", "missing create_ts", resp)
    return Agent(
        agent_id=_required_str(body, "agent_id", "agent", resp),
        status=_required_str(body, "status", "agent", resp),
        created_at=created_at,
    )


def _json_object(resp: requests.Response) -> dict[str, Any]:
    """The response body as a JSON object; an empty body counts as ``{}``."""
    if not resp.content:
        return {}
    try:
        body = resp.json()
    except ValueError:
        raise _malformed("response", "body is not JSON", resp) from None
    if not isinstance(body, dict):
        raise _malformed("response", "body is not a JSON object", resp)
    return body


def _required_str(
    body: dict[str, Any], key: str, what: str, resp: requests.Response | None = None
) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise _malformed(what, f"missing {key}", resp)
    return value


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: Any) -> int | None:
    """An integer field; tolerates numeric strings, ignores anything else (bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _malformed(what: str, problem: str, resp: requests.Response | None = None) -> UpstreamError:
    """A 2xx whose body we cannot use: an upstream fault, but not one a retry would fix.
    Always raised by the caller, so the request is counted as failed here."""
    metrics.upstream_error("convoai", metrics.MALFORMED_RESPONSE)
    return UpstreamError(
        status=resp.status_code if resp is not None else None,
        reason="MalformedResponse",
        detail=f"{what}: {problem}",
        response=resp,
    )


def _cap_timeout(timeout: TimeoutSpec, limit: float) -> TimeoutSpec:
    """``timeout`` with each part no longer than ``limit`` seconds."""
    if isinstance(timeout, tuple):
        connect, read = timeout
        return (min(connect, limit), min(read, limit))
    return min(timeout, limit)
