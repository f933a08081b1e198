"""POST /mcp through Flask's test client: authentication, the answers' shapes, the start-up
warning when tools cannot be reached."""

from __future__ import annotations

import json
import logging

from calls.lifecycle import CallerJoined, CallerLeft
from tests.fakes import FakeConvoAI
from tools.tokens import new_token, token_hash

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}}}


def open_call(app, channel="mcp_1"):
    calls = app.extensions["calls"]
    calls.convoai = FakeConvoAI()
    calls.handle_caller_event(CallerJoined(channel=channel, uid=111, seq=1,
                                           notice_id=f"{channel}-j"), event_type=103)
    call = app.extensions["store"].calls_in_channel(channel)[0]
    token = new_token()
    app.extensions["store"].add_call_token(call.id, token_hash(token))
    return call, token


def post(client, body, token=None, **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/mcp", data=json.dumps(body), content_type="application/json",
                       headers=headers)


def test_a_live_calls_token_opens_the_endpoint(app, client):
    call, token = open_call(app)
    answer = post(client, INIT, token)
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert answer.json["result"]["protocolVersion"] == "2025-06-18"
    assert "Mcp-Session-Id" not in answer.headers  # stateless
    listed = post(client, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, token)
    assert [t["name"] for t in listed.json["result"]["tools"]] == [
        "transfer_call", "end_call", "search_knowledge"]
    note = post(client, {"jsonrpc": "2.0", "method": "notifications/initialized"}, token)
    assert note.status_code == 202 and note.data == b""


def test_no_token_another_string_or_an_ended_calls_token_is_401(app, client):
    call, token = open_call(app, "mcp_2")
    for bad in (None, "nope", token + "x"):
        answer = post(client, INIT, bad)
        assert answer.status_code == 401
        assert answer.json["error"]["code"] == -32001
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert post(client, INIT, Authorization=f"Basic {token}").status_code == 401
    app.extensions["calls"].handle_caller_event(CallerLeft(
        channel="mcp_2", uid=111, seq=2, notice_id="mcp_2-l", reason=1), event_type=104)
    assert post(client, INIT, token).status_code == 401


def test_an_sse_only_client_gets_the_answer_as_one_event(app, client):
    _, token = open_call(app, "mcp_3")
    answer = post(client, {"jsonrpc": "2.0", "id": 7, "method": "ping"}, token,
                  Accept="text/event-stream")
    assert answer.mimetype == "text/event-stream"
    text = answer.get_data(as_text=True)
    assert text.startswith("event: message\ndata: ")
    assert json.loads(text.split("data: ", 1)[1]) == {"jsonrpc": "2.0", "id": 7, "result": {}}


def test_get_and_delete_are_405_and_a_foreign_origin_is_refused(app, client):
    _, token = open_call(app, "mcp_4")
    assert client.get("/mcp").status_code == 405
    assert client.delete("/mcp").status_code == 405
    foreign = post(client, INIT, token, Origin="https://evil.example")
    assert foreign.status_code == 403
    assert post(client, INIT, token, Origin="http://localhost:8000").status_code == 200


def test_a_tool_call_is_recorded_and_counted(app, client):
    from observability import metrics

    call, token = open_call(app, "mcp_5")
    before = metrics.REGISTRY.get_sample_value(
        "phone_agent_tool_calls_total", {"tool": "transfer_call", "outcome": "no_phone_leg"}) or 0
    answer = post(client, {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "transfer_call", "arguments": {"destination": "desk"}}}, token)
    assert answer.json["result"]["isError"] is True
    assert metrics.REGISTRY.get_sample_value(
        "phone_agent_tool_calls_total",
        {"tool": "transfer_call", "outcome": "no_phone_leg"}) == before + 1
    detail = client.get(f"/api/calls/{call.id}",
                        headers={"Authorization": "Bearer sandbox-admin-token"}).json
    assert [(t["tool"], t["outcome"]) for t in detail["tool_calls"]] == [
        ("transfer_call", "no_phone_leg")]
    unknown = post(client, {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                            "params": {"name": "rm_rf", "arguments": {}}}, token)
    assert unknown.json["error"]["code"] == -32602


def test_start_up_warns_once_when_personas_have_tools_but_no_url_reaches_them(settings, caplog):
    from factory.app import create_app

    caplog.set_level(logging.WARNING, logger="app")
    # Production without PUBLIC_URL (the orders persona's own variables set, as production
    # requires when it is in use).
    create_app(settings.replace(sandbox=False, public_url="", persona_keys={
        **settings.persona_keys, "SHOP_TOOLS_URL": "https://shop.example.com/t",
        "SHOP_TOOLS_SECRET": "whsec_" + "a" * 32}))
    warnings = [r for r in caplog.records if r.getMessage().startswith("TOOLS OFF")]
    assert len(warnings) == 1 and "support" in warnings[0].getMessage()
    caplog.clear()
    create_app(settings)
    assert not [r for r in caplog.records if r.getMessage().startswith("TOOLS OFF")]
