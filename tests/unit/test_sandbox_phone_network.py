"""The sandbox's SIP gateway dials like a phone network (sandbox/phone_network.py): fictional
numbers answer, are busy, ring out, reach voicemail or fail, with the lifecycle webhooks of
reference B.3; a voicemail greeting reaches the channel's agent, which hangs up through the
join's MCP server when it was given ``end_call``."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
import responses

from sandbox import phone_network
from sandbox.app import create_sandbox_app
from sandbox.clock import FakeClock
from sandbox.config import ConfigError, SandboxConfig
from sandbox.ncs_sender import RecordingTransport
from sandbox.testing import WEBHOOK_URL, Harness
from tests.unit.test_sandbox_sip import Peer, Sip, make_sip
from tests.unit.test_sandbox_tools import MCP_URL, McpServer, agent


@pytest.fixture
def sip() -> Sip:
    return make_sip()


def dial(sip: Sip, kind: str, index: int = 0) -> Any:
    return sip.outbound(to=phone_network.example(kind, index))


def hangup_of(sip: Sip) -> dict[str, Any]:
    [hangup] = sip.peer.hooks("call_hangup")
    return hangup


def test_a_number_that_answers_is_bridged_like_a_person(sip):
    response = dial(sip, phone_network.ANSWERED, 7)
    assert response.get_json()["success"] is True
    assert sip.peer.events() == ["call_initiated", "call_ringing", "call_answered",
                                 "agora_bridge_start"]
    assert sip.calls()[0]["voicemail"] == ""


def test_a_busy_number_is_busy_and_never_joins(sip):
    response = dial(sip, phone_network.BUSY, 19)
    assert response.get_json() == {"success": False, "reason": "Busy"}
    assert sip.ncs() == []
    assert sip.peer.events() == ["call_initiated", "call_ringing", "call_hangup"]
    assert hangup_of(sip)["hangup_cause"] == "USER_BUSY"


def test_a_number_nobody_answers_rings_for_the_ring_timeout_then_gives_up():
    sip = make_sip(outbound_ring_timeout_s=3.0)
    before = sip.sb.clock.now()
    response = dial(sip, phone_network.NO_ANSWER, 3)
    assert sip.sb.clock.now() - before == pytest.approx(3.0)
    assert response.get_json() == {"success": False, "reason": "NoAnswer"}
    assert sip.ncs() == []
    assert sip.peer.events() == ["call_initiated", "call_ringing", "call_hangup"]
    hangup = hangup_of(sip)
    assert (hangup["hangup_cause"], hangup["callid"], hangup["billsec"]) == ("NO_ANSWER", "",
                                                                             "0")
    assert (sip.calls()[0]["state"], sip.calls()[0]["reason"]) == ("failed", "NoAnswer")


def test_a_number_that_does_not_exist_is_invalid_at_once(sip):
    before = sip.sb.clock.now()
    response = dial(sip, phone_network.FAILED)
    assert sip.sb.clock.now() == before
    assert response.get_json() == {"success": False, "reason": "Invalid"}
    assert sip.peer.events() == ["call_initiated", "call_hangup"]
    assert hangup_of(sip)["hangup_cause"] == "INVALID_NUMBER_FORMAT"


def test_a_queued_fault_beats_the_phone_network(sip):
    sip.sb.client.post("/_sandbox/faults", json={"outbound_results": ["answered"]})
    assert dial(sip, phone_network.FAILED).get_json()["success"] is True


def test_voicemail_answers_and_bridges_like_a_person_and_the_machine_hangs_up_after_the_duration(
        sip):
    response = dial(sip, phone_network.VOICEMAIL)
    assert response.get_json()["success"] is True
    assert sip.ncs() == [(103, "room-1", 111)]
    assert sip.peer.events() == ["call_initiated", "call_ringing", "call_answered",
                                 "agora_bridge_start"]
    assert sip.calls()[0]["voicemail"] == "waiting"  # no agent in the channel yet
    sip.sb.advance(5)
    assert hangup_of(sip)["hangup_cause"] == "NORMAL_CLEARING"
    sip.sb.advance(0.1)
    assert sip.calls()[0]["voicemail"] == "missed"


@pytest.mark.parametrize("value", ["-1", "soon"])
def test_the_ring_timeout_is_validated_like_the_other_settings(value):
    with pytest.raises(ConfigError, match="OUTBOUND_RING_TIMEOUT_S|outbound_ring_timeout_s"):
        SandboxConfig.from_env({"SANDBOX_OUTBOUND_RING_TIMEOUT_S": value})
    assert SandboxConfig.from_env({"SANDBOX_OUTBOUND_RING_TIMEOUT_S": "0.5"}
                                  ).outbound_ring_timeout_s == 0.5


# -- the agent hears the machine --------------------------------------------------------------

def make_line() -> Sip:
    """A sandbox with the gateway's fake service and MCP connections run inline."""
    clock = FakeClock()
    transport = RecordingTransport(clock)
    peer = Peer()
    settings = dataclasses.replace(SandboxConfig(webhook_url=WEBHOOK_URL))
    app = create_sandbox_app(settings, clock=clock, transport=transport, rng=random.Random(7),
                             start_background=False, sip_http=peer, spawn=lambda work: work())
    return Sip(Harness(app, app.test_client(), clock, transport, app.extensions["sandbox"]),
               peer)


def join_agent(sip: Sip, *, tools: bool) -> str:
    """An agent in room-1 listening to uid 111, the callee's, with the MCP server or not."""
    body = sip.sb.body()
    if tools:
        body["properties"]["advanced_features"] = {"enable_tools": True}
        body["properties"]["llm"]["mcp_servers"] = [{
            "name": "phoneagent", "endpoint": MCP_URL, "transport": "streamable_http",
            "headers": {"Authorization": "Bearer t"}}]
    response = sip.sb.join(body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["agent_id"]


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


GREETING = "Hi, you've reached +12025550160. I can't take your call right now"


def test_an_agent_with_end_call_hears_the_greeting_and_hangs_up_with_reason_voicemail(mock):
    server, sip = McpServer(mock), make_line()
    agent_id = join_agent(sip, tools=True)
    assert dial(sip, phone_network.VOICEMAIL).get_json()["success"] is True
    sip.sb.advance(0.1)  # the agent is running and has listed its tools

    calls = [m for m, _, _ in server.received if m.get("method") == "tools/call"]
    assert [c["params"] for c in calls] == [{"name": "end_call",
                                             "arguments": {"reason": "voicemail"}}]
    history = agent(sip.sb, agent_id)["history"]
    user = [h["content"] for h in history if h["role"] == "user"]
    assert len(user) == 1 and user[0].startswith(GREETING)
    assert history[-2:] == [
        {"role": "assistant", "content": '[tool call] end_call {"reason": "voicemail"}'},
        {"role": "tool", "content": "end_call (ok): end_call done"}]
    assert sip.calls()[0]["voicemail"] == "played"
    sip.sb.advance(1)
    assert len([m for m, _, _ in server.received if m.get("method") == "tools/call"]) == 1

    # The greeting is in the history ConvoAI's 103 carries once the agent stops.
    sip.sb.leave(agent_id)
    sip.sb.advance(1)
    [history_event] = [e for e in sip.sb.events(17) if e["eventType"] == 103]
    assert any(c["content"].startswith(GREETING) for c in history_event["payload"]["contents"])


def test_an_agent_without_tools_only_hears_the_greeting_and_the_machine_hangs_up_later():
    sip = make_line()
    assert dial(sip, phone_network.VOICEMAIL).get_json()["success"] is True
    agent_id = join_agent(sip, tools=False)  # joins after the bridge this time
    sip.sb.advance(0.3)

    history = agent(sip.sb, agent_id)["history"]
    assert history[0]["role"] == "assistant"  # its greeting
    assert history[1]["role"] == "user" and history[1]["content"].startswith(GREETING)
    assert len(history) == 2  # a machine makes no small talk
    assert agent(sip.sb, agent_id)["tool_calls"] == []
    sip.sb.advance(5)
    assert hangup_of(sip)["hangup_cause"] == "NORMAL_CLEARING"


def test_a_person_is_never_played_a_voicemail_greeting():
    sip = make_line()
    agent_id = join_agent(sip, tools=False)
    dial(sip, phone_network.ANSWERED)
    sip.sb.advance(0.3)
    history = agent(sip.sb, agent_id)["history"]
    assert not any("leave a message" in h["content"] for h in history)
