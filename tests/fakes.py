"""Test doubles for the edges the unit tests do not cross: the clock and ConvoAI."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from convoai.errors import AgentNotFound, ConvoAIError, TaskConflict
from convoai.models import Agent, AgentStatus, AgentSummary, History


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeAgent:
    agent_id: str
    name: str
    channel: str
    labels: dict[str, str]
    running: bool = True
    history: list[dict[str, str]] = field(default_factory=list)
    spoken: list[str] = field(default_factory=list)


@dataclass
class FakeConvoAI:
    """Behaves like ConvoAI for the calls the service makes: names are unique (409 on reuse),
    leave (or update) of an unknown or stopped agent is 404. ``join_errors`` and
    ``update_errors`` are raised by the next joins and updates."""

    agents: dict[str, FakeAgent] = field(default_factory=dict)
    join_errors: list[ConvoAIError] = field(default_factory=list)
    leave_errors: list[ConvoAIError] = field(default_factory=list)
    update_errors: list[ConvoAIError] = field(default_factory=list)
    call_errors: list[ConvoAIError] = field(default_factory=list)
    hangup_errors: list[ConvoAIError] = field(default_factory=list)
    #: What every /call sent (numbers, gateway uid and token, properties), by agent name.
    placed: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: The properties of every join, by agent name.
    joined: dict[str, dict[str, Any]] = field(default_factory=dict)
    on_join: Callable[[str], None] | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def join(self, name: str, properties: dict[str, Any], **_: Any) -> Agent:
        with self._lock:
            self.calls.append(("join", name))
            self.joined[name] = properties
            if self.join_errors:
                raise self.join_errors.pop(0)
            if any(a.name == name for a in self.agents.values()):
                raise TaskConflict(status=409, reason="TaskConflict", detail="name in use")
            agent_id = f"agent-{next(self._ids)}"
            self.agents[agent_id] = FakeAgent(agent_id, name, properties["channel"],
                                              dict(properties.get("labels", {})))
        if self.on_join:
            self.on_join(agent_id)
        return Agent(agent_id=agent_id, status="RUNNING", created_at=0)

    def leave(self, agent_id: str) -> None:
        with self._lock:
            self.calls.append(("leave", agent_id))
            if self.leave_errors:
                raise self.leave_errors.pop(0)
            agent = self.agents.get(agent_id)
            if agent is None or not agent.running:
                raise AgentNotFound(status=404, reason="TaskNotFound", detail="no such agent")
            agent.running = False

    def update(self, agent_id: str, properties: dict[str, Any], **_: Any) -> Agent:
        with self._lock:
            self.calls.append(("update", agent_id))
            self.updates.append((agent_id, properties))
            if self.update_errors:
                raise self.update_errors.pop(0)
            agent = self.agents.get(agent_id)
            if agent is None or not agent.running:
                raise AgentNotFound(status=404, reason="TaskNotFound", detail="no such agent")
            return Agent(agent_id=agent_id, status="RUNNING", created_at=0)

    def find_by_name(self, name: str, **_: Any) -> AgentStatus | None:
        with self._lock:
            for agent in self.agents.values():
                if agent.name == name and agent.running:
                    return AgentStatus(agent_id=agent.agent_id, name=name, status="RUNNING",
                                       start_ts=0, stop_ts=None, message=None)
        return None

    def history(self, agent_id: str, **_: Any) -> History:
        with self._lock:
            self.calls.append(("history", agent_id))
            agent = self.agents.get(agent_id)
            if agent is None or not agent.running:
                raise AgentNotFound(status=404, reason="TaskNotFound", detail="no such agent")
            return History(agent_id=agent_id, status="RUNNING", start_ts=0,
                           contents=tuple(agent.history))

    def speak(self, agent_id: str, text: str, **_: Any) -> dict[str, Any]:
        with self._lock:
            self.calls.append(("speak", agent_id))
            agent = self.agents.get(agent_id)
            if agent is None or not agent.running:
                raise AgentNotFound(status=404, reason="TaskNotFound", detail="no such agent")
            agent.spoken.append(text)
            agent.history.append({"role": "assistant", "content": text})
            return {"agent_id": agent_id}

    def query(self, agent_id: str) -> AgentStatus:
        with self._lock:
            self.calls.append(("query", agent_id))
            agent = self.agents.get(agent_id)
            if agent is None:
                raise AgentNotFound(status=404, reason="TaskNotFound", detail="no such agent")
            return AgentStatus(agent_id=agent_id, name=agent.name,
                               status="RUNNING" if agent.running else "STOPPED", start_ts=0,
                               stop_ts=None, message=None)

    def iter_agents(self, **_: Any) -> Any:
        """Like ConvoAI's list: ids and states, no names."""
        with self._lock:
            self.calls.append(("list", ""))
            return [AgentSummary(agent_id=a.agent_id, status="RUNNING", start_ts=0)
                    for a in self.agents.values() if a.running]

    def add_foreign(self, name: str, channel: str = "elsewhere") -> str:
        """An agent this service did not start (another service, or a lost record)."""
        with self._lock:
            agent_id = f"agent-{next(self._ids)}"
            self.agents[agent_id] = FakeAgent(agent_id, name, channel, {})
            return agent_id

    # -- ConvoAI's telephony (convoai/telephony.py) --

    def place_call(self, name: str, *, to_number: str, from_number: str, rtc_uid: str,
                   rtc_token: str, properties: dict[str, Any]) -> str:
        """Like a join (same names, 409 on reuse) that also dials; ``call_errors`` first."""
        with self._lock:
            self.calls.append(("call", name))
            self.placed[name] = {"to_number": to_number, "from_number": from_number,
                                 "rtc_uid": rtc_uid, "rtc_token": rtc_token,
                                 "properties": properties}
            if self.call_errors:
                raise self.call_errors.pop(0)
            if any(a.name == name for a in self.agents.values()):
                raise TaskConflict(status=409, reason="TaskConflict", detail="name in use")
            agent_id = f"agent-{next(self._ids)}"
            self.agents[agent_id] = FakeAgent(agent_id, name, properties["channel"],
                                              dict(properties.get("labels", {})))
            return agent_id

    def hang_up_call(self, agent_id: str) -> bool:
        """The call's agent leaves with it; False (404) when it is gone already."""
        with self._lock:
            self.calls.append(("hangup", agent_id))
            if self.hangup_errors:
                raise self.hangup_errors.pop(0)
            agent = self.agents.get(agent_id)
            if agent is None or not agent.running:
                return False
            agent.running = False
            return True

    def running(self) -> list[FakeAgent]:
        return [a for a in self.agents.values() if a.running]

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.calls if k == kind)


@dataclass
class FakeGateway:
    """The SIP gateway's call control as SipService uses it: transfers and hang-ups recorded."""

    transfers: list[tuple[str, str]] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    transfer_errors: list[Exception] = field(default_factory=list)
    end_call_errors: list[Exception] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def transfer(self, callid: str, destination: str, *, leg: str | None = None) -> None:
        with self._lock:
            if self.transfer_errors:
                raise self.transfer_errors.pop(0)
            self.transfers.append((callid, destination))

    def end_call(self, callid: str) -> None:
        with self._lock:
            if self.end_call_errors:
                raise self.end_call_errors.pop(0)
            self.ended.append(callid)
