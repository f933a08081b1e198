"""``POST /mcp``: the MCP endpoint ConvoAI's agents call their tools through.

Every request carries its call's bearer token (the join put it in the server entry's headers);
without a valid one, or for a call that has ended, the answer is 401 and nothing is read or done.
A request with an ``Origin`` header must come from PUBLIC_URL's origin (the transport spec's
guard against DNS rebinding; ConvoAI, a server, sends none).
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request

from store import CallRecord
from tools.protocol import Answer, error_response, handle
from tools.service import ToolService
from tools.tokens import bearer_token
from web.security import rate_limit_failed_auth

bp = Blueprint("mcp", __name__)

#: JSON-RPC's range for server errors: the answer to a request that fails authentication.
UNAUTHORIZED = -32001


class CallTools:
    """The ToolHost of one authenticated call."""

    def __init__(self, tools: ToolService, call: CallRecord) -> None:
        self.tools = tools
        self.call = call

    def list_tools(self) -> list[dict]:
        return self.tools.list_tools(self.call)

    def call_tool(self, name: str, arguments: dict) -> dict:
        return self.tools.call_tool(self.call, name, arguments)


@bp.post("/mcp")
@rate_limit_failed_auth()
def mcp() -> Response:
    tools: ToolService = current_app.extensions["tools"]
    origin = request.headers.get("Origin")
    if origin is not None and not _same_origin(origin,
                                               current_app.extensions["settings"].public_url):
        return _json(Answer(403, error_response(None, UNAUTHORIZED, "Forbidden origin")))
    token = bearer_token(request.headers.get("Authorization"))
    call = tools.call_for_token(token) if token else None
    if call is None:
        response = _json(Answer(401, error_response(
            None, UNAUTHORIZED, "Unauthorized: a valid bearer token of a live call is needed")))
        response.headers["WWW-Authenticate"] = 'Bearer realm="mcp"'
        return response
    answer = handle(request.get_data(cache=False), request.headers.get("MCP-Protocol-Version"),
                    lambda: CallTools(tools, call))
    return _json(answer)


@bp.route("/mcp", methods=["GET", "DELETE"])
def mcp_other() -> Response:
    # Stateless: no server-initiated stream (GET) and no session to end (DELETE).
    response = Response(status=405)
    response.headers["Allow"] = "POST"
    return response


def _json(answer: Answer) -> Response:
    if answer.body is None:
        return Response(status=202)
    body = json.dumps(answer.body, ensure_ascii=False, separators=(",", ":"))
    accept = request.headers.get("Accept", "")
    if "text/event-stream" in accept and "application/json" not in accept \
            and "*/*" not in accept:
        # A client that takes only a stream gets the answer as one SSE event.
        return Response(f"event: message\ndata: {body}\n\n", status=answer.status,
                        mimetype="text/event-stream")
    return Response(body, status=answer.status, mimetype="application/json")


def _same_origin(origin: str, public_url: str) -> bool:
    seen = urlsplit(origin)
    if seen.hostname in ("localhost", "127.0.0.1", "::1"):
        return True
    want = urlsplit(public_url)
    return bool(public_url) and (seen.scheme, seen.netloc) == (want.scheme, want.netloc)
