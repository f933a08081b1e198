"""Injected faults: slow or failing ConvoAI answers and unreliable NCS delivery.

``join_errors``/``leave_errors`` are queues consumed one entry per request. An entry is
an HTTP status (answered with an Agora-shaped body), the string ``"timeout"`` (sleep
``timeout_s``, then 504), or an object ``{"status", "reason"?, "detail"?, "sleep_s"?, "apply"?}``
where ``apply: true`` performs the operation anyway before answering the error (a join that
"failed" but started an agent).

``outbound_results`` is consumed one entry per SIP gateway ``outbound`` request: ``"answered"``,
``"Busy"``, ``"Invalid"`` or ``"hang"`` (no answer for ``outbound_hang_s``, then 503).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sandbox.errors import DEFAULT_REASONS, AgoraError

OUTBOUND_RESULTS = ("answered", "Busy", "Invalid", "hang")


@dataclass(frozen=True)
class InjectedError:
    """One queued failure, already normalised."""

    status: int
    reason: str
    detail: str
    sleep_s: float = 0.0
    apply: bool = False

    def error(self) -> AgoraError:
        return AgoraError(self.status, self.reason, self.detail)


@dataclass
class Faults:
    """The current fault settings; mutated only under the sandbox lock."""

    join_latency_s: float = 0.0
    leave_latency_s: float = 0.0
    timeout_s: float = 30.0
    join_errors: list[InjectedError] = field(default_factory=list)
    leave_errors: list[InjectedError] = field(default_factory=list)
    concurrency_limit: int | None = None
    ncs_drop: float = 0.0
    ncs_duplicate: float = 0.0
    ncs_reorder: float = 0.0
    outbound_results: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def merge(self, update: dict[str, Any]) -> None:
        """Apply a partial update; raise ValueError (nothing changed) if any value is bad."""
        if not isinstance(update, dict):
            raise ValueError("faults must be a JSON object")
        staged: dict[str, Any] = {}
        for name, value in update.items():
            if name in ("join_latency_s", "leave_latency_s", "timeout_s"):
                staged[name] = _number(name, value, 0.0, 3600.0)
            elif name in ("ncs_drop", "ncs_duplicate", "ncs_reorder"):
                staged[name] = _number(name, value, 0.0, 1.0)
            elif name in ("join_errors", "leave_errors"):
                if not isinstance(value, list):
                    raise ValueError(f"{name} must be a list")
                timeout = staged.get("timeout_s", update.get("timeout_s", self.timeout_s))
                staged[name] = [_injected(name, item, timeout) for item in value]
            elif name == "outbound_results":
                if not isinstance(value, list) or any(v not in OUTBOUND_RESULTS for v in value):
                    raise ValueError("outbound_results must be a list of: "
                                     + ", ".join(OUTBOUND_RESULTS))
                staged[name] = list(value)
            elif name == "concurrency_limit":
                if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                          or value < 0):
                    raise ValueError("concurrency_limit must be a non-negative integer or null")
                staged[name] = value
            else:
                raise ValueError(f"unknown fault {name!r}")
        for name, value in staged.items():
            setattr(self, name, value)

    def take(self, kind: str) -> InjectedError | None:
        """Pop the next queued error for ``kind`` ("join" or "leave"), if any."""
        queue = self.join_errors if kind == "join" else self.leave_errors
        return queue.pop(0) if queue else None

    def take_outbound(self) -> str | None:
        """Pop the next queued outbound call result, if any."""
        return self.outbound_results.pop(0) if self.outbound_results else None


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}]")
    return float(value)


def _injected(name: str, item: Any, timeout_s: float) -> InjectedError:
    if item == "timeout":
        item = {"status": 504, "sleep_s": timeout_s, "detail": "request timed out"}
    if isinstance(item, int) and not isinstance(item, bool):
        item = {"status": item}
    if not isinstance(item, dict) or not isinstance(item.get("status"), int):
        raise ValueError(f"{name} entries must be a status, \"timeout\" or {{\"status\": ...}}")
    status = item["status"]
    if not 400 <= status <= 599:
        raise ValueError(f"{name}: status {status} is not an HTTP error status")
    return InjectedError(
        status=status,
        reason=str(item.get("reason") or DEFAULT_REASONS.get(status, "InternalError")),
        detail=str(item.get("detail") or f"injected sandbox error {status}"),
        sleep_s=_number(f"{name}.sleep_s", item.get("sleep_s", 0.0), 0.0, 3600.0),
        apply=bool(item.get("apply", False)),
    )
