"""Agent model and the time-driven part of its life: STARTING -> RUNNING -> STOPPING -> STOPPED.

Transitions use the scheduled instant (created + start delay, ...), not the instant of the tick,
so results do not depend on how often the ticker runs. Callers hold the world lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.ncs_sender import Delivery
from sandbox.state import World
from sandbox.turns import Turn
from sandbox.turns import record as record_turn

#: State names and the numeric codes the list filter uses (reference 4.1).
STATE_CODES = {"IDLE": 0, "STARTING": 1, "RUNNING": 2, "STOPPING": 3, "STOPPED": 4,
               "RECOVERING": 5, "FAILED": 6}
LIVE_STATES = ("STARTING", "RUNNING", "STOPPING")
DEFAULT_IDLE_TIMEOUT_S = 30
DEFAULT_MAX_HISTORY = 32
SCRIPT = [
    ("Hello, can you hear me?", "Yes, I can hear you clearly. How can I help?"),
    ("I would like to book an appointment.", "Of course. Which day suits you?"),
    ("Tomorrow morning, if possible.", "Tomorrow at ten is free. Shall I book it?"),
    ("Yes, please.", "Done: you are booked for tomorrow at ten."),
    ("Thank you.", "You're welcome. Is there anything else?"),
    ("No, that's all. Goodbye.", "Goodbye, and have a nice day."),
]


@dataclass
class Agent:
    """One agent as the sandbox tracks it."""

    agent_id: str
    name: str
    channel: str
    agent_uid: str
    remote_uid: str
    labels: dict[str, str]
    idle_timeout: int
    greeting: str
    max_history: int
    created_at: float
    sid: str
    status: str = "STARTING"
    running_at: float | None = None
    stopping_at: float | None = None
    stopped_at: float | None = None
    message: str = ""
    history: list[dict[str, str]] = field(default_factory=list)
    turns: int = 0
    next_turn_at: float | None = None
    #: Every turn so far (greeting, scripted exchanges, /speak, /think), for /turns.
    turn_log: list[Turn] = field(default_factory=list)
    #: The join's ``llm.mcp_servers`` when it enabled tools (headers included: never shown).
    mcp_servers: list[dict[str, Any]] = field(default_factory=list)
    #: none (no tools) | pending | connecting | ready | failed (sandbox/agent_tools.py)
    tools_state: str = "none"
    #: The tools listed and allowed: {server, name, description, inputSchema}.
    tools: list[dict[str, Any]] = field(default_factory=list)
    #: Every MCP failure reported with a 110: {module, turn_id, code, message}.
    mcp_errors: list[dict[str, Any]] = field(default_factory=list)
    #: Every tools/call made: {at, server, tool, arguments, is_error, text, ...}.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Everything the control API shows about this agent."""
        return {
            "agent_id": self.agent_id, "name": self.name, "channel": self.channel,
            "state": self.status, "labels": self.labels, "agent_rtc_uid": self.agent_uid,
            "remote_uid": self.remote_uid, "idle_timeout": self.idle_timeout,
            "created_at": self.created_at, "running_at": self.running_at,
            "stopping_at": self.stopping_at, "stopped_at": self.stopped_at,
            "stop_message": self.message, "turns": self.turns, "history": list(self.history),
            "mcp_servers": [{k: v for k, v in s.items() if k != "headers"}
                            for s in self.mcp_servers],
            "tools_state": self.tools_state, "tools": list(self.tools),
            "mcp_errors": list(self.mcp_errors), "tool_calls": list(self.tool_calls),
        }

    def remember(self, role: str, content: str) -> None:
        self.history.append({"role": role, "content": content})
        del self.history[: max(0, len(self.history) - self.max_history)]


def tick_agents(world: World, now: float) -> list[Delivery]:
    """Advance every agent to ``now``; return the NCS events that became due."""
    events: list[Delivery] = []
    config = world.config
    with world.lock:
        for agent in world.agents.values():
            if agent.status == "STARTING" and now >= agent.created_at + config.start_delay_s:
                agent.status = "RUNNING"
                agent.running_at = agent.created_at + config.start_delay_s
                if agent.greeting:
                    agent.remember("assistant", agent.greeting)
                    record_turn(agent.turn_log, "greeting", agent.running_at)
                events.append(agent_event(world, agent, 101, start_ts=int(agent.created_at)))
            if agent.status == "RUNNING":
                _converse(world, agent, now)
            if agent.status == "STOPPING" and now >= agent.stopping_at + config.stop_delay_s:
                agent.status = "STOPPED"
                agent.stopped_at = agent.stopping_at + config.stop_delay_s
                events += stop_events(world, agent)
    return events


def _converse(world: World, agent: Agent, now: float) -> None:
    """Scripted turns while the caller is present; idle exit once they have gone.

    Presence is only known for callers the sandbox simulates (/_sandbox/calls, SIP gateway
    calls) or is told about (/_sandbox/presence); an agent whose caller the sandbox never saw
    neither talks nor idles out.
    """
    presence = world.presence.get((agent.channel, agent.remote_uid))
    interval = world.config.turn_interval_s
    if presence is not None and presence.present and presence.scripted:
        return  # a scripted caller speaks through /_sandbox/agents/<id>/say only
    if presence is not None and presence.present:
        if agent.next_turn_at is None:
            agent.next_turn_at = max(agent.running_at, presence.since) + interval
        while agent.next_turn_at <= now and agent.turns < world.config.max_turns:
            user, reply = SCRIPT[agent.turns % len(SCRIPT)]
            agent.remember("user", user)
            agent.remember("assistant", reply)
            record_turn(agent.turn_log, "voice_input", agent.next_turn_at)
            agent.turns += 1
            agent.next_turn_at += interval
        return
    agent.next_turn_at = None
    if presence is not None and agent.idle_timeout > 0:
        idle_from = max(presence.since, agent.running_at)
        if now - idle_from >= agent.idle_timeout:
            begin_stop(agent, idle_from + agent.idle_timeout, "Idle for too long")


def begin_stop(agent: Agent, at: float, message: str) -> None:
    """STOPPING from ``at``; the stop message goes out with the 102 event."""
    agent.status, agent.stopping_at, agent.message = "STOPPING", at, message


def stop_events(world: World, agent: Agent) -> list[Delivery]:
    """102 agent left, 103 history, then 112 turns finished (what ConvoAI sends once an agent
    has stopped; 112 since ConvoAI 2.7)."""
    stop_ts = int(agent.stopped_at)
    return [
        agent_event(world, agent, 102, start_ts=int(agent.created_at), stop_ts=stop_ts,
                    status=agent.status, message=agent.message),
        agent_event(world, agent, 103, start_ts=int(agent.created_at), stop_ts=stop_ts,
                    contents=list(agent.history)),
        agent_event(world, agent, 112, start_ts=int(agent.created_at), stop_ts=stop_ts,
                    **finished_turns(agent)),
    ]


#: ConvoAI puts at most this many turns in one 112 and sets ``is_truncated`` past it. Which
#: turns it keeps is not documented: the sandbox keeps the first.
MAX_REPORTED_TURNS = 200


def finished_turns(agent: Agent) -> dict[str, Any]:
    """The turns part of a 112: the same turns ``/turns`` reports (sandbox/turns.py), except
    that 112 gives the latency segments as an object, where ``/turns`` gives a list."""
    turns = []
    for turn in agent.turn_log[:MAX_REPORTED_TURNS]:
        entry = turn.public(agent.agent_id, agent.channel)
        entry["metrics"]["segmented_latency_ms"] = dict(turn.segments)
        turns.append(entry)
    return {"total_turn_count": len(agent.turn_log),
            "is_truncated": len(agent.turn_log) > MAX_REPORTED_TURNS, "turns": turns}


def agent_event(world: World, agent: Agent, event_type: int, **fields: Any) -> Delivery:
    """A ConvoAI (productId 17) notification about ``agent``, signed with the ConvoAI secret."""
    payload: dict[str, Any] = {"agent_id": agent.agent_id, "name": agent.name,
                               "channel": agent.channel}
    if agent.labels:
        payload["labels"] = dict(agent.labels)
    payload.update(fields)
    return Delivery(
        notice_id=world.new_notice_id(), product_id=17, event_type=event_type, sid=agent.sid,
        channel=agent.channel, payload=payload, secret=world.config.convoai_secret,
    )
