"""The sandbox's agents use tools like ConvoAI: they connect to the join's MCP servers (an
in-test server here, mocked with ``responses``), report failures as event 110, and call tools
for scripted callers; the demo shop checks Standard Webhooks signatures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import responses
from standardwebhooks import Webhook

from sandbox.testing import Harness, make_harness

MCP_URL = "http://mcp.test/mcp"
TOKEN = "Bearer per-call-token-123"
TOOLS = [
    {"name": "end_call", "description": "Hang up",
     "inputSchema": {"type": "object", "properties": {"reason": {"type": "string"}}}},
    {"name": "flag_urgent", "inputSchema": {"type": "object"}},
    {"name": "lookup_order", "inputSchema": {"type": "object",
                                             "required": ["order_number"]}},
]
SHOP_SECRET = "whsec_" + "c2FuZGJveC1zaG9wLXNlY3JldC0zMmJ5dGVzLWxvbmchIQ=="
OTHER_SECRET = "whsec_" + "b3RoZXItc2VjcmV0LW9mLTMyLWJ5dGVzLWxvbmchIQ=="


class McpServer:
    """A tiny MCP server: JSON answers (SSE for tools/list when ``sse``), two tools/list pages,
    ``status`` for every request when set; records every message and its headers."""

    def __init__(self, mock: responses.RequestsMock, *, status: int = 200,
                 sse: bool = False) -> None:
        self.status, self.sse = status, sse
        self.received: list[tuple[dict[str, Any], dict[str, str], Any]] = []
        mock.add_callback(responses.POST, MCP_URL, self.answer)

    def answer(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        message = json.loads(request.body or b"{}")
        self.received.append((message, dict(request.headers),
                              request.req_kwargs.get("timeout")))  # type: ignore[attr-defined]
        if self.status != 200:
            return self.status, {"Content-Type": "application/json"}, '{"error":"unauthorized"}'
        method = message.get("method")
        if "id" not in message:
            return 202, {}, ""
        if method == "initialize":
            result: dict[str, Any] = {"protocolVersion": "2025-06-18", "capabilities": {
                "tools": {}}, "serverInfo": {"name": "phoneagent", "version": "1"}}
        elif method == "tools/list":
            second = message["params"].get("cursor") == "page-2"
            result = {"tools": TOOLS[2:]} if second else {"tools": TOOLS[:2],
                                                          "nextCursor": "page-2"}
        elif method == "tools/call":
            name = message["params"]["name"]
            result = {"content": [{"type": "text", "text": f"{name} done"}],
                      "isError": name == "flag_urgent", "structuredContent": {"ok": True}}
        else:
            return 200, {"Content-Type": "application/json"}, json.dumps({
                "jsonrpc": "2.0", "id": message["id"],
                "error": {"code": -32601, "message": "Method not found"}})
        reply = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result})
        if self.sse and method == "tools/list":
            return 200, {"Content-Type": "text/event-stream"}, f"event: message\ndata: {reply}\n\n"
        return 200, {"Content-Type": "application/json"}, reply

    @property
    def methods(self) -> list[str]:
        return [m.get("method", "") for m, _, _ in self.received]


def tool_join(h: Harness, **server: Any) -> str:
    body = h.body()
    entry = {"name": "phoneagent", "endpoint": MCP_URL, "transport": "streamable_http",
             "headers": {"Authorization": TOKEN}, "timeout_ms": 4000, **server}
    body["properties"]["advanced_features"] = {"enable_tools": True}
    body["properties"]["llm"]["mcp_servers"] = [entry]
    response = h.join(body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["agent_id"]


def agent(h: Harness, agent_id: str) -> dict[str, Any]:
    agents = h.client.get("/_sandbox/agents").get_json()["agents"]
    return next(a for a in agents if a["agent_id"] == agent_id)


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.mark.parametrize(("allowed", "expected"), [
    (["end_call", "lookup_order"], ["end_call", "lookup_order"]),
    (None, ["end_call", "flag_urgent", "lookup_order"]),
    (["*"], ["end_call", "flag_urgent", "lookup_order"]),
    ([], []),
])
def test_a_running_agent_lists_the_allowed_tools_with_the_joins_headers(mock, allowed,
                                                                        expected):
    server, h = McpServer(mock), make_harness()
    extra = {} if allowed is None else {"allowed_tools": allowed}
    agent_id = tool_join(h, **extra)
    assert server.received == []  # the join answered before any connection
    assert agent(h, agent_id)["tools_state"] == "pending"

    h.advance(0.3)  # RUNNING: the agent connects

    assert server.methods == ["initialize", "notifications/initialized", "tools/list",
                              "tools/list"]
    assert server.received[3][0]["params"] == {"cursor": "page-2"}
    for _message, headers, timeout in server.received:
        assert headers["Authorization"] == TOKEN
        assert headers["Accept"] == "application/json, text/event-stream"
        assert headers["Content-Type"] == "application/json"
        assert timeout == 4.0
    assert server.received[0][0]["params"]["protocolVersion"] == "2025-06-18"
    assert server.received[2][1]["MCP-Protocol-Version"] == "2025-06-18"
    seen = agent(h, agent_id)
    assert seen["tools_state"] == "ready"
    assert [t["name"] for t in seen["tools"]] == expected
    assert "headers" not in seen["mcp_servers"][0]  # the token is never shown
    assert not [e for e in h.events(17) if e["eventType"] == 110]


def test_tools_are_listed_from_an_sse_answer_too(mock):
    McpServer(mock, sse=True)
    h = make_harness()
    agent_id = tool_join(h)
    h.advance(0.3)
    assert [t["name"] for t in agent(h, agent_id)["tools"]] == [
        "end_call", "flag_urgent", "lookup_order"]


def test_a_join_without_enable_tools_connects_nowhere(mock):
    server, h = McpServer(mock), make_harness()
    body = h.body()
    body["properties"]["llm"]["mcp_servers"] = [{"name": "phoneagent", "endpoint": MCP_URL}]
    agent_id = h.join(body).get_json()["agent_id"]
    h.advance(0.3)
    assert server.received == []
    assert agent(h, agent_id)["tools_state"] == "none"


def test_a_401_from_the_server_is_reported_as_event_110(mock):
    McpServer(mock, status=401)
    h = make_harness()
    agent_id = tool_join(h)
    h.advance(0.3)

    errors = [e for e in h.events(17) if e["eventType"] == 110]
    assert len(errors) == 1
    payload = errors[0]["payload"]
    assert payload["agent_id"] == agent_id
    assert payload["errors"][0]["module"] == "mcp"
    assert payload["errors"][0]["code"] == 401
    assert "initialize: HTTP 401" in payload["errors"][0]["message"]
    seen = agent(h, agent_id)
    assert seen["tools_state"] == "failed"
    assert seen["tools"] == []
    assert seen["mcp_errors"] == payload["errors"]


def test_an_unreachable_server_is_reported_as_event_110(mock):
    mock.add(responses.POST, MCP_URL, body=requests.ConnectionError("refused"))
    h = make_harness()
    tool_join(h)
    h.advance(0.3)
    (error,) = [e for e in h.events(17) if e["eventType"] == 110]
    assert error["payload"]["errors"][0]["message"].endswith(
        "initialize: cannot connect (ConnectionError)")


def test_a_caller_line_makes_the_agent_call_a_listed_tool_into_the_transcript(mock):
    server, h = McpServer(mock), make_harness()
    agent_id = tool_join(h)
    h.advance(0.3)

    answer = h.client.post(f"/_sandbox/agents/{agent_id}/say", json={
        "text": "Goodbye", "tool": "end_call", "arguments": {"reason": "done"}})

    assert answer.status_code == 200
    assert answer.get_json()["is_error"] is False
    assert answer.get_json()["text"] == "end_call done"
    call = server.received[-1]
    assert call[0]["method"] == "tools/call"
    assert call[0]["params"] == {"name": "end_call", "arguments": {"reason": "done"}}
    assert call[1]["Authorization"] == TOKEN
    seen = agent(h, agent_id)
    assert seen["history"][-2:] == [{"role": "user", "content": "Goodbye"},
                                    {"role": "tool", "content": "end_call (ok): end_call done"}]
    assert [c["tool"] for c in seen["tool_calls"]] == ["end_call"]


def test_a_tool_the_agent_did_not_list_is_refused_without_a_call(mock):
    server, h = McpServer(mock), make_harness()
    agent_id = tool_join(h, allowed_tools=["end_call"])
    h.advance(0.3)
    sent = len(server.received)
    answer = h.client.post(f"/_sandbox/agents/{agent_id}/say",
                           json={"text": "Flag it", "tool": "flag_urgent"})
    assert answer.status_code == 409
    assert "no tool flag_urgent (its tools: end_call" in answer.get_json()["detail"]
    assert len(server.received) == sent


# -- the demo shop ----------------------------------------------------------------------------


def shop_post(h: Harness, body: dict[str, Any], *, secret: str = SHOP_SECRET,
              key: str | None = "idem-1", msg_id: str = "msg_1", age_s: int = 0) -> Any:
    raw = json.dumps(body)
    signed_at = int(h.clock.now()) - age_s
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(signed_at, tz=UTC), raw)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(signed_at),
               "webhook-signature": signature, "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    return h.client.post(f"/shop/agent-tools/{body['tool']}", data=raw, headers=headers)


def order_body(number: str) -> dict[str, Any]:
    return {"tool": "lookup_order", "arguments": {"order_number": number},
            "call": {"id": "c1", "persona": "orders", "channel": "orders_1",
                     "direction": "inbound", "caller_number": "", "called_number": ""}}


def test_the_shop_answers_a_correctly_signed_request_and_records_it():
    h = make_harness(shop_tools_secret=SHOP_SECRET)
    answer = shop_post(h, order_body("A1001"))
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "shipped"
    unknown = shop_post(h, order_body("A9999"), key="idem-2", msg_id="msg_2")
    assert unknown.status_code == 200
    assert unknown.get_json()["found"] is False
    received = h.client.get("/_sandbox/shop").get_json()
    assert received["count"] == 2
    assert received["idempotency_keys"] == {"idem-1": 1, "idem-2": 1}
    assert received["requests"][0]["call"]["persona"] == "orders"
    h.client.post("/_sandbox/shop/reset")
    assert h.client.get("/_sandbox/shop").get_json()["count"] == 0


@pytest.mark.parametrize("change", ["other secret", "tampered body", "old timestamp",
                                    "no signature"])
def test_the_shop_refuses_a_bad_signature_and_records_nothing(change):
    h = make_harness(shop_tools_secret=SHOP_SECRET)
    body = order_body("A1001")
    if change == "other secret":
        answer = shop_post(h, body, secret=OTHER_SECRET)
    elif change == "old timestamp":
        answer = shop_post(h, body, age_s=600)
    else:
        raw = json.dumps(body)
        at = datetime.fromtimestamp(h.clock.now(), tz=UTC)
        headers = {"webhook-id": "m", "webhook-timestamp": str(int(h.clock.now())),
                   "webhook-signature": Webhook(SHOP_SECRET).sign("m", at, raw),
                   "Idempotency-Key": "k"}
        if change == "no signature":
            del headers["webhook-signature"]
        else:
            raw = raw.replace("A1001", "A1002")
        answer = h.client.post("/shop/agent-tools/lookup_order", data=raw, headers=headers)
    assert answer.status_code == 401
    assert "error" in answer.get_json()
    assert h.client.get("/_sandbox/shop").get_json()["count"] == 0


def test_the_shop_requires_an_idempotency_key_and_a_secret():
    h = make_harness(shop_tools_secret=SHOP_SECRET)
    assert shop_post(h, order_body("A1001"), key=None).status_code == 400
    unset = make_harness()
    assert shop_post(unset, order_body("A1001")).status_code == 401
