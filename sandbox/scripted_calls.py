"""Scripted test calls: ``POST /_sandbox/calls`` with ``"script": "<name>"`` (docs/sandbox.md).

The sandbox places the caller in a ``<persona>_<random>`` channel (which PERSONA_ROUTES sends to
the script's persona), waits for the agent the service starts there, plays the ready script's
turns through that agent (sandbox/conversation.py's ``play``, in-process), then hangs the caller
up. The outcome, ``ok`` or the one-line ScriptError, stays on the call (``GET /_sandbox/calls``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.agent_tools import AgentTools, Spawn
from sandbox.callers import Call, CallSpecError
from sandbox.conversation import CONNECTING, ScriptError, play, ready_scripts
from sandbox.errors import AgoraError
from sandbox.state import World

logger = logging.getLogger("sandbox")
#: How long a scripted caller waits for a running agent (tools connected) before hanging up.
AGENT_WAIT_S = 20.0
WAITING, PLAYING, OK, FAILED = "waiting", "playing", "ok", "failed"


class LocalAgents:
    """conversation.Agents inside the sandbox: its agent book and AgentTools, no HTTP."""

    def __init__(self, world: World, tools: AgentTools) -> None:
        self.world, self.tools = world, tools

    def agent(self, agent_id: str) -> dict[str, Any] | None:
        with self.world.lock:
            agent = self.world.agents.get(agent_id)
            return None if agent is None else agent.summary()

    def say(self, agent_id: str, text: str, tool: str | None,
            arguments: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self.tools.say(agent_id, text, tool, arguments)
        except AgoraError as exc:  # what SandboxAgents makes of the same refusal over HTTP
            raise ScriptError(f"the sandbox refused the caller's line: {exc.detail}") from None


class ScriptedCalls:
    """Prepares scripted calls, starts each script once its agent is ready, records outcomes."""

    def __init__(self, world: World, tools: AgentTools, hang_up: Callable[[str], None], *,
                 spawn: Spawn, wait_s: float = AGENT_WAIT_S) -> None:
        self.world, self.tools, self.hang_up = world, tools, hang_up
        self.spawn, self.wait_s = spawn, wait_s

    def prepare(self, spec: Any) -> tuple[str | None, Any]:
        """The ready script a call spec names (CallSpecError for any other name), and the spec
        for the caller: a ``<persona>_...`` channel unless one is given, and no timed leave
        unless ``duration_s`` is given (the caller hangs up once the script is played)."""
        if not isinstance(spec, dict) or "script" not in spec:
            return None, spec
        name, rest = spec["script"], {k: v for k, v in spec.items() if k != "script"}
        scripts = ready_scripts()
        if not isinstance(name, str) or name not in scripts:
            raise CallSpecError(f"script must be the name of a ready script "
                                f"({', '.join(scripts)})")
        script = scripts[name]
        if script.persona and "channel" not in rest:
            rest["channel"] = f"{script.persona}_{self.world.new_id(10, '0123456789abcdef')}"
        rest.setdefault("duration_s", None)
        return name, rest

    def attach(self, call: Call, name: str) -> None:
        """Mark a just-started call as scripted: its caller speaks only through the script."""
        with self.world.lock:
            call.script, call.script_state = name, WAITING
            presence = self.world.presence.get((call.channel, str(call.uid)))
            if presence is not None:
                presence.scripted = True

    def tick(self, now: float) -> None:
        """Start the script of every waiting call whose agent is ready; give up on those that
        waited too long (or whose caller left), and hang them up."""
        start: list[tuple[str, str, str]] = []
        give_up: list[str] = []
        with self.world.lock:
            for call in self.world.calls.values():
                if call.script_state != WAITING:
                    continue
                agent = next((a for a in self.world.agents.values()
                              if a.channel == call.channel and a.status == "RUNNING"
                              and a.tools_state not in CONNECTING), None)
                if agent is not None and call.left_at is None:
                    call.script_state = PLAYING
                    start.append((call.id, call.script, agent.agent_id))
                elif call.left_at is not None or now - call.joined_at >= self.wait_s:
                    call.script_state = FAILED
                    call.script_outcome = (
                        "the caller left before the agent was ready" if call.left_at is not None
                        else f"no agent was ready in {call.channel} within {self.wait_s:g} s")
                    give_up.append(call.id)
        for call_id in give_up:
            self._hang_up(call_id)
        for call_id, name, agent_id in start:
            self.spawn(lambda c=call_id, n=name, a=agent_id: self._play(c, n, a))

    def _play(self, call_id: str, name: str, agent_id: str) -> None:
        state, outcome = OK, OK
        try:
            play(ready_scripts()[name], LocalAgents(self.world, self.tools), agent_id,
                 echo=lambda line: logger.info("sandbox.script %s: %s", name, line),
                 wait_s=self.wait_s, sleep=self.world.clock.sleep)
        except ScriptError as exc:
            state, outcome = FAILED, str(exc)
        except Exception:  # keep the outcome honest; the traceback is logged
            logger.exception("sandbox.script_failed")
            state, outcome = FAILED, "the sandbox failed while playing the script (see its log)"
        finally:
            with self.world.lock:
                call = self.world.calls.get(call_id)
                if call is not None:
                    call.script_state, call.script_outcome = state, outcome
            self._hang_up(call_id)

    def _hang_up(self, call_id: str) -> None:
        try:
            self.hang_up(call_id)
        except KeyError:  # the sandbox was reset meanwhile
            pass
