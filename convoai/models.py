"""What the ConvoAI client returns, and how it reads and writes the API's fields.

The frozen results of convoai/client.py (agents, their status, a page of the list, a
conversation), the agent state codes of the list filter, and the lenient readers of the
answers' fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


def encode_states(states: Sequence[str]) -> str:
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


def opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def opt_int(value: Any) -> int | None:
    """An integer field; tolerates numeric strings, ignores anything else (bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


@dataclass(frozen=True)
class CallStatus:
    """One call of ConvoAI's telephony (``GET /calls/{agent_id}``).

    ``state`` is ``answered`` or ``hangup`` as documented; ``reason`` (``request``: we hung up,
    ``hangup``: the far end did, ``failed``) only once it is over. Fields Agora does not send
    are None: the SDK marks every one of them optional."""

    agent_id: str
    state: str | None
    channel: str | None
    to_number: str | None
    from_number: str | None
    call_type: str | None
    create_ts: int | None
    stop_ts: int | None
    reason: str | None
