"""Scripted test calls in the sandbox (``POST /_sandbox/calls`` with ``"script"``): the caller
joins a ``<persona>_...`` channel, the sandbox plays the ready script through the agent there
(an in-test MCP server, tests/unit/test_sandbox_tools.py), hangs up, and keeps the outcome."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.conversation import ready_scripts
from sandbox.testing import Harness, make_harness
from tests.unit.test_sandbox_tools import MCP_URL, TOKEN, McpServer, agent, mock  # noqa: F401

JOIN, LEAVE = 103, 104


def join_in(h: Harness, channel: str) -> str:
    """The agent the service would start for the caller: tools from the in-test MCP server."""
    body = h.body(channel=channel)
    body["properties"]["advanced_features"] = {"enable_tools": True}
    body["properties"]["llm"]["mcp_servers"] = [{
        "name": "phoneagent", "endpoint": MCP_URL, "transport": "streamable_http",
        "headers": {"Authorization": TOKEN}}]
    response = h.join(body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["agent_id"]


def the_call(h: Harness, call_id: str) -> dict[str, Any]:
    return next(c for c in h.client.get("/_sandbox/calls").get_json()["calls"]
                if c["id"] == call_id)


def caller_events(h: Harness, channel: str) -> list[int]:
    return [b["eventType"] for b in h.events(1) if b["payload"]["channelName"] == channel]


def test_the_sandbox_lists_its_ready_scripts_with_their_descriptions():
    listed = make_harness().client.get("/_sandbox/scripts").get_json()["scripts"]
    assert [s["name"] for s in listed] == ["appointments", "appointments_cancel",
                                           "appointments_move", "orders", "support",
                                           "support_faq", "support_unknown", "tarot", "triage"]
    tarot = next(s for s in listed if s["name"] == "tarot")
    assert tarot == {"name": "tarot", "persona": "tarot",
                     "description": "draw_tarot_cards, then end_call",
                     "tools": ["draw_tarot_cards", "end_call"]}


@pytest.mark.parametrize("script", ["nope", "../scripts/tarot", "tarot.toml", "", 3, None])
def test_a_call_naming_no_ready_script_is_a_400_and_places_no_caller(script):
    h = make_harness()
    response = h.client.post("/_sandbox/calls", json={"script": script})
    assert response.status_code == 400
    assert response.get_json() == {"error": "script must be the name of a ready script ("
                                   + ", ".join(ready_scripts()) + ")"}
    assert h.client.get("/_sandbox/calls").get_json()["calls"] == []
    assert h.events(1) == []


def test_a_scripted_call_plays_the_script_through_its_agent_then_hangs_up(mock):  # noqa: F811
    server, h = McpServer(mock), make_harness()
    placed = h.client.post("/_sandbox/calls", json={"script": "orders"})
    assert placed.status_code == 201
    answer = placed.get_json()
    assert answer["script"] == "orders" and answer["channel"].startswith("orders_")
    assert set(answer) == {"channel", "uid", "id", "script"}
    channel = answer["channel"]
    assert the_call(h, answer["id"])["script_state"] == "waiting"
    h.advance(10)  # no timed leave: the caller waits for its agent (up to 20 s)
    assert caller_events(h, channel) == [JOIN]

    agent_id = join_in(h, channel)
    h.advance(0.3)  # the agent runs, lists its tools, and the script plays (inline here)

    call = the_call(h, answer["id"])
    assert (call["script"], call["script_state"], call["script_outcome"]) == (
        "orders", "ok", "ok")
    assert call["present"] is False and caller_events(h, channel) == [JOIN, LEAVE]
    calls = [m["params"] for m, _, _ in server.received if m.get("method") == "tools/call"]
    assert [c["name"] for c in calls] == ["lookup_order", "lookup_order"]
    history = agent(h, agent_id)["history"]
    assert {"role": "tool", "content": "lookup_order (ok): lookup_order done"} in history


def test_a_script_that_fails_records_its_one_line_error_and_still_hangs_up(mock):  # noqa: F811
    McpServer(mock)  # lists end_call, flag_urgent, lookup_order: no transfer_call
    h = make_harness()
    answer = h.client.post("/_sandbox/calls", json={"script": "triage"}).get_json()
    join_in(h, answer["channel"])
    h.advance(0.3)
    call = the_call(h, answer["id"])
    assert call["script_state"] == "failed"
    assert call["script_outcome"].endswith(
        "triage.toml: the agent did not list the tool transfer_call (it listed: end_call, "
        "flag_urgent, lookup_order)")
    assert caller_events(h, answer["channel"]) == [JOIN, LEAVE]


def test_a_scripted_caller_whose_agent_never_comes_gives_up_and_hangs_up():
    h = make_harness()
    answer = h.client.post("/_sandbox/calls", json={"script": "tarot"}).get_json()
    h.advance(19)
    assert the_call(h, answer["id"])["script_state"] == "waiting"
    h.advance(1)
    call = the_call(h, answer["id"])
    assert (call["script_state"], call["script_outcome"]) == (
        "failed", f"no agent was ready in {answer['channel']} within 20 s")
    assert caller_events(h, answer["channel"]) == [JOIN, LEAVE]


def test_a_scripted_caller_has_no_automatic_turns():
    h = make_harness()
    answer = h.client.post("/_sandbox/calls", json={"script": "appointments",
                                                    "channel": "room-9"}).get_json()
    assert answer["channel"] == "room-9"
    assert h.sandbox.world.presence[("room-9", "111")].scripted is True


def test_make_run_routes_the_channel_of_every_ready_scripts_persona(monkeypatch):
    from config import Settings
    from scripts import run

    monkeypatch.delenv("PERSONA_ROUTES", raising=False)
    routes = run._tool_settings(Settings.for_tests())["PERSONA_ROUTES"].split(",")
    for name, script in ready_scripts().items():
        assert f"{script.persona}_*={script.persona}" in routes, name
