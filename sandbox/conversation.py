"""Scripted conversations for ``flask simulate call --script FILE`` (docs/sandbox.md).

A script is a TOML file: an optional ``persona`` (the simulated call's channel is then
``<persona>_<random>``, which PERSONA_ROUTES sends to that persona) and a list of ``[[turn]]``
tables, each a ``caller`` line and, optionally, the ``tool`` that line leads the agent to call,
its ``arguments`` and the outcome to ``expect`` (``"ok"``, the default, or ``"error"``).

The sandbox's agent has no LLM: the script says which tool it calls. The player checks, before
the first line, that the agent listed every tool the script uses; then, line by line, the agent
calls the tool through the MCP server the join gave it (the service's ``/mcp``), and the result
goes into the agent's history, the call's transcript. Every problem is a ScriptError with a
one-line message.

An argument whose whole value is ``{{name}}`` is filled in when its turn is played: ``today``
(the date, UTC, YYYY-MM-DD), or a field of an earlier turn's structured result, the latest
first, with a dotted path into lists and tables (``{{reference}}``, ``{{slots.0}}``,
``{{bookings.0.reference}}``). A script cannot know a booking reference in advance; this lets it
use the one the booking turn gave.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import requests

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"
EXPECTATIONS = ("ok", "error")
SCRIPT_KEYS = {"persona", "description", "turn"}
TURN_KEYS = {"caller", "tool", "arguments", "expect"}
#: Tool states of an agent still connecting to its servers (sandbox/agent_tools.py).
CONNECTING = ("pending", "connecting")
#: An argument filled in from earlier results: the whole value is ``{{path}}``.
PLACEHOLDER = re.compile(r"^\{\{\s*([A-Za-z_][\w.]*)\s*\}\}$")


class ScriptError(Exception):
    """The script cannot be read, or the conversation did not go as the script expects."""


@dataclass(frozen=True)
class ScriptTurn:
    caller: str
    tool: str | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)
    expect: str = "ok"


@dataclass(frozen=True)
class Script:
    name: str
    turns: tuple[ScriptTurn, ...]
    persona: str | None = None
    description: str = ""

    @property
    def tools(self) -> list[str]:
        """The tools the script calls, in first-use order."""
        return list(dict.fromkeys(t.tool for t in self.turns if t.tool))


def find_script(name: str) -> Path:
    """A path as given, or the name of a ready script (``tarot`` -> sandbox/scripts/tarot.toml)."""
    path = Path(name)
    if path.exists() or path.suffix or "/" in name:
        return path
    return SCRIPTS_DIR / f"{name}.toml"


def ready_scripts() -> dict[str, Script]:
    """The ready scripts in sandbox/scripts, by name (``tarot``), in name order."""
    return {path.stem: load_script(str(path)) for path in sorted(SCRIPTS_DIR.glob("*.toml"))}


def load_script(name: str) -> Script:
    """Read and check a script file; ScriptError names the file and the first problem."""
    path = find_script(name)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScriptError(f"{path}: not valid TOML ({exc})") from None
    return parse_script(data, str(path))


def parse_script(data: Mapping[str, Any], name: str) -> Script:
    unknown = sorted(set(data) - SCRIPT_KEYS)
    if unknown:
        raise ScriptError(f"{name}: unknown key {unknown[0]!r} (expected persona, description, "
                          "turn)")
    persona = data.get("persona")
    if persona is not None and (not isinstance(persona, str) or not persona):
        raise ScriptError(f"{name}: persona must be a non-empty string")
    raw_turns = data.get("turn")
    if not isinstance(raw_turns, list) or not raw_turns:
        raise ScriptError(f"{name}: no [[turn]] tables")
    turns = []
    for number, raw in enumerate(raw_turns, start=1):
        where = f"{name}: turn {number}"
        unknown = sorted(set(raw) - TURN_KEYS)
        if unknown:
            raise ScriptError(f"{where}: unknown key {unknown[0]!r} (expected caller, tool, "
                              "arguments, expect)")
        caller, tool = raw.get("caller"), raw.get("tool")
        arguments, expect = raw.get("arguments", {}), raw.get("expect", "ok")
        if not isinstance(caller, str) or not caller.strip():
            raise ScriptError(f"{where}: caller must be a non-empty string")
        if tool is not None and (not isinstance(tool, str) or not tool):
            raise ScriptError(f"{where}: tool must be a non-empty string")
        if not isinstance(arguments, dict):
            raise ScriptError(f"{where}: arguments must be a table")
        if tool is None and ("arguments" in raw or "expect" in raw):
            raise ScriptError(f"{where}: arguments and expect need a tool")
        if expect not in EXPECTATIONS:
            raise ScriptError(f"{where}: expect must be \"ok\" or \"error\", not {expect!r}")
        turns.append(ScriptTurn(caller, tool, arguments, expect))
    return Script(name=name, turns=tuple(turns), persona=persona,
                  description=str(data.get("description", "")))


class Agents(Protocol):
    """The sandbox's control API, as far as the player needs it."""

    def agent(self, agent_id: str) -> dict[str, Any] | None: ...

    def say(self, agent_id: str, text: str, tool: str | None,
            arguments: Mapping[str, Any]) -> dict[str, Any]: ...


class SandboxAgents:
    """Agents over HTTP: ``/_sandbox/agents`` and ``/_sandbox/agents/<id>/say``."""

    def __init__(self, url: str, session: requests.Session | None = None,
                 timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout_s = timeout_s

    def agent(self, agent_id: str) -> dict[str, Any] | None:
        try:
            data = self.session.get(f"{self.url}/_sandbox/agents", timeout=self.timeout_s).json()
        except (requests.RequestException, ValueError) as exc:
            raise ScriptError(f"cannot read the sandbox's agents ({type(exc).__name__})") from None
        return next((a for a in data.get("agents", []) if a.get("agent_id") == agent_id), None)

    def say(self, agent_id: str, text: str, tool: str | None,
            arguments: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text}
        if tool:
            body.update(tool=tool, arguments=dict(arguments))
        try:
            response = self.session.post(f"{self.url}/_sandbox/agents/{agent_id}/say",
                                         json=body, timeout=self.timeout_s)
            answer = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ScriptError(f"the sandbox did not answer the caller's line "
                              f"({type(exc).__name__})") from None
        if response.status_code != 200:
            said = answer.get("detail") or answer.get("error") or response.status_code
            raise ScriptError(f"the sandbox refused the caller's line: {said}")
        return answer


def wait_for_tools(agents: Agents, agent_id: str, *, wait_s: float,
                   sleep: Callable[[float], None] = time.sleep,
                   monotonic: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """The agent once it is running and has finished connecting to its MCP servers (or
    ``wait_s`` passed). An agent is still STARTING for a moment after its join; only a running
    agent hears the caller."""
    deadline = monotonic() + wait_s
    while True:
        agent = agents.agent(agent_id)
        if agent is None:
            raise ScriptError(f"the sandbox has no agent {agent_id}")
        ready = agent.get("state", "RUNNING") != "STARTING" \
            and agent.get("tools_state") not in CONNECTING
        if ready or monotonic() >= deadline:
            return agent
        sleep(0.1)


def check_tools(script: Script, agent: Mapping[str, Any]) -> None:
    """Every tool the script calls is among the agent's listed tools, else ScriptError."""
    needed = script.tools
    if not needed:
        return
    state = agent.get("tools_state")
    if state == "none":
        raise ScriptError(f"{script.name}: the agent has no tools (the join did not enable "
                          f"them); the script calls {', '.join(needed)}")
    if state in CONNECTING:
        raise ScriptError(f"{script.name}: the agent is still connecting to its MCP server")
    listed = [t["name"] for t in agent.get("tools") or []]
    missing = [name for name in needed if name not in listed]
    if missing:
        errors = agent.get("mcp_errors") or []
        why = f"; MCP error: {errors[-1].get('message')}" if errors else ""
        raise ScriptError(f"{script.name}: the agent did not list the tool {missing[0]} (it "
                          f"listed: {', '.join(listed) or 'none'}){why}")


def play(script: Script, agents: Agents, agent_id: str, *, echo: Callable[[str], None],
         wait_s: float = 10.0, pause_s: float = 0.3,
         sleep: Callable[[float], None] = time.sleep) -> list[dict[str, Any]]:
    """Check the agent's tools, then play every turn; the answers, in order. Raises ScriptError
    (one line) on a missing tool or a result the script does not expect."""
    check_tools(script, wait_for_tools(agents, agent_id, wait_s=wait_s, sleep=sleep))
    answers = []
    known: dict[str, Any] = {"today": time.strftime("%Y-%m-%d", time.gmtime())}
    for number, turn in enumerate(script.turns, start=1):
        if number > 1:
            sleep(pause_s)
        arguments = fill(turn.arguments, known, f"turn {number}")
        answer = agents.say(agent_id, turn.caller, turn.tool, arguments)
        answers.append(answer)
        if not answer.get("is_error") and isinstance(answer.get("structured"), dict):
            known.update(answer["structured"])
        echo(f"turn {number}: caller: {_short(turn.caller, 60)!r}" + (
            f" -> {turn.tool}({_compact(arguments)}) -> {_outcome(answer)}: "
            f"{_short(answer.get('text', ''), 70)}" if turn.tool else ""))
        if not turn.tool:
            continue
        if "failed" in answer:
            failed = answer["failed"]
            raise ScriptError(f"turn {number}: {turn.tool} could not be called: "
                              f"{failed.get('message')} (code {failed.get('code')})")
        if _outcome(answer) != turn.expect:
            raise ScriptError(f"turn {number}: {turn.tool} gave {_outcome(answer)}, the script "
                              f"expects {turn.expect}: {_short(answer.get('text', ''), 100)}")
    return answers


def fill(arguments: Mapping[str, Any], known: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The arguments with every ``{{path}}`` value replaced from ``known``."""
    out: dict[str, Any] = {}
    for key, value in arguments.items():
        if isinstance(value, dict):
            out[key] = fill(value, known, where)
            continue
        match = PLACEHOLDER.match(value) if isinstance(value, str) else None
        if match is None:
            out[key] = value
            continue
        found: Any = known
        for part in match[1].split("."):
            if isinstance(found, list) and part.isdigit() and int(part) < len(found):
                found = found[int(part)]
            elif isinstance(found, dict) and part in found:
                found = found[part]
            else:
                raise ScriptError(f"{where}: {value} has no value (no earlier result gave "
                                  f"{match[1]})")
        out[key] = found
    return out


def _outcome(answer: Mapping[str, Any]) -> str:
    return "error" if answer.get("is_error") else "ok"


def _compact(arguments: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in arguments.items())


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
