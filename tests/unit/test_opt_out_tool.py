"""The built-in ``opt_out`` tool on the real store: the other party's number goes on the
do-not-call list once, from the right side of the call, masked everywhere it is recorded."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from calls.service import CallService
from config import Settings
from sip.service import SipService
from tests.fakes import FakeConvoAI, FakeGateway
from tests.unit.test_tools_service import BOOKING_PERSONA
from tools.catalog import ONCE_BUILTINS
from tools.service import ToolService

CALLER, CALLED = "+15557654321", "+18005550100"


@pytest.fixture
def tools(tmp_path: Path, database_url: str, store, clock) -> ToolService:
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "booking.toml").write_text(BOOKING_PERSONA.replace(
        'builtin_tools = ["end_call",', 'builtin_tools = ["opt_out", "end_call",'))
    settings = Settings.for_tests(database_url=database_url, personas_dir=str(personas),
                                  public_url="https://calls.example.com",
                                  persona_keys={"BOOKING_SECRET": "whsec_" + "c" * 44})
    ids = (f"call{n:04d}" for n in itertools.count(1))
    calls = CallService(settings, store, FakeConvoAI(), new_id=lambda: next(ids))
    sip = SipService(settings, store, calls, calls.personas, FakeGateway(), run_async=False)
    return ToolService(store, calls, sip, sleep=lambda s: clock.advance(s))


def new_call(tools: ToolService, direction: str, caller: str | None = CALLER,
             called: str | None = CALLED):
    return tools.store.create_call(
        channel=f"ch-{direction}", direction=direction, state="pending", persona="booking",
        agent_name_prefix="phoneagent", new_id=tools.calls.new_id, caller_uid=111,
        caller_number=caller, called_number=called)


def opted_out(tools: ToolService, call_id: str) -> list[dict]:
    return [e for e in tools.store.timeline(call_id) if e["kind"] == "opted_out"]


def test_opt_out_is_a_once_builtin_with_an_optional_reason(tools):
    call = new_call(tools, "outbound")
    listed = {t["name"]: t for t in tools.list_tools(call)}
    assert "opt_out" in ONCE_BUILTINS
    schema = listed["opt_out"]["inputSchema"]
    assert schema["required"] == [] and schema["properties"]["reason"]["type"] == "string"
    assert listed["opt_out"]["annotations"]["destructiveHint"] is True


def test_an_outbound_call_lists_the_number_dialled_once_even_if_asked_twice(tools):
    call = new_call(tools, "outbound")
    first = tools.call_tool(call, "opt_out", {"reason": "asked not to be called"})
    again = tools.call_tool(call, "opt_out", {"reason": "asked not to be called"})
    assert first == again and first["isError"] is False
    assert "will not be called again" in first["content"][0]["text"]
    listed = tools.store.get_suppression(CALLED)
    assert (listed["source"], listed["call_id"]) == ("opt_out", call.id)
    assert tools.store.get_suppression(CALLER) is None
    assert [s["number"] for s in tools.store.list_suppressions()] == [CALLED]
    [event] = opted_out(tools, call.id)  # the ledger ran it once
    assert event["detail"] == {"number": "*******0100", "already_listed": False,
                               "reason": "asked not to be called"}
    assert CALLED not in json.dumps(tools.store.timeline(call.id)[1:])


def test_an_inbound_call_lists_the_callers_number(tools):
    call = new_call(tools, "inbound")
    assert tools.call_tool(call, "opt_out", {})["isError"] is False
    assert tools.store.get_suppression(CALLER)["call_id"] == call.id
    assert tools.store.get_suppression(CALLED) is None
    assert opted_out(tools, call.id)[0]["detail"] == {"number": "*******4321",
                                                       "already_listed": False}


@pytest.mark.parametrize("caller", [None, "", "7373", "sip:alice@pbx.example.com"])
def test_a_call_without_a_phone_number_is_an_error_the_agent_can_say(tools, caller):
    call = new_call(tools, "inbound", caller=caller)
    result = tools.call_tool(call, "opt_out", {})
    assert result["isError"] is True
    assert result["content"][0]["text"].startswith("I could not note the number")
    assert tools.store.list_suppressions() == [] and opted_out(tools, call.id) == []


def test_a_number_already_on_the_list_stays_listed_once_and_the_timeline_says_so(tools):
    tools.store.add_suppression(CALLED, source="import")
    call = new_call(tools, "outbound")
    assert tools.call_tool(call, "opt_out", {})["isError"] is False
    assert [s["source"] for s in tools.store.list_suppressions()] == ["import"]
    assert opted_out(tools, call.id)[0]["detail"]["already_listed"] is True
