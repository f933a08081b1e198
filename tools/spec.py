"""A tool as the agent sees it and as the service runs it (tools/catalog.py lists them), and
what running one comes to (:class:`Done`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from personas.model import OperatorTool


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: Mapping[str, Any]
    #: Exactly once per call and canonical arguments (the ledger's claim).
    once: bool
    timeout_s: float
    #: The persona's declaration, for operator tools; None for a built-in.
    operator: OperatorTool | None = field(default=None, repr=False)
    #: Who runs it: "builtin" (tools/builtin.py), "operator" (tools/relay.py), "booking"
    #: (tools/booking_tools.py) or "knowledge".
    family: str = "builtin"

    def as_mcp(self) -> dict[str, Any]:
        """The tool as ``tools/list`` shows it."""
        return {"name": self.name, "description": self.description,
                "inputSchema": dict(self.input_schema),
                "annotations": {"destructiveHint": self.once, "openWorldHint":
                                self.operator is not None}}


#: A side effect that may or may not have happened (its run was cut off by a worker's death).
OUTCOME_UNKNOWN = "outcome_unknown"


@dataclass(frozen=True)
class Done:
    outcome: str  # ok, or a short reason for the ledger, the timeline and the metrics
    text: str
    structured: dict[str, Any] | None = None

    @property
    def is_error(self) -> bool:
        return self.outcome != "ok"

    @property
    def final(self) -> bool:
        """Whether this answers every later repeat: a success, or an outcome nobody can know
        (a run cut off mid-way), which must not be risked twice. Other errors did nothing, so
        a later repeat runs again."""
        return self.outcome in ("ok", OUTCOME_UNKNOWN)
