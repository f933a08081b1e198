"""MCP's JSON-RPC as this service speaks it: the Streamable HTTP transport, stateless, with JSON
responses (https://modelcontextprotocol.io/specification/2025-11-25/basic/transports).

Framework-free: :func:`handle` takes the body's bytes and the ``MCP-Protocol-Version`` header and
returns the HTTP status and the JSON to answer (None: 202 with no body). Stateless means no
``Mcp-Session-Id`` is issued and nothing is kept between requests, so any worker on any instance
answers any request. The official SDK's server runs on ASGI; the service's workers are WSGI, so
the few methods a tool server needs are dispatched here.

Every malformed message gets a JSON-RPC error (``-32700`` unparsable, ``-32600`` not a request,
``-32601`` unknown method, ``-32602`` bad parameters), never an HTTP 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

#: Newest first; a client asking for another version is offered the newest (the spec's rule).
SUPPORTED_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
LATEST_VERSION = SUPPORTED_VERSIONS[0]
#: Assumed when a request carries no MCP-Protocol-Version header (the spec says so for clients
#: that predate the header).
DEFAULT_HEADER_VERSION = "2025-03-26"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

SERVER_INFO = {"name": "phone-agent", "title": "Phone agent call tools", "version": "1"}
INSTRUCTIONS = ("Tools that act on the phone call in progress. Tell the caller what you are "
                "about to do before calling a tool that changes the call.")


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class ToolHost(Protocol):
    """The tools of one call: what ``tools/list`` and ``tools/call`` reach."""

    def list_tools(self) -> list[dict[str, Any]]: ...

    def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any | None  # None: nothing to send (202 Accepted)


def handle(body: bytes, header_version: str | None, host: Callable[[], ToolHost]) -> Answer:
    """Answer one POST. ``host`` is called only when a tool method needs the call's tools."""
    if header_version is not None and header_version not in SUPPORTED_VERSIONS:
        return Answer(400, error_response(None, INVALID_REQUEST,
                                          f"Unsupported MCP-Protocol-Version: {header_version}"))
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: nesting deeper than the parser's stack (a few KiB of "[[[[").
        return Answer(400, error_response(None, PARSE_ERROR, "Parse error: the body is not JSON"))
    if isinstance(message, list):
        # Batches were part of 2025-03-26 only; later versions never send them.
        if not message:
            return Answer(400, error_response(None, INVALID_REQUEST, "Empty batch"))
        answers = [a for a in (dispatch(item, host) for item in message) if a is not None]
        return Answer(200, answers) if answers else Answer(202, None)
    answer = dispatch(message, host)
    if answer is None:
        return Answer(202, None)
    status = 400 if "error" in answer and answer["error"]["code"] in (
        PARSE_ERROR, INVALID_REQUEST) else 200
    return Answer(status, answer)


def dispatch(message: Any, host: Callable[[], ToolHost]) -> dict[str, Any] | None:
    """The response to one JSON-RPC message; None for a notification or a response."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return error_response(_id_of(message), INVALID_REQUEST,
                              "Invalid Request: not a JSON-RPC 2.0 message")
    if "method" not in message:
        if "result" in message or "error" in message:
            return None  # a response to a request of ours: we send none, so nothing to do
        return error_response(_id_of(message), INVALID_REQUEST, "Invalid Request: no method")
    method = message["method"]
    has_id = "id" in message
    request_id = message.get("id")
    if not isinstance(method, str) or (has_id and (
            isinstance(request_id, bool) or not isinstance(request_id, (str, int)))):
        return error_response(_id_of(message), INVALID_REQUEST,
                              "Invalid Request: method must be a string and id a string or "
                              "integer")
    if not has_id:
        return None  # a notification (notifications/initialized, cancelled, ...): acknowledged
    params = message.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return error_response(request_id, INVALID_PARAMS, "Invalid params: must be an object")
    try:
        return {"jsonrpc": "2.0", "id": request_id, "result": _call(method, params, host)}
    except RpcError as exc:
        return error_response(request_id, exc.code, exc.message, exc.data)


def _call(method: str, params: dict[str, Any], host: Callable[[], ToolHost]) -> dict[str, Any]:
    if method == "initialize":
        asked = params.get("protocolVersion")
        if not isinstance(asked, str):
            raise RpcError(INVALID_PARAMS, "Invalid params: protocolVersion must be a string")
        return {"protocolVersion": asked if asked in SUPPORTED_VERSIONS else LATEST_VERSION,
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": SERVER_INFO, "instructions": INSTRUCTIONS}
    if method == "ping":
        return {}
    if method == "tools/list":
        cursor = params.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise RpcError(INVALID_PARAMS, "Invalid params: cursor must be a string")
        if cursor:
            raise RpcError(INVALID_PARAMS, "Invalid params: unknown cursor")
        return {"tools": host().list_tools()}
    if method == "tools/call":
        name = params.get("name")
        arguments = params.get("arguments", {})
        if not isinstance(name, str) or not name:
            raise RpcError(INVALID_PARAMS, "Invalid params: name must be a tool's name")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise RpcError(INVALID_PARAMS, "Invalid params: arguments must be an object")
        return host().call_tool(name, arguments)
    raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")


def error_response(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _id_of(message: Any) -> Any:
    """The id to answer an invalid message with: its own when usable, else null."""
    if isinstance(message, dict):
        request_id = message.get("id")
        if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
            return request_id
    return None


def tool_result(text: str, *, structured: dict[str, Any] | None = None,
                is_error: bool = False) -> dict[str, Any]:
    """A ``tools/call`` result: the text the agent reads, and the structured form if any."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": is_error}
    if structured is not None:
        result["structuredContent"] = structured
    return result
