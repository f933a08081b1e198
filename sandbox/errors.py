"""Agora-shaped errors: every ConvoAI error body is ``{"detail": str, "reason": str}``."""

from __future__ import annotations

from typing import Any

#: Reason sent with an injected or generic error of each status. Agora publishes the reason
#: list (reference 4.3) but not the status each goes with; this pairing is our assumption.
DEFAULT_REASONS = {
    400: "InvalidFieldValue",
    401: "InvalidPermission",
    403: "InvalidPermission",
    404: "TaskNotFound",
    405: "NotImplemented",
    409: "TaskConflict",
    422: "ConcurrencyLimitExceeded",
    429: "ResourceQuotaLimitExceeded",
    500: "InternalError",
    502: "ServiceUnavailable",
    503: "ResourceAllocationFailed",
    504: "TaskOperationTimeout",
}


class AgoraError(Exception):
    """An error the sandbox answers exactly as ConvoAI would."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "reason": self.reason}


def bad_field(detail: str) -> AgoraError:
    """400 InvalidFieldValue, the answer to a present but unacceptable field."""
    return AgoraError(400, "InvalidFieldValue", detail)


def not_found(agent_id: str) -> AgoraError:
    """404 TaskNotFound: the agent never existed or has already stopped."""
    return AgoraError(404, "TaskNotFound", f"agent {agent_id} not found or already stopped")
