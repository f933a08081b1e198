"""Agent tools on the real store (SQLite and PostgreSQL) with a fake ConvoAI and gateway: the
join's tools entry, the per-call token, the built-in tools, operator tools and the exactly-once
ledger."""

from __future__ import annotations

import base64
import itertools
import json
import threading
from pathlib import Path

import pytest
import responses
from standardwebhooks import Webhook

from calls import lifecycle as lc
from calls.lifecycle import CallerJoined, CallerLeft
from calls.service import CallService
from config import Settings
from personas.model import BUILTIN_TOOL_NAMES
from sip.errors import GatewayUnavailable
from sip.service import SipService
from tests.fakes import FakeConvoAI, FakeGateway
from tools.service import ToolService, once_id
from tools.tarot import DECK
from tools.tokens import token_hash

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
SHOP = "https://shop.example.com/agent-tools/book"

BOOKING_PERSONA = f"""
name = "booking"
description = "Books things."
prompt = "You book things."
greeting = "Hello."
failure_message = "Sorry."
builtin_tools = ["end_call", "flag_urgent", "draw_tarot_cards"]

[[tools]]
name = "book_slot"
description = "Book a slot"
url = "{SHOP}"
secret_env = "BOOKING_SECRET"
timeout_s = 2
side_effects = true
[tools.parameters]
type = "object"
required = ["slot"]
[tools.parameters.properties.slot]
type = "string"
[tools.parameters.properties.api_token]
type = "string"

[llm]
url = "https://api.openai.com/v1/chat/completions"
api_key_env = "OPENAI_API_KEY"
model = "gpt-4o-mini"

[tts]
vendor = "elevenlabs"
[tts.params]
base_url = "wss://api.elevenlabs.io/v1"
key_env = "ELEVENLABS_API_KEY"
voice_id_env = "ELEVENLABS_VOICE_ID"
model_id = "eleven_flash_v2_5"
"""


@pytest.fixture
def world(tmp_path: Path, database_url: str, store, clock):
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "booking.toml").write_text(BOOKING_PERSONA)
    # A persona with no tools at all (every built-in one has some).
    plain = BOOKING_PERSONA.split("[llm]")[1]
    (personas / "plain.toml").write_text(
        'name = "plain"\ndescription = "Talks."\nprompt = "You talk."\ngreeting = "Hello."\n'
        'failure_message = "Sorry."\n[llm]' + plain)
    settings = Settings.for_tests(database_url=database_url, personas_dir=str(personas),
                                  public_url="https://calls.example.com",
                                  persona_keys={"BOOKING_SECRET": SECRET})
    convoai = FakeConvoAI()
    ids = (f"call{n:04d}" for n in itertools.count(1))
    calls = CallService(settings, store, convoai, new_id=lambda: next(ids))
    gateway = FakeGateway()
    sip = SipService(settings, store, calls, calls.personas, gateway, run_async=False)
    tools = ToolService(store, calls, sip, sleep=lambda s: clock.advance(s))
    return settings, convoai, gateway, tools


def start(world, channel: str, persona: str):
    settings, convoai, gateway, tools = world
    calls = tools.calls
    calls.personas.default = persona
    calls.handle_caller_event(CallerJoined(channel=channel, uid=111, seq=1,
                                           notice_id=f"{channel}-j"), event_type=103)
    call = calls.store.calls_in_channel(channel)[0]
    return call, convoai.joined[call.agent_name]


def test_the_join_gives_the_agent_exactly_its_personas_tools_and_a_call_token(world):
    call, properties = start(world, "c1", "booking")
    assert properties["advanced_features"]["enable_tools"] is True
    (server,) = properties["llm"]["mcp_servers"]
    assert server["endpoint"] == "https://calls.example.com/mcp"
    assert server["transport"] == "streamable_http"
    assert server["allowed_tools"] == ["end_call", "flag_urgent", "draw_tarot_cards",
                                       "book_slot"]
    scheme, token = server["headers"]["Authorization"].split(" ")
    assert scheme == "Bearer" and len(token) >= 40
    tools = world[3]
    assert tools.call_for_token(token).id == call.id
    assert tools.call_for_token(token + "x") is None
    # Only the hash is kept.
    assert token not in json.dumps(tools.store.tool_calls_of(call.id))
    assert tools.store.call_for_token(token_hash(token)).id == call.id


def test_a_joins_token_is_committed_with_its_call_in_one_transaction(world, monkeypatch):
    settings, convoai, gateway, tools = world
    store = tools.calls.store
    transactions: list[str] = []
    write = store._write

    def counted_write():
        transactions.append("write")
        return write()

    monkeypatch.setattr(store, "_write", counted_write)
    sent: dict[str, object] = {}
    join = convoai.join

    def join_watching_the_store(name, properties, **kwargs):
        token = properties["llm"]["mcp_servers"][0]["headers"]["Authorization"].split()[1]
        sent.update(writes=len(transactions), call=store.call_for_token(token_hash(token)))
        return join(name, properties, **kwargs)

    monkeypatch.setattr(convoai, "join", join_watching_the_store)
    call, _ = start(world, "c1b", "booking")
    # The caller's event (call, notice, token) was the only write before the join went out, and
    # the agent's token already opened the endpoint for the call.
    assert sent["writes"] == 1
    assert sent["call"] is not None and sent["call"].id == call.id


def test_a_token_stops_working_when_its_call_ends(world):
    settings, convoai, gateway, tools = world
    call, properties = start(world, "c2", "booking")
    token = properties["llm"]["mcp_servers"][0]["headers"]["Authorization"].split()[1]
    tools.calls.handle_caller_event(CallerLeft(channel="c2", uid=111, seq=2, notice_id="c2-l",
                                               reason=1), event_type=104)
    assert tools.store.get_call(call.id).state == lc.ENDED
    assert tools.call_for_token(token) is None


def test_a_persona_without_tools_or_a_service_without_a_public_url_joins_without_tools(world):
    settings, convoai, gateway, tools = world
    _, properties = start(world, "c3", "plain")
    assert "mcp_servers" not in properties["llm"]
    assert "enable_tools" not in properties["advanced_features"]
    # Sandbox mode falls back to the local address; production without PUBLIC_URL leaves
    # tools out.
    assert settings.replace(public_url="").tools_url == "http://127.0.0.1:8000/mcp"
    tools.calls.settings = settings.replace(public_url="", sandbox=False)
    _, properties = start(world, "c3b", "booking")
    assert "mcp_servers" not in properties["llm"]


def test_tools_list_shows_each_tool_with_its_schema(world):
    call, _ = start(world, "c4", "support")
    listed = {t["name"]: t for t in world[3].list_tools(call)}
    assert list(listed) == ["transfer_call", "end_call", "search_knowledge"]
    assert listed["transfer_call"]["inputSchema"]["properties"]["destination"]["enum"] == [
        "desk"]
    assert set(BUILTIN_TOOL_NAMES) >= set(listed) - {"search_knowledge"}


def test_end_call_ends_the_call_stops_the_agent_and_hangs_up_once(world):
    settings, convoai, gateway, tools = world
    call, _ = start(world, "c5", "booking")
    tools.store.set_gateway_callid(call.id, "gw-5")
    call = tools.store.get_call(call.id)
    first = tools.call_tool(call, "end_call", {"reason": "caller said goodbye"})
    again = tools.call_tool(call, "end_call", {"reason": "caller said goodbye"})
    assert first == again and first["isError"] is False
    ended = tools.store.get_call(call.id)
    assert (ended.state, ended.end_reason) == (lc.ENDED, "agent_ended")
    assert not convoai.running()
    assert gateway.ended == ["gw-5"]


def test_transfer_goes_to_the_named_destination_once_and_refuses_other_names(world):
    settings, convoai, gateway, tools = world
    call, _ = start(world, "c6", "support")
    nowhere = tools.call_tool(call, "transfer_call", {"destination": "desk"})
    assert nowhere["isError"] and "phone network" in nowhere["content"][0]["text"]
    tools.store.set_gateway_callid(call.id, "gw-6")
    call = tools.store.get_call(call.id)
    raw = tools.call_tool(call, "transfer_call", {"destination": "+15550100"})
    assert raw["isError"] and gateway.transfers == []
    # The first attempt did nothing (no phone leg then), so asking again runs it again.
    done = tools.call_tool(call, "transfer_call", {"destination": "desk"})
    assert not done["isError"]
    assert tools.call_tool(call, "transfer_call", {"destination": "desk"}) == done
    assert gateway.transfers == [("gw-6", "+18005550123")]
    assert tools.store.get_call(call.id).end_reason == "transferred"


def test_a_failed_transfer_is_an_error_the_agent_can_say(world):
    settings, convoai, gateway, tools = world
    call, _ = start(world, "c7", "support")
    tools.store.set_gateway_callid(call.id, "gw-7")
    gateway.transfer_errors.append(GatewayUnavailable(status=None, reason="unavailable"))
    result = tools.call_tool(tools.store.get_call(call.id), "transfer_call",
                             {"destination": "desk"})
    assert result["isError"] and "did not go through" in result["content"][0]["text"]


def test_flag_urgent_is_on_the_timeline_and_queues_one_escalation_event(world):
    settings, convoai, gateway, tools = world
    tools.store.emit_events = True
    call, _ = start(world, "c8", "booking")
    result = tools.call_tool(call, "flag_urgent", {"summary": "Smoke in the kitchen at 4 Elm St"})
    assert not result["isError"]
    flags = [e for e in tools.store.timeline(call.id) if e["kind"] == "flagged_urgent"]
    assert flags[0]["detail"]["summary"] == "Smoke in the kitchen at 4 Elm St"
    assert [e["type"] for e in tools.store.outbox_events(call.id)].count("call.escalated") == 1


def test_tarot_cards_come_from_one_deck_and_never_twice_in_a_call(world):
    settings, convoai, gateway, tools = world
    call, _ = start(world, "c9", "booking")
    drawn: list[str] = []
    for _ in range(7):
        result = tools.call_tool(call, "draw_tarot_cards", {"count": 10})
        assert not result["isError"]
        drawn += [c["card"] for c in result["structuredContent"]["cards"]]
    assert len(drawn) == 70 == len(set(drawn)) and set(drawn) <= set(DECK)
    last = tools.call_tool(call, "draw_tarot_cards", {"count": 8})
    assert len({c["card"] for c in last["structuredContent"]["cards"]} | set(drawn)) == 78
    empty = tools.call_tool(call, "draw_tarot_cards", {"count": 1})
    assert empty["isError"]
    bad = tools.call_tool(call, "draw_tarot_cards", {"count": 11})
    assert bad["isError"] and "count" in bad["content"][0]["text"]


@responses.activate
def test_an_operator_tool_with_side_effects_reaches_the_operator_once(world):
    settings, convoai, gateway, tools = world
    call, _ = start(world, "c10", "booking")
    hook = responses.post(SHOP, json={"text": "Booked for 3 pm.", "booking": "B-1"})
    results = []

    def ask():
        results.append(tools.call_tool(call, "book_slot", {"slot": "15:00"}))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.append(tools.call_tool(call, "book_slot", {"slot": "15:00"}))
    assert hook.call_count == 1
    assert results[0] == results[1] == results[2]
    assert results[0]["structuredContent"] == {"text": "Booked for 3 pm.", "booking": "B-1"}
    sent = hook.calls[0].request
    assert sent.headers["Idempotency-Key"] == once_id(call.id, "book_slot", {"slot": "15:00"})
    body = Webhook(SECRET).verify(sent.body, dict(sent.headers))
    assert body["tool"] == "book_slot" and body["arguments"] == {"slot": "15:00"}
    assert body["call"]["id"] == call.id
    # Other arguments are another request.
    tools.call_tool(call, "book_slot", {"slot": "16:00"})
    assert hook.call_count == 2
    (entry, *_) = tools.store.tool_calls_of(call.id)
    assert entry["tool"] == "book_slot" and entry["outcome"] == "ok"


@responses.activate
def test_operator_failures_become_short_errors_and_secrets_are_masked(world):
    settings, convoai, gateway, tools = world
    call, _ = start(world, "c11", "booking")
    responses.post(SHOP, status=500, body="Traceback: boom")
    result = tools.call_tool(call, "book_slot", {"slot": "9", "api_token": "abcd-secret-1"})
    assert result["isError"] and "Traceback" not in json.dumps(result)
    (entry,) = tools.store.tool_calls_of(call.id)
    assert entry["outcome"] == "http_error"
    assert entry["arguments"]["api_token"] == "***"
    assert "abcd-secret-1" not in json.dumps(tools.store.timeline(call.id))
    wrong = tools.call_tool(call, "book_slot", {"when": "9"})
    assert wrong["isError"] and "slot" in wrong["content"][0]["text"]


@responses.activate
def test_a_run_whose_worker_died_is_sent_again_under_the_same_key_or_left_unknown(world, clock):
    settings, convoai, gateway, tools = world
    call, _ = start(world, "c12", "booking")
    key = once_id(call.id, "book_slot", {"slot": "10"})
    tools.store.claim_tool_call(tool_call_id=key, call_id=call.id, tool="book_slot", once=True,
                                arguments="{}", holder="dead:1", lease_s=1)
    hook = responses.post(SHOP, json={"text": "Booked."})
    clock.advance(5)
    result = tools.call_tool(call, "book_slot", {"slot": "10"})
    assert not result["isError"] and hook.call_count == 1
    assert hook.calls[0].request.headers["Idempotency-Key"] == key
    # A built-in is not run again: its effect may have happened.
    end_key = once_id(call.id, "end_call", {})
    tools.store.claim_tool_call(tool_call_id=end_key, call_id=call.id, tool="end_call",
                                once=True, arguments="{}", holder="dead:1", lease_s=1)
    clock.advance(5)
    unknown = tools.call_tool(call, "end_call", {})
    assert unknown["isError"] and tools.store.get_call(call.id).state == lc.ACTIVE
    # ... and the unknown outcome stays the answer: ending the call is not risked twice.
    assert tools.call_tool(call, "end_call", {}) == unknown
    assert tools.store.get_call(call.id).state == lc.ACTIVE


@responses.activate
def test_pii_is_redacted_in_the_ledger_and_flag_but_the_operator_gets_the_real_arguments(world):
    settings, convoai, gateway, tools = world
    tools.store.emit_events = True
    call, _ = start(world, "c20", "booking")
    hook = responses.post(SHOP, json={"text": "Booked."})
    slot = "15:00, card 4111 1111 1111 1111, mail jane.doe@example.com"
    assert not tools.call_tool(call, "book_slot", {"slot": slot})["isError"]
    assert not tools.call_tool(call, "flag_urgent",
                               {"summary": "Caller at +1 415 555 0132 is in danger"})["isError"]
    sent = Webhook(SECRET).verify(hook.calls[0].request.body, dict(hook.calls[0].request.headers))
    assert sent["arguments"] == {"slot": slot}
    (entry, _) = tools.store.tool_calls_of(call.id)
    assert entry["arguments"] == {"slot": "15:00, card [card_number], mail [email]"}
    timeline = tools.store.timeline(call.id)
    called = [e for e in timeline if e["kind"] == "tool_called"]
    assert called[0]["detail"]["redacted"] == {"card_number": 1, "email": 1}
    flags = [e for e in timeline if e["kind"] == "flagged_urgent"]
    assert flags[0]["detail"] == {"summary": "Caller at [phone] is in danger",
                                  "redacted": {"phone": 1}}
    stored = json.dumps([timeline, tools.store.tool_calls_of(call.id)])
    for raw in ("4111 1111 1111 1111", "jane.doe@example.com", "415 555 0132"):
        assert raw not in stored
