"""Tools of simulated agents: what ConvoAI does with a join's ``llm.mcp_servers``.

When a join enables tools (``advanced_features.enable_tools`` and a non-empty
``llm.mcp_servers``), the agent connects to each server once it is RUNNING, off the request
thread (ConvoAI answers the join at once and connects after starting): ``initialize``, the
``initialized`` notification, ``tools/list``. It keeps the tools ``allowed_tools`` lets through
(omitted or ``"*"``: all; ``[]``: none). A server it cannot use is reported like ConvoAI reports
errors: event 110 with ``errors[{module: "mcp", code, message}]``, and kept on the agent.

Callers of ``say`` (the control API, for scripted conversations) make the agent call a listed
tool with ``tools/call``; the exchange goes into the agent's history (the transcript) and its
``tool_calls``. Locking: the world lock is never held across a request to a server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

import requests

from sandbox.errors import AgoraError, not_found
from sandbox.lifecycle import Agent, agent_event
from sandbox.mcp_client import McpClient, McpError
from sandbox.outbox import Outbox
from sandbox.state import World
from sandbox.turns import record as record_turn

Spawn = Callable[[Callable[[], None]], None]
#: ConvoAI's default per-request timeout for an MCP server is not documented; we ASSUME 10 s.
DEFAULT_TIMEOUT_S = 10.0
#: How much of a tool's text result goes into the history entry.
HISTORY_TEXT_LIMIT = 500


def in_thread(work: Callable[[], None]) -> None:
    """The default Spawn: a daemon thread (the sandbox's unit tests run the work inline)."""
    threading.Thread(target=work, name="sandbox-mcp", daemon=True).start()


def servers_of(properties: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``mcp_servers`` entries a join asks its agent to use; none unless tools are on."""
    features = properties.get("advanced_features") or {}
    llm = properties.get("llm") or {}
    if features.get("enable_tools") is not True:
        return []
    return [dict(entry) for entry in llm.get("mcp_servers") or [] if isinstance(entry, dict)]


def allowed(entry: Mapping[str, Any], name: str) -> bool:
    """Whether ``allowed_tools`` lets the tool ``name`` through (omitted or ``"*"``: all)."""
    names = entry.get("allowed_tools")
    return names is None or names == "*" or "*" in names or name in names


def result_text(result: Mapping[str, Any]) -> str:
    """The text parts of a ``tools/call`` result, joined."""
    parts = [str(item.get("text", "")) for item in result.get("content") or []
             if isinstance(item, dict) and item.get("type") == "text"]
    return " ".join(p for p in parts if p)


class AgentTools:
    """Connects agents to their MCP servers and makes them call tools."""

    def __init__(self, world: World, outbox: Outbox, *, spawn: Spawn = in_thread,
                 session_factory: Callable[[], requests.Session] = requests.Session) -> None:
        self.world = world
        self.outbox = outbox
        self.spawn = spawn
        self.session_factory = session_factory

    def connect_due(self) -> None:
        """Start connecting every RUNNING agent whose servers are still pending."""
        with self.world.lock:
            due = [a for a in self.world.agents.values()
                   if a.status == "RUNNING" and a.tools_state == "pending"]
            for agent in due:
                agent.tools_state = "connecting"
            work = [(a.agent_id, [dict(s) for s in a.mcp_servers]) for a in due]
        for agent_id, servers in work:
            self.spawn(lambda a=agent_id, s=servers: self._connect(a, s))

    def _connect(self, agent_id: str, servers: list[dict[str, Any]]) -> None:
        tools: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for entry in servers:
            try:
                with self._client(entry) as client:
                    client.initialize()
                    listed = client.list_tools()
            except McpError as exc:
                errors.append({"module": "mcp", "turn_id": 0, "code": exc.code,
                               "message": f"MCP server {entry.get('name')}: {exc.message}"})
                continue
            tools += [{"server": entry.get("name"), "name": t["name"],
                       "description": t.get("description", ""),
                       "inputSchema": t.get("inputSchema") or {}}
                      for t in listed if allowed(entry, t["name"])]
        with self.world.lock:
            agent = self.world.agents.get(agent_id)
            if agent is None:
                return
            agent.tools = tools
            agent.mcp_errors += errors
            agent.tools_state = "failed" if errors else "ready"
            live = agent.status in ("STARTING", "RUNNING")
            event = agent_event(self.world, agent, 110, turn_id=0, errors=errors) \
                if errors and live else None
        if event is not None:
            self.outbox.publish([event])

    def say(self, agent_id: str, text: str, tool: str | None = None,
            arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The caller says ``text``; if ``tool`` is given, the agent calls it with
        ``arguments`` and the result is in the answer (``failed`` when the server could not
        be used at all). Raises AgoraError 404 for an agent not running, 409 for a tool it has
        not listed."""
        with self.world.lock:
            agent = self.world.agents.get(agent_id)
            if agent is None or agent.status != "RUNNING":
                raise not_found(agent_id)
            now = self.world.clock.now()
            if text:
                agent.remember("user", text)
                record_turn(agent.turn_log, "voice_input", now)
            if tool is None:
                return {"said": text}
            listed = next((t for t in agent.tools if t["name"] == tool), None)
            if listed is None:
                names = ", ".join(t["name"] for t in agent.tools) or "none"
                raise AgoraError(409, "ToolNotListed", f"the agent has no tool {tool} "
                                 f"(its tools: {names}; tools {agent.tools_state})")
            entry = next(dict(s) for s in agent.mcp_servers if s.get("name") == listed["server"])
            # Before the call, as an LLM's tool call precedes its result in the context: a tool
            # that ends the call (end_call) may stop the agent before its result comes back.
            agent.remember("assistant", f"[tool call] {tool} "
                                        f"{json.dumps(dict(arguments or {}), sort_keys=True)}")
        call: dict[str, Any] = {"at": now, "server": entry.get("name"), "tool": tool,
                                "arguments": dict(arguments or {})}
        try:
            with self._client(entry) as client:
                client.initialize()
                result = client.call_tool(tool, arguments or {})
        except McpError as exc:
            call.update(failed={"code": exc.code, "message": exc.message}, is_error=True,
                        text=exc.message)
        else:
            call.update(is_error=bool(result.get("isError")), text=result_text(result),
                        structured=result.get("structuredContent"))
        self._remember_call(agent_id, call)
        return {"said": text, **call}

    def _remember_call(self, agent_id: str, call: dict[str, Any]) -> None:
        """Put the tool's outcome in the history (the transcript the service saves) and, when
        the server failed, report it as ConvoAI does (110)."""
        with self.world.lock:
            agent: Agent = self.world.agents[agent_id]
            agent.tool_calls.append(call)
            outcome = "error" if call["is_error"] else "ok"
            # ASSUME: ConvoAI's history holds the LLM context, where a tool call is the
            # assistant's and its result a message of role "tool"; Agora does not document
            # how tool calls appear there.
            agent.remember("tool", f"{call['tool']} ({outcome}): "
                                   f"{call['text'][:HISTORY_TEXT_LIMIT]}")
            event = None
            if "failed" in call:
                error = {"module": "mcp", "turn_id": len(agent.turn_log),
                         "code": call["failed"]["code"],
                         "message": f"MCP server {call['server']}: {call['text']}"}
                agent.mcp_errors.append(error)
                event = agent_event(self.world, agent, 110, turn_id=error["turn_id"],
                                    errors=[error])
        if event is not None:
            self.outbox.publish([event])

    def _client(self, entry: Mapping[str, Any]) -> _ClosingClient:
        timeout_ms = entry.get("timeout_ms")
        timeout_s = timeout_ms / 1000 if isinstance(timeout_ms, int) and timeout_ms > 0 \
            else DEFAULT_TIMEOUT_S
        return _ClosingClient(McpClient(str(entry["endpoint"]), headers=entry.get("headers"),
                                        timeout_s=timeout_s, session=self.session_factory()))


class _ClosingClient:
    """Closes the client's session on exit."""

    def __init__(self, client: McpClient) -> None:
        self.client = client

    def __enter__(self) -> McpClient:
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.session.close()
