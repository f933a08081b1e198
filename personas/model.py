"""What a loaded persona is: plain data, ready for convoai/payload.py to turn into a join body."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from personas.booking_shape import BOOKING_TOOL_NAMES, BookingSpec
from privacy.redaction import Redactor

#: The call-control tools the service itself serves (tools/); a persona enables them by name.
BUILTIN_TOOL_NAMES = ("end_call", "transfer_call", "flag_urgent", "draw_tarot_cards", "opt_out")


def _empty_parameters() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


@dataclass(frozen=True)
class EnvRef:
    """A ``*_env`` field: where in the file, which variable, and what came of reading it."""

    field: str   # e.g. "tts.params.key_env"
    var: str     # e.g. "ELEVENLABS_API_KEY"
    status: str  # "set", "placeholder" (sandbox mode) or "missing"


@dataclass(frozen=True)
class OperatorTool:
    """A ``[[tools]]`` entry: a tool the service relays to the operator's own endpoint.

    ``url`` is resolved (from ``url`` or ``url_env``); ``secret`` is the ``whsec_`` Standard
    Webhooks secret read from ``secret_env`` ("" if unset), which signs every request.
    """

    name: str
    description: str
    url: str
    secret_env: str
    secret: str = field(repr=False)
    timeout_s: float = 5.0
    side_effects: bool = False
    parameters: Mapping[str, Any] = field(default_factory=_empty_parameters)


@dataclass(frozen=True)
class AnalysisSpec:
    """What to learn from a call once it has ended (``[analysis]``): a summary (its prompt), a
    success verdict (against this goal), and structured data (this JSON Schema)."""

    summary: str
    success: str
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class CostRates:
    """A persona's ``[cost]`` table: money per agent minute, in COST_CURRENCY."""

    llm_per_minute: float = 0.0
    tts_per_minute: float = 0.0
    asr_per_minute: float = 0.0


@dataclass(frozen=True)
class KnowledgeSpec:
    """A persona's ``[knowledge]``: the folder of Markdown and text files its agent searches
    (``search_knowledge``), as an absolute path."""

    folder: str


@dataclass(frozen=True)
class OutboundSpec:
    """A persona's ``[outbound]``: it places calls, and says it is an AI calling on someone's
    behalf. ``greeting`` is what the agent says first on an outbound call (None: the persona's
    ``greeting``); ``on_behalf_of`` names who the call is for."""

    on_behalf_of: str
    greeting: str | None = None


#: The tool a persona with ``[knowledge]`` gets (tools/knowledge_tools.py).
KNOWLEDGE_TOOL_NAME = "search_knowledge"


@dataclass(frozen=True, eq=False)
class Persona:
    """One agent: who it is, what it says, and the vendors it speaks through.

    ``llm``, ``tts`` and ``asr`` hold the vendor sections with every ``*_env`` field already
    replaced by the value it names (``llm`` keeps ``url``, ``api_key``, ``style``, ``vendor``,
    ``model``, ``max_history``, ``params`` and ``headers``); the payload copies them as they are.
    """

    name: str
    description: str
    source: str
    builtin: bool
    prompt: str
    greeting: str
    failure_message: str
    silence_reminder: str
    silence_timeout_s: int
    llm: Mapping[str, Any]
    tts: Mapping[str, Any]
    asr: Mapping[str, Any]
    turn_detection: Mapping[str, Any] | None = None
    interruption: Mapping[str, Any] | None = None
    idle_timeout: int = 30
    max_call_s: int = 1800
    goodbye: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    opt_out: bool = False
    builtin_tools: tuple[str, ...] = ()  # a subset of BUILTIN_TOOL_NAMES, in file order
    transfer_destinations: Mapping[str, str] = field(default_factory=dict)  # name -> +E164/sip:
    tools: tuple[OperatorTool, ...] = ()
    env: tuple[EnvRef, ...] = ()
    secrets: tuple[str, ...] = field(default=(), repr=False)
    analysis: AnalysisSpec | None = None
    #: What is removed from the call's transcript and tool arguments before they are stored:
    #: every built-in kind unless the file's ``redact`` says otherwise.
    redaction: Redactor = field(default_factory=Redactor)
    cost: CostRates = field(default_factory=CostRates)
    knowledge: KnowledgeSpec | None = None
    #: The diary its booking tools use (``[booking]``), or None.
    booking: BookingSpec | None = None
    #: How it introduces itself on outbound calls (``[outbound]``), or None.
    outbound: OutboundSpec | None = None

    @property
    def tool_names(self) -> tuple[str, ...]:
        """Every tool the agent may call: the built-ins enabled, the operator tools, the booking
        tools when it has a diary, then ``search_knowledge`` when it has a ``[knowledge]``
        folder."""
        return (*self.builtin_tools, *(tool.name for tool in self.tools),
                *(BOOKING_TOOL_NAMES if self.booking is not None else ()),
                *((KNOWLEDGE_TOOL_NAME,) if self.knowledge else ()))

    @property
    def missing_keys(self) -> tuple[EnvRef, ...]:
        """The ``*_env`` fields whose variable is not set (only possible in production)."""
        return tuple(ref for ref in self.env if ref.status == "missing")

    def greeting_for(self, direction: str | None) -> str:
        """What the agent says first on a call in ``direction``: the ``[outbound]`` greeting on
        an outbound call when there is one, else ``greeting``."""
        if direction == "outbound" and self.outbound is not None and self.outbound.greeting:
            return self.outbound.greeting
        return self.greeting

    def secret_values(self) -> list[str]:
        """Every value this persona read from the environment, for redaction."""
        return [s for s in self.secrets if s]
