"""Operator tools: a tool call forwarded to the operator's endpoint, signed.

The request is POST JSON ``{"tool", "arguments", "call": {...}}`` signed by the Standard
Webhooks convention with the tool's ``whsec_`` secret, plus an ``Idempotency-Key``: the ledger's
id of the tool call, the same on every retry of one request, so an operator that remembers keys
can refuse to act twice even if this service ever sends twice (a worker killed mid-request).

Only the configured URL is called: no redirects are followed, bodies are capped both ways, and
a timeout, a non-2xx, an oversized or a non-JSON answer becomes a short error the agent can say.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from personas.model import OperatorTool
from upstream.signing import signed_headers

logger = logging.getLogger(__name__)

#: Most bytes sent (the arguments and the call) and read back (the operator's answer).
MAX_REQUEST_BYTES = 32 * 1024
MAX_RESPONSE_BYTES = 64 * 1024
#: Longest text handed to the agent from an answer without a ``text`` field.
MAX_TEXT_CHARS = 4000
CONNECT_TIMEOUT_S = 3.05


@dataclass(frozen=True)
class RelayOutcome:
    """What came of one request: ``outcome`` is ok or why not (for the ledger and metrics);
    ``text`` what the agent reads; ``structured`` the operator's JSON on success."""

    outcome: str
    text: str
    structured: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class OperatorRelay:
    def __init__(self, *, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.session = session or requests.Session()
        # Proxies and CA settings from the environment are for people, not for this relay.
        self.session.trust_env = False
        self.clock = clock

    def close(self) -> None:
        self.session.close()

    def send(self, tool: OperatorTool, *, tool_call_id: str, arguments: Mapping[str, Any],
             call: Mapping[str, Any]) -> RelayOutcome:
        if not tool.secret:
            return RelayOutcome("not_configured", f"The {tool.name} tool is not set up yet.")
        body = json.dumps({"tool": tool.name, "arguments": arguments, "call": dict(call)},
                          ensure_ascii=False, separators=(",", ":")).encode()
        if len(body) > MAX_REQUEST_BYTES:
            return RelayOutcome("too_large", "That request is too long to send.")
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "Idempotency-Key": tool_call_id,
                   **signed_headers(tool.secret, tool_call_id, int(self.clock()), body)}
        try:
            with self.session.post(tool.url, data=body, headers=headers, stream=True,
                                   allow_redirects=False,
                                   timeout=(min(CONNECT_TIMEOUT_S, tool.timeout_s),
                                            tool.timeout_s)) as response:
                status = response.status_code
                raw = _read_capped(response)
        except requests.Timeout:
            return self._failed(tool, "timeout", "did not answer in time")
        except requests.RequestException as exc:
            return self._failed(tool, "unreachable", type(exc).__name__)
        if raw is None:
            return self._failed(tool, "too_large", "answered more than the service reads")
        if not 200 <= status < 300:
            return self._failed(tool, "http_error", f"HTTP {status}")
        try:
            answer = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return self._failed(tool, "bad_answer", "answered something other than JSON")
        if not isinstance(answer, dict):
            return self._failed(tool, "bad_answer", "answered JSON that is not an object")
        text = answer.get("text")
        if not isinstance(text, str) or not text:
            text = json.dumps(answer, ensure_ascii=False)[:MAX_TEXT_CHARS]
        return RelayOutcome("ok", text, answer)

    def _failed(self, tool: OperatorTool, outcome: str, why: str) -> RelayOutcome:
        # The URL may carry a key in its query: logged by tool name only.
        logger.warning("tools.relay_failed", extra={"tool": tool.name, "outcome": outcome,
                                                    "why": why})
        return RelayOutcome(outcome, f"The {tool.name} tool is not available right now.")


def _read_capped(response: requests.Response) -> bytes | None:
    """The body, or None when it is longer than MAX_RESPONSE_BYTES (not read further)."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(8192):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
