"""Running an agent's tool call: the checks, the ledger, and the tool itself.

A call to a tool with side effects (an operator tool with ``side_effects = true``, the built-ins
``end_call``, ``transfer_call``, ``flag_urgent`` and ``opt_out``, and the booking tools that
change the diary) runs at most once per call and canonical arguments. Its ledger id is made from
the call, the tool and the arguments, so a repeat on any worker or instance finds the first run
in the store: finished, the repeat gets its result; still running, the repeat waits for it. If
the first run's worker died (its lease ran out), an operator tool is sent again under the same
``Idempotency-Key``; a built-in is not run again (a transfer or a hang-up may have happened),
and the agent is told its outcome is unknown.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema

from bookings.service import BookingService
from calls.records import iso
from calls.service import CallService
from convoai.payload import redact_properties
from observability import metrics
from personas.model import Persona
from sip.service import SipService
from store import CallRecord, Store, ToolClaim
from tools.booking_runner import BookingTools
from tools.builtin import BuiltinTools
from tools.catalog import catalog
from tools.knowledge_tools import KnowledgeTools
from tools.protocol import INVALID_PARAMS, RpcError, tool_result
from tools.relay import OperatorRelay
from tools.spec import OUTCOME_UNKNOWN, Done, ToolSpec
from tools.tokens import new_token, token_hash

logger = logging.getLogger(__name__)

#: A run's lease beyond its tool's timeout: past it, the run's worker is taken to have died.
LEASE_MARGIN_S = 10.0
#: How often a repeat looks whether the first run has finished.
WAIT_STEP_S = 0.05
#: Error messages from schema checks are cut to this for the agent.
MAX_ERROR_CHARS = 300


def canonical(arguments: Mapping[str, Any]) -> str:
    """The arguments as one string: keys sorted, no spaces, so equal requests are equal."""
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def once_id(call_id: str, tool: str, arguments: Mapping[str, Any]) -> str:
    """The ledger id of a side-effecting request: the same for every repeat of it."""
    digest = hashlib.sha256(f"{call_id}\0{tool}\0{canonical(arguments)}".encode()).hexdigest()
    return f"tc_{digest[:40]}"


class ToolService:
    def __init__(self, store: Store, calls: CallService, sip: SipService, *,
                 relay: OperatorRelay | None = None,
                 bookings: BookingService | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.store = store
        self.calls = calls
        self.builtins = BuiltinTools(sip)
        self.knowledge = KnowledgeTools(store)
        self.relay = relay or OperatorRelay()
        self.booking_tools = BookingTools(bookings or BookingService(store, clock=clock))
        self.clock = clock
        self.sleep = sleep
        self.holder = f"{socket.gethostname()}:{os.getpid()}"

    # -- the endpoint's tokens ---------------------------------------------------------------

    def issue_token(self, call_id: str) -> str:
        """A new bearer token for the call's MCP server entry; only its hash is kept."""
        token = new_token()
        self.store.add_call_token(call_id, token_hash(token))
        return token

    def call_for_token(self, token: str) -> CallRecord | None:
        return self.store.call_for_token(token_hash(token))

    # -- one call's tools --------------------------------------------------------------------

    def tools_of(self, call: CallRecord) -> tuple[Persona, dict[str, ToolSpec]]:
        persona = self.calls.persona_of(call)
        return persona, catalog(persona)

    def list_tools(self, call: CallRecord) -> list[dict[str, Any]]:
        return [spec.as_mcp() for spec in self.tools_of(call)[1].values()]

    def call_tool(self, call: CallRecord, name: str,
                  arguments: dict[str, Any]) -> dict[str, Any]:
        began = time.monotonic()
        persona, tools = self.tools_of(call)
        spec = tools.get(name)
        if spec is None:
            metrics.tool_call("unknown", "unknown_tool", time.monotonic() - began)
            raise RpcError(INVALID_PARAMS, f"Unknown tool: {name}")
        # What the ledger keeps: secrets masked, then the persona's PII redaction; the tool
        # itself (built-in or the operator's endpoint) still gets the arguments as they came.
        masked, found = persona.redaction.value(
            redact_properties(arguments, persona.secret_values()))
        problem = _schema_problem(spec, arguments)
        if problem is not None:
            done = Done("invalid_arguments", f"The arguments do not fit: {problem}")
            tool_call_id = f"tc_{uuid.uuid4().hex}"
            self.store.claim_tool_call(tool_call_id=tool_call_id, call_id=call.id, tool=name,
                                       once=False, arguments=canonical(masked),
                                       holder=self.holder, lease_s=0)
            return self._finish(call, spec, tool_call_id, done, masked, began, found)
        tool_call_id = once_id(call.id, name, arguments) if spec.once \
            else f"tc_{uuid.uuid4().hex}"
        lease_s = spec.timeout_s + LEASE_MARGIN_S
        claim = self._claim(call, spec, tool_call_id, masked, lease_s)
        deadline = time.monotonic() + lease_s
        while claim.action == "running" and time.monotonic() < deadline:
            self.sleep(WAIT_STEP_S)
            claim = self.store.tool_call_result(tool_call_id)
            if claim.action == "take_over":
                claim = self._claim(call, spec, tool_call_id, masked, lease_s)
        if claim.action == "done":
            assert claim.result is not None
            metrics.tool_call(name, "repeat", time.monotonic() - began)
            return claim.result
        if claim.action == "running":
            metrics.tool_call(name, "still_running", time.monotonic() - began)
            return tool_result("That is still being done; ask again in a moment.",
                               is_error=True)
        if claim.action == "take_over" and spec.operator is None:
            done = Done(OUTCOME_UNKNOWN, "An earlier attempt at this was interrupted, and "
                                           "whether it happened is not known. Do not try again; "
                                           "tell the caller a person will check.")
        else:
            done = self._run(call, persona, spec, tool_call_id, arguments)
        return self._finish(call, spec, tool_call_id, done, masked, began, found)

    def _claim(self, call: CallRecord, spec: ToolSpec, tool_call_id: str,
               masked: Mapping[str, Any], lease_s: float) -> ToolClaim:
        return self.store.claim_tool_call(
            tool_call_id=tool_call_id, call_id=call.id, tool=spec.name, once=spec.once,
            arguments=canonical(masked), holder=self.holder, lease_s=lease_s)

    def _run(self, call: CallRecord, persona: Persona, spec: ToolSpec, tool_call_id: str,
             arguments: Mapping[str, Any]) -> Done:
        if spec.family == "knowledge":
            return self.knowledge.run(spec.name, call, persona, arguments)
        if spec.family == "booking":
            return self.booking_tools.run(spec.name, call, persona, arguments)
        if spec.operator is None:
            return self.builtins.run(spec.name, call, persona, arguments)
        sent = self.relay.send(spec.operator, tool_call_id=tool_call_id, arguments=arguments,
                               call=call_summary(call))
        return Done(sent.outcome, sent.text, sent.structured)

    def _finish(self, call: CallRecord, spec: ToolSpec, tool_call_id: str, done: Done,
                masked: Mapping[str, Any], began: float,
                redacted: Mapping[str, int]) -> dict[str, Any]:
        result = tool_result(done.text, structured=done.structured, is_error=done.is_error)
        seconds = time.monotonic() - began
        self.store.finish_tool_call(tool_call_id, call_id=call.id, tool=spec.name,
                                    result=result, outcome=done.outcome,
                                    latency_ms=round(seconds * 1000), arguments=dict(masked),
                                    final=done.final, redacted=dict(redacted))
        metrics.tool_call(spec.name, done.outcome, seconds)
        logger.info("tools.called", extra={"call_id": call.id, "tool": spec.name,
                                           "outcome": done.outcome,
                                           "latency_ms": round(seconds * 1000)})
        return result


def call_summary(call: CallRecord) -> dict[str, Any]:
    """The call as an operator tool is told of it."""
    return {"id": call.id, "persona": call.persona, "channel": call.channel,
            "direction": call.direction, "caller_number": call.caller_number,
            "called_number": call.called_number, "started_at": iso(call.created_at)}


def _schema_problem(spec: ToolSpec, arguments: Mapping[str, Any]) -> str | None:
    """Why the arguments do not fit the tool's input schema (the first reason), or None."""
    validator = jsonschema.Draft202012Validator(spec.input_schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path)
    message = f"{where}: {error.message}" if where else error.message
    return message[:MAX_ERROR_CHARS]
