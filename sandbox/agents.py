"""Simulated ConvoAI agents: the rules behind /join, /leave and the other agent endpoints.

No Flask here: each method takes plain values, returns the JSON to answer, or raises AgoraError.
Time-driven transitions live in sandbox/lifecycle.py.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.agent_tools import servers_of
from sandbox.errors import AgoraError, bad_field, not_found
from sandbox.lifecycle import (
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_HISTORY,
    LIVE_STATES,
    STATE_CODES,
    Agent,
    agent_event,
    begin_stop,
    stop_events,
    tick_agents,
)
from sandbox.ncs_sender import Delivery
from sandbox.state import World
from sandbox.tokens import TokenInvalid, verify_rtc_token
from sandbox.turns import interrupt as interrupt_turn
from sandbox.turns import page as turn_page
from sandbox.turns import record as record_turn
from sandbox.validation import validate_join

#: The values of /think's action fields (SPEC). Agora's SDK also models "append", which the
#: SPEC does not list: refused here, as we ASSUME Agora does.
THINK_ACTIONS = {
    "on_listening_action": ("inject", "interrupt", "ignore"),
    "on_thinking_action": ("interrupt", "ignore"),
    "on_speaking_action": ("interrupt", "ignore"),
}
#: The ``status`` of a join's 200 answer: what both of Agora's join examples (SPEC, reference
#: 2.1) show.
JOIN_ANSWER_STATUS = "RUNNING"


class AgentBook:
    """All agents of the sandbox, behind the world lock."""

    def __init__(self, world: World) -> None:
        self.world = world

    # -- requests ---------------------------------------------------------------------------

    def join(self, body: Any) -> dict[str, Any]:
        """Validate like Agora, then create a STARTING agent."""
        validate_join(body)
        props = body["properties"]
        config, now = self.world.config, self.world.clock.now()
        if config.app_certificate:
            self._check_token(props["token"], props["channel"], props["agent_rtc_uid"], now)
        # With a pipeline_id or an mllm block there may be no llm: the greeting and history
        # bound then come from the mllm block, else from Agora's defaults.
        llm = props.get("llm") or props.get("mllm") or {}
        with self.world.lock:
            if body["name"] in self.world.names_used:
                # Agora: "the same identifier cannot be used repeatedly", even once the agent
                # has stopped. The body is its ErrorResponse ({detail, reason}); the detail is
                # worded as in a 409 example published for Agora's Chinese-mainland service
                # (Shengwang): the global docs give no wording, we ASSUME the same.
                raise AgoraError(409, "TaskConflict",
                                 "create agent failed, code: 409, msg: task conflict")
            live = sum(a.status in LIVE_STATES for a in self.world.agents.values())
            if live >= self.world.concurrency_limit:
                raise AgoraError(422, "ConcurrencyLimitExceeded",
                                 f"{live} agents are active; the limit is "
                                 f"{self.world.concurrency_limit}")
            agent = Agent(
                agent_id=self.world.new_id(), name=body["name"], channel=props["channel"],
                agent_uid=props["agent_rtc_uid"], remote_uid=props["remote_rtc_uids"][0],
                labels=dict(props.get("labels") or {}),
                idle_timeout=props.get("idle_timeout", DEFAULT_IDLE_TIMEOUT_S),
                greeting=fill_template(llm.get("greeting_message", ""),
                                       llm.get("template_variables") or {}),
                max_history=llm.get("max_history", DEFAULT_MAX_HISTORY),
                created_at=now, sid=self.world.new_id(32, "0123456789ABCDEF"),
            )
            agent.mcp_servers = servers_of(props)
            if agent.mcp_servers:
                agent.tools_state = "pending"  # connected once RUNNING (agent_tools.py)
            self.world.names_used.add(agent.name)
            self.world.agents[agent.agent_id] = agent
            # Agora's join examples answer RUNNING although the agent is only in the channel
            # once its 101 arrives (a 200 means "accepted"); the sandbox answers the same, while
            # GET /agents/<id> shows STARTING until that 101. The service reads neither.
            return {**self._brief(agent), "status": JOIN_ANSWER_STATUS}

    def leave(self, agent_id: str) -> dict[str, Any]:
        """Start stopping a live agent; STOPPED follows after the stop delay."""
        with self.world.lock:
            agent = self._live(agent_id)
            if agent.status != "STOPPING":
                now = self.world.clock.now()
                interrupt_turn(agent.turn_log, now, "api_leave")
                begin_stop(agent, now, "OK")
            return {}

    def query(self, agent_id: str) -> dict[str, Any]:
        """GET /agents/<id>: state of any agent ever created (until reset)."""
        with self.world.lock:
            agent = self.world.agents.get(agent_id)
            if agent is None:
                raise not_found(agent_id)
            return {
                "agent_id": agent.agent_id, "name": agent.name, "status": agent.status,
                "start_ts": int(agent.created_at),
                "stop_ts": int(agent.stopped_at) if agent.stopped_at else 0,
                "message": agent.message,
            }

    def update(self, agent_id: str, body: Any) -> dict[str, Any]:
        """Runtime update: only ``token``, ``llm.system_messages`` and ``llm.params`` matter."""
        props = body.get("properties", {}) if isinstance(body, dict) else None
        if not isinstance(props, dict):
            raise bad_field("properties: Input should be a valid object")
        llm = props.get("llm", {})
        if not isinstance(llm, dict):
            raise bad_field("properties.llm: Input should be a valid object")
        if "system_messages" in llm and not _is_messages(llm["system_messages"]):
            raise bad_field("properties.llm.system_messages: Input should be a list of "
                            "{role, content} objects")
        if "params" in llm and not isinstance(llm["params"], dict):
            raise bad_field("properties.llm.params: Input should be a valid object")
        with self.world.lock:
            agent = self._live(agent_id)
            channel, uid = agent.channel, agent.agent_uid
        if "token" in props:
            if not isinstance(props["token"], str):
                raise bad_field("properties.token: Input should be a valid string")
            if self.world.config.app_certificate:
                self._check_token(props["token"], channel, uid, self.world.clock.now())
        with self.world.lock:
            return self._brief(self._live(agent_id))

    def history(self, agent_id: str) -> dict[str, Any]:
        """Conversation so far; Agora only serves it while the agent is RUNNING."""
        with self.world.lock:
            agent = self.world.agents.get(agent_id)
            if agent is None or agent.status != "RUNNING":
                raise not_found(agent_id)
            return {"agent_id": agent.agent_id, "start_ts": int(agent.created_at),
                    "status": agent.status, "contents": list(agent.history)}

    def speak(self, agent_id: str, body: Any) -> dict[str, Any]:
        """Broadcast text; it becomes an assistant turn in the history."""
        if not isinstance(body, dict) or "text" not in body:
            raise AgoraError(400, "MissingRequiredField", "text: Field required")
        text = body["text"]
        if not isinstance(text, str):
            raise bad_field("text: Input should be a valid string")
        if len(text.encode("utf-8")) > 512:
            raise bad_field("text: String should have at most 512 bytes")
        if body.get("priority", "INTERRUPT") not in ("INTERRUPT", "APPEND", "IGNORE"):
            raise bad_field("priority: Input should be one of: INTERRUPT, APPEND, IGNORE")
        if not isinstance(body.get("interruptable", True), bool):
            raise bad_field("interruptable: Input should be a valid boolean")
        with self.world.lock:
            agent = self._running(agent_id)
            now = self.world.clock.now()
            interrupt_turn(agent.turn_log, now, "api_speak")
            agent.remember("assistant", text)
            record_turn(agent.turn_log, "api_speak", now)
            return self._ack(agent)

    def interrupt(self, agent_id: str) -> dict[str, Any]:
        """Stop whatever the agent is saying: the turn still playing ends as interrupted."""
        with self.world.lock:
            agent = self._running(agent_id)
            interrupt_turn(agent.turn_log, self.world.clock.now())
            return self._ack(agent)

    def think(self, agent_id: str, body: Any) -> dict[str, Any]:
        """Custom instruction (reference 2.8): processed as the caller's input, so it becomes
        a user entry of the history and a turn. The sandbox has no LLM to answer it, and
        simulates no listening/thinking/speaking states for the ``on_*_action`` fields."""
        if not isinstance(body, dict) or "text" not in body:
            raise AgoraError(400, "MissingRequiredField", "text: Field required")
        if not isinstance(body["text"], str):
            raise bad_field("text: Input should be a valid string")
        for name, allowed in THINK_ACTIONS.items():
            if name in body and body[name] not in allowed:
                raise bad_field(f"{name}: Input should be one of: {', '.join(allowed)}")
        if not isinstance(body.get("interruptable", True), bool):
            raise bad_field("interruptable: Input should be a valid boolean")
        if not isinstance(body.get("metadata", {}), dict):
            raise bad_field("metadata: Input should be a valid object")
        with self.world.lock:
            agent = self._running(agent_id)
            agent.remember("user", body["text"])
            record_turn(agent.turn_log, "api_think", self.world.clock.now())
            return self._ack(agent)

    def turns(self, agent_id: str, *, page_index: int, page_size: int) -> dict[str, Any]:
        """GET /turns: any agent ever created (until reset), live or stopped. Agora keeps
        turns for 7 days; the sandbox keeps them until reset."""
        with self.world.lock:
            agent = self.world.agents.get(agent_id)
            if agent is None:
                raise not_found(agent_id)
            return turn_page(agent.turn_log, agent_id=agent.agent_id, name=agent.name,
                              channel=agent.channel, page_index=page_index,
                              page_size=page_size)

    def fail(self, agent_id: str, message: str) -> list[Delivery]:
        """Control API: make a live agent FAILED at once (102 with status FAILED)."""
        with self.world.lock:
            agent = self._live(agent_id)
            now = self.world.clock.now()
            agent.status, agent.stopped_at, agent.message = "FAILED", now, message
            return stop_events(self.world, agent)

    def expire(self, agent_id: str) -> list[Delivery]:
        """Control API: ConvoAI's 104, the warning that a live agent's token is about to expire
        (since ConvoAI 2.8). When Agora sends it is not documented; here, when asked."""
        with self.world.lock:
            agent = self._live(agent_id)
            return [agent_event(self.world, agent, 104, start_ts=int(agent.created_at),
                                message="Task exceeded maximum lifetime")]

    def listing(self, *, channel: str | None, from_time: float | None, to_time: float | None,
                states: set[int], limit: int, cursor: str | None) -> dict[str, Any]:
        """GET /agents: filtered by channel, creation time and state; paged by agent_id."""
        now = self.world.clock.now()
        low = now - 7200 if from_time is None else from_time
        high = now if to_time is None else to_time
        with self.world.lock:
            matched = [
                a for a in self.world.agents.values()
                if (channel is None or a.channel == channel)
                and low <= int(a.created_at) <= high and STATE_CODES[a.status] in states
            ]
        start = 0
        if cursor:
            ids = [a.agent_id for a in matched]
            if cursor not in ids:
                raise bad_field("cursor: unknown cursor")
            start = ids.index(cursor)
        page = matched[start : start + limit]
        after = matched[start + limit : start + limit + 1]
        return {
            "data": {"count": len(page), "list": [
                {"start_ts": int(a.created_at), "status": a.status, "agent_id": a.agent_id}
                for a in page
            ]},
            "meta": {"cursor": after[0].agent_id if after else "", "total": len(matched)},
            "status": "ok",
        }

    def summaries(self) -> list[dict[str, Any]]:
        with self.world.lock:
            return [a.summary() for a in self.world.agents.values()]

    def tick(self, now: float) -> list[Delivery]:
        """Advance every agent to ``now``; return the NCS events that became due."""
        return tick_agents(self.world, now)

    # -- helpers ----------------------------------------------------------------------------

    def _check_token(self, token: str, channel: str, uid: str, now: float) -> None:
        config = self.world.config
        try:
            verify_rtc_token(token, app_id=config.app_id, certificate=config.app_certificate,
                             channel=channel, uid=uid, now=now)
        except TokenInvalid as exc:
            raise bad_field(f"properties.token: {exc}") from exc

    def _live(self, agent_id: str) -> Agent:
        agent = self.world.agents.get(agent_id)
        if agent is None or agent.status not in LIVE_STATES:
            raise not_found(agent_id)
        return agent

    def _running(self, agent_id: str) -> Agent:
        agent = self.world.agents.get(agent_id)
        if agent is None or agent.status not in ("STARTING", "RUNNING"):
            raise not_found(agent_id)
        return agent

    def _brief(self, agent: Agent) -> dict[str, Any]:
        return {"agent_id": agent.agent_id, "create_ts": int(agent.created_at),
                "status": agent.status}

    def _ack(self, agent: Agent) -> dict[str, Any]:
        return {"agent_id": agent.agent_id, "channel": agent.channel,
                "start_ts": int(self.world.clock.now())}


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in value
    )


def fill_template(text: str, variables: dict[str, str]) -> str:
    """What ConvoAI does with ``{{name}}`` in greetings and prompts: put the variable's value in.
    A name without a value is left as written (Agora does not document that case)."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}",
                  lambda m: str(variables.get(m.group(1), m.group(0))), text)
