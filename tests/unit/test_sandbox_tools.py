"""The sandbox's agents use tools like ConvoAI: they connect to the join's MCP servers (an
in-test server here, mocked with ``responses``), report failures as event 110, and call tools
for scripted callers; the demo shop checks Standard Webhooks signatures."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import responses
from standardwebhooks import Webhook

from config import SANDBOX_TOOLS_SECRET, Settings
from factory.app import create_app
from sandbox.config import SandboxConfig
from sandbox.conversation import (
    SandboxAgents,
    Script,
    ScriptError,
    ScriptTurn,
    load_script,
    parse_script,
    play,
)
from sandbox.simulator import JOIN, LEAVE, simulate_call
from sandbox.testing import Harness, make_harness
from tests.fakes import FakeConvoAI
from tests.unit.test_simulator import ADMIN_TOKEN, Wire, target

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
    assert seen["history"][-3:] == [
        {"role": "user", "content": "Goodbye"},
        {"role": "assistant", "content": '[tool call] end_call {"reason": "done"}'},
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
    unset = make_harness(shop_tools_secret="")
    assert shop_post(unset, order_body("A1001")).status_code == 401


def test_the_shop_takes_shop_tools_secret_else_the_services_sandbox_placeholder():
    assert SandboxConfig.from_env({"SHOP_TOOLS_SECRET": SHOP_SECRET}).shop_tools_secret \
        == SHOP_SECRET
    assert SandboxConfig.from_env({}).shop_tools_secret == SANDBOX_TOOLS_SECRET
    h = make_harness()
    assert shop_post(h, order_body("A1002"), secret=SANDBOX_TOOLS_SECRET).get_json()[
        "status"] == "processing"


# -- scripts ----------------------------------------------------------------------------------


class FakeAgents:
    """The sandbox's control API for the player: one agent with ``tools`` listed."""

    def __init__(self, tools: list[str], results: dict[str, bool] | None = None) -> None:
        self.tools, self.results = tools, results or {}
        self.said: list[tuple[str, str | None]] = []

    def agent(self, agent_id: str) -> dict[str, Any]:
        return {"agent_id": agent_id, "tools_state": "ready",
                "tools": [{"name": n} for n in self.tools]}

    def say(self, agent_id: str, text: str, tool: str | None, arguments: Any) -> dict[str, Any]:
        self.said.append((text, tool))
        return {"said": text, "tool": tool, "is_error": self.results.get(tool or "", False),
                "text": f"{tool} result"}


def test_a_script_calling_a_tool_the_agent_did_not_list_fails_in_one_line_before_speaking():
    script = Script("s.toml", (ScriptTurn("Hi"), ScriptTurn("Fly me", "fly_to_the_moon")))
    agents = FakeAgents(["end_call", "draw_tarot_cards"])
    with pytest.raises(ScriptError) as failure:
        play(script, agents, "A1", echo=lambda _: None, sleep=lambda _: None)
    assert str(failure.value) == ("s.toml: the agent did not list the tool fly_to_the_moon "
                                  "(it listed: end_call, draw_tarot_cards)")
    assert agents.said == []


def test_a_script_plays_each_turn_and_checks_what_it_expects():
    script = parse_script({"turn": [
        {"caller": "Three cards?", "tool": "draw_tarot_cards", "arguments": {"count": 3}},
        {"caller": "Flag it", "tool": "flag_urgent", "expect": "error"},
        {"caller": "Bye"}]}, "t.toml")
    lines: list[str] = []
    agents = FakeAgents(["draw_tarot_cards", "flag_urgent"], {"flag_urgent": True})
    play(script, agents, "A1", echo=lines.append, sleep=lambda _: None)
    assert lines == [
        "turn 1: caller: 'Three cards?' -> draw_tarot_cards(count=3) -> ok: "
        "draw_tarot_cards result",
        "turn 2: caller: 'Flag it' -> flag_urgent() -> error: flag_urgent result",
        "turn 3: caller: 'Bye'"]
    wrong = parse_script({"turn": [{"caller": "Flag it", "tool": "flag_urgent"}]}, "t.toml")
    with pytest.raises(ScriptError, match="^turn 1: flag_urgent gave error, the script "
                                          "expects ok: flag_urgent result$"):
        play(wrong, agents, "A1", echo=lambda _: None, sleep=lambda _: None)


@pytest.mark.parametrize(("data", "message"), [
    ({}, "no [[turn]] tables"),
    ({"turn": [{"caller": "Hi", "tol": "x"}]}, "turn 1: unknown key 'tol'"),
    ({"turn": [{"caller": ""}]}, "turn 1: caller must be a non-empty string"),
    ({"turn": [{"caller": "Hi", "tool": "x", "expect": "maybe"}]}, "turn 1: expect must be"),
    ({"turn": [{"caller": "Hi", "arguments": {"a": 1}}]},
     "turn 1: arguments and expect need a tool"),
    ({"persona": 3, "turn": [{"caller": "Hi"}]}, "persona must be a non-empty string"),
])
def test_a_script_that_cannot_be_read_names_its_first_problem(data, message):
    with pytest.raises(ScriptError, match=f"^x.toml: {message}".replace("[", r"\[")
                       .replace("]", r"\]")):
        parse_script(data, "x.toml")


@pytest.mark.parametrize(("name", "tools"), [
    ("triage", ["flag_urgent", "transfer_call"]), ("support", ["transfer_call", "end_call"]),
    ("tarot", ["draw_tarot_cards", "end_call"]), ("orders", ["lookup_order"]),
    ("appointments", ["find_slots", "book_appointment"]),
])
def test_each_built_in_persona_has_a_ready_script(name, tools):
    script = load_script(name)
    assert script.persona == name
    assert script.tools == tools


def test_the_command_refuses_an_unreadable_script_in_one_line_before_sending_anything(tmp_path):
    service = create_app(Settings.for_tests(database_url=f"sqlite:///{tmp_path / 'app.db'}",
                                            log_level="WARNING"))
    bad = tmp_path / "bad.toml"
    bad.write_text('[[turn]]\ncaller = "Hi"\ntool = 7\n')
    with responses.RequestsMock() as nothing_sent:
        result = service.test_cli_runner().invoke(args=[
            "simulate", "call", "--url", "http://service.test", "--script", str(bad)])
        assert len(nothing_sent.calls) == 0
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"simulate: {bad}: turn 1: tool must be a non-empty string\n"


def test_a_scripted_caller_speaks_once_the_agent_started_and_hangs_up_even_on_failure(
        tmp_path):
    service = create_app(Settings.for_tests(database_url=f"sqlite:///{tmp_path / 'app.db'}",
                                            admin_token=ADMIN_TOKEN, log_level="WARNING",
                                            agent_start_mode="inline"))
    service.extensions["calls"].convoai = FakeConvoAI()
    seen: list[str] = []

    def conversation(agent_id: str) -> None:
        seen.append(agent_id)
        raise ScriptError("turn 1: end_call gave error, the script expects ok")

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        wire = Wire(service, mock)
        with pytest.raises(ScriptError):
            simulate_call(target(), wait_s=5, conversation=conversation)
        events = wire.events()
    assert len(seen) == 1 and seen[0]
    assert events.count(JOIN) == events.count(LEAVE) == 1


def test_a_script_plays_through_the_sandboxs_control_api_into_the_transcript(mock):
    McpServer(mock)
    h = make_harness()

    def to_sandbox(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        answer = h.client.open(urlsplit(request.url or "").path, method=request.method,
                               data=request.body, headers={"Content-Type": "application/json"})
        return answer.status_code, {"Content-Type": "application/json"}, answer.get_data()

    for method in (responses.GET, responses.POST):
        mock.add_callback(method, re.compile(r"http://sandbox\.test/.*"), to_sandbox)
    agent_id = tool_join(h, allowed_tools=["end_call", "lookup_order"])
    h.advance(0.3)
    script = parse_script({"turn": [
        {"caller": "Where is A1001?", "tool": "lookup_order",
         "arguments": {"order_number": "A1001"}},
        {"caller": "Bye", "tool": "end_call"}]}, "orders.toml")
    lines: list[str] = []

    play(script, SandboxAgents("http://sandbox.test"), agent_id, echo=lines.append,
         sleep=lambda _: None)

    assert len(lines) == 2
    assert agent(h, agent_id)["history"][-6:] == [
        {"role": "user", "content": "Where is A1001?"},
        {"role": "assistant", "content": '[tool call] lookup_order {"order_number": "A1001"}'},
        {"role": "tool", "content": "lookup_order (ok): lookup_order done"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "[tool call] end_call {}"},
        {"role": "tool", "content": "end_call (ok): end_call done"}]
    flagging = parse_script({"turn": [{"caller": "Flag", "tool": "flag_urgent"}]}, "t.toml")
    with pytest.raises(ScriptError, match="did not list the tool flag_urgent"):
        play(flagging, SandboxAgents("http://sandbox.test"), agent_id, echo=lines.append)


def test_make_run_gives_the_service_and_the_sandbox_one_shop_secret_and_persona_routes(
        monkeypatch):
    from scripts import run

    monkeypatch.delenv("SHOP_TOOLS_SECRET", raising=False)
    added = run._tool_settings(Settings.for_tests())
    Webhook(added["SHOP_TOOLS_SECRET"])  # a valid whsec_ secret
    assert added["SHOP_TOOLS_SECRET"] != run._tool_settings(Settings.for_tests())[
        "SHOP_TOOLS_SECRET"]  # random
    assert "tarot_*=tarot" in added["PERSONA_ROUTES"].split(",")

    monkeypatch.setenv("SHOP_TOOLS_SECRET", SHOP_SECRET)
    assert run._tool_settings(Settings.for_tests(persona_routes="x_*=tarot")) == {}
