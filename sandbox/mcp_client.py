"""The MCP client side of a simulated ConvoAI agent: Streamable HTTP, JSON-RPC 2.0.

What ConvoAI does with a join's ``llm.mcp_servers`` entry, as far as the MCP specification
(2025-06-18, "Transports" and "Lifecycle") lets us know: POST ``initialize``, then the
``notifications/initialized`` notification, then ``tools/list`` page by page, and later
``tools/call``. Each POST carries the entry's headers and ``Accept: application/json,
text/event-stream``; the answer may be JSON or an SSE stream holding the response. A session id
the server gives (``Mcp-Session-Id``) is sent back on every later request.

No Flask and no sandbox state here: every failure is one McpError with a code and a message.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

import requests

PROTOCOL_VERSION = "2025-06-18"
CLIENT_INFO = {"name": "agora-convoai-sandbox", "version": "1.0"}
#: Codes for failures that have neither an HTTP status nor a JSON-RPC error code. ConvoAI
#: documents no codes for its ``mcp`` module; we ASSUME JSON-RPC's own where one fits.
PARSE_ERROR = -32700
TRANSPORT_ERROR = -32000
#: How many ``tools/list`` pages we follow before giving up on a server that never ends.
MAX_PAGES = 50


class McpError(Exception):
    """A request to an MCP server failed: transport, HTTP status, bad answer or JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class McpClient:
    """One connection to one ``mcp_servers`` entry; ``timeout_s`` bounds each request."""

    def __init__(self, endpoint: str, *, headers: Mapping[str, str] | None = None,
                 timeout_s: float = 10.0, session: requests.Session | None = None) -> None:
        self.endpoint = endpoint
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self.session_id: str | None = None
        self.protocol_version: str | None = None

    def initialize(self) -> dict[str, Any]:
        """The handshake: ``initialize``, then ``notifications/initialized``; the server's
        result (its capabilities and the protocol version it chose)."""
        result = self.request("initialize", {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO})
        self.protocol_version = str(result.get("protocolVersion") or PROTOCOL_VERSION)
        self.notify("notifications/initialized")
        return result

    def list_tools(self) -> list[dict[str, Any]]:
        """Every tool the server lists, following ``nextCursor``."""
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            result = self.request("tools/list", {"cursor": cursor} if cursor else {})
            page = result.get("tools")
            if not isinstance(page, list):
                raise McpError(PARSE_ERROR, "tools/list: the result has no tools list")
            tools += [t for t in page if isinstance(t, dict) and isinstance(t.get("name"), str)]
            cursor = result.get("nextCursor")
            if not cursor:
                return tools
        raise McpError(TRANSPORT_ERROR, f"tools/list: more than {MAX_PAGES} pages")

    def call_tool(self, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """``tools/call``: the result (``content``, ``isError``, maybe ``structuredContent``).
        A tool that failed is a result with ``isError``, not an McpError."""
        return self.request("tools/call", {"name": name, "arguments": dict(arguments)})

    # -- the transport ----------------------------------------------------------------------

    def request(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """One JSON-RPC request; its result object, or McpError."""
        request_id = secrets.token_hex(6)
        response = self._post({"jsonrpc": "2.0", "id": request_id, "method": method,
                               "params": dict(params)}, method)
        message = _response_message(response, request_id, method)
        if "error" in message:
            error = message["error"] if isinstance(message["error"], dict) else {}
            code = error.get("code")
            raise McpError(code if isinstance(code, int) else TRANSPORT_ERROR,
                           f"{method}: {error.get('message', 'JSON-RPC error')}")
        result = message.get("result")
        if not isinstance(result, dict):
            raise McpError(PARSE_ERROR, f"{method}: the response has no result object")
        return result

    def notify(self, method: str) -> None:
        """A notification: the server answers 202 with no body (any 2xx is taken)."""
        self._post({"jsonrpc": "2.0", "method": method}, method)

    def _post(self, message: dict[str, Any], method: str) -> requests.Response:
        headers = {**self.headers, "Accept": "application/json, text/event-stream",
                   "Content-Type": "application/json"}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version:
            headers["MCP-Protocol-Version"] = self.protocol_version
        try:
            response = self.session.post(self.endpoint, data=json.dumps(message),
                                         headers=headers, timeout=self.timeout_s,
                                         allow_redirects=False)
        except requests.Timeout:
            raise McpError(TRANSPORT_ERROR, f"{method}: timed out after {self.timeout_s:g} s"
                           ) from None
        except requests.RequestException as exc:
            raise McpError(TRANSPORT_ERROR,
                           f"{method}: cannot connect ({type(exc).__name__})") from None
        if not 200 <= response.status_code < 300:
            raise McpError(response.status_code,
                           f"{method}: HTTP {response.status_code} {response.reason or ''}"
                           .rstrip())
        self.session_id = response.headers.get("Mcp-Session-Id") or self.session_id
        return response


def _response_message(response: requests.Response, request_id: str,
                      method: str) -> dict[str, Any]:
    """The JSON-RPC response to ``request_id`` in a JSON body or an SSE stream."""
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type == "text/event-stream":
        candidates = list(_sse_messages(response.text))
    else:
        try:
            candidates = [json.loads(response.text)]
        except ValueError:
            raise McpError(PARSE_ERROR, f"{method}: the answer is not JSON") from None
    for message in candidates:
        if isinstance(message, dict) and message.get("id") == request_id and (
                "result" in message or "error" in message):
            return message
    raise McpError(PARSE_ERROR, f"{method}: no JSON-RPC response with our id in the answer")


def _sse_messages(text: str) -> list[Any]:
    """The JSON messages of an SSE stream's events (``data:`` lines, joined per event)."""
    messages: list[Any] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].removeprefix(" ") for line in block.split("\n")
                         if line.startswith("data:"))
        if data:
            try:
                messages.append(json.loads(data))
            except ValueError:
                raise McpError(PARSE_ERROR, "an SSE event's data is not JSON") from None
    return messages
