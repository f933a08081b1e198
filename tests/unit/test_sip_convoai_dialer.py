"""OUTBOUND_BACKEND=convoai: SipService dials through ConvoAI's telephony (one /call, no join, no
gateway), hangs such calls up there, and follows their 201/202 call states; with the default,
the gateway path is untouched; and the order of an operator's hang-up on both kinds of leg. Through
the real store and a fake ConvoAI."""

from __future__ import annotations

import itertools
import json
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from calls import lifecycle as lc
from calls.service import CallService
from config import SANDBOX_APP_CERTIFICATE, SANDBOX_APP_ID, Settings
from convoai.errors import InvalidRequest, UpstreamError
from ncs.events import CallStateEvent
from sandbox.tokens import verify_rtc_token
from sip.convoai_dialer import hangup_end_reason
from sip.errors import CallNotFound, GatewayUnavailable
from sip.models import OutboundResult
from sip.service import SipService
from store import WORK_LEASE_S, StoreUnavailable
from tests.fakes import FakeConvoAI, FakeGateway
from tools.builtin import BuiltinTools

TO, FROM = "+12025550100", "+12025550199"


@dataclass
class DialingGateway(FakeGateway):
    """The gateway's outbound, recorded: the convoai backend must never reach it."""

    dialled: list[dict[str, Any]] = field(default_factory=list)

    def outbound(self, **kwargs: Any) -> OutboundResult:
        self.dialled.append(kwargs)
        return OutboundResult(callid=f"gw-{len(self.dialled)}")


@pytest.fixture
def convoai() -> FakeConvoAI:
    return FakeConvoAI()


@pytest.fixture
def gateway() -> DialingGateway:
    return DialingGateway()


def make_sip(settings: Settings, store, convoai, gateway) -> SipService:
    ids = (f"call{n:04d}" for n in itertools.count(1))
    calls = CallService(settings, store, convoai, new_id=lambda: next(ids))
    return SipService(settings, store, calls, calls.personas, gateway, run_async=False)


@pytest.fixture
def sip(settings, store, convoai, gateway) -> SipService:
    return make_sip(replace(settings, outbound_backend="convoai"), store, convoai, gateway)


def place(sip: SipService):
    return sip.place_outbound(to=TO, caller_id=FROM, persona=None, variables={"name": "Ada"},
                              region="NA", prompt="false", events_url=None).call


def kinds(store, call_id: str, source: str | None = None) -> list[str]:
    return [e["kind"] for e in store.timeline(call_id) if source in (None, e["source"])]


def state_event(state: str, call, *, agent_id: str | None = "agent-1", **extra: Any):
    return CallStateEvent(direction="outbound", state=state, event_type=202, agent_id=agent_id,
                          name=call.agent_name, channel=call.channel, labels={},
                          report_ms=1_700_000_000_000, reason=extra.get("reason"))


# -- dialling --------------------------------------------------------------------------------


def test_convoai_backend_places_one_call_with_the_joins_properties_and_no_gateway(
        sip, store, convoai, gateway, settings):
    call = place(sip)

    assert convoai.count("call") == 1 and convoai.count("join") == 0
    assert gateway.dialled == []
    sent = convoai.placed[call.agent_name]
    assert (sent["to_number"], sent["from_number"], sent["rtc_uid"]) == (
        TO, FROM, str(settings.pstn_uid))
    # The same properties a join for this call carries: the agent's uid and token, the phone
    # leg as its only remote uid, the call's variables.
    props = sent["properties"]
    assert (props["channel"], props["agent_rtc_uid"], props["remote_rtc_uids"]) == (
        call.channel, str(settings.agent_uid), [str(settings.pstn_uid)])
    assert props["llm"]["template_variables"]["name"] == "Ada"
    verify_rtc_token(props["token"], app_id=SANDBOX_APP_ID, certificate=SANDBOX_APP_CERTIFICATE,
                     channel=call.channel, uid=str(settings.agent_uid), now=time.time())
    # The gateway leg's own 007 token, for PSTN_UID in the call's channel.
    verify_rtc_token(sent["rtc_token"], app_id=SANDBOX_APP_ID,
                     certificate=SANDBOX_APP_CERTIFICATE, channel=call.channel,
                     uid=str(settings.pstn_uid), now=time.time())
    record = store.get_call(call.id)
    assert (record.state, record.agent_id) == (lc.ACTIVE, "agent-1")
    assert ["outbound_call_placed", "agent_started"] == [
        k for k in kinds(store, call.id) if k in ("outbound_call_placed", "agent_started")]


def test_the_gateway_backend_still_joins_then_dials_the_gateway(
        settings, store, convoai, gateway):
    sip = make_sip(settings, store, convoai, gateway)
    call = place(sip)

    assert (convoai.count("join"), convoai.count("call")) == (1, 0)
    assert [d["to"] for d in gateway.dialled] == [TO]
    assert store.get_call(call.id).gateway_callid == "gw-1"


def test_a_refused_call_ends_as_outbound_failed_with_no_number_in_timeline_or_logs(
        sip, store, convoai, caplog):
    convoai.call_errors.append(InvalidRequest(status=400, reason="invalid_number",
                                              detail=f"{TO} is not a number"))
    with caplog.at_level(logging.DEBUG):
        call = place(sip)

    record = store.get_call(call.id)
    assert (record.state, record.end_reason) == (lc.ENDED, "outbound_failed")
    failed = [e for e in store.timeline(call.id) if e["kind"] == "outbound_failed"]
    assert failed == [{"at": failed[0]["at"], "source": "convoai", "kind": "outbound_failed",
                       "detail": {"error": "InvalidRequest", "status": 400}}]
    assert TO not in caplog.text and "is not a number" not in caplog.text


def test_after_a_5xx_the_sweeper_looks_for_an_agent_that_may_have_started(
        sip, store, convoai, clock):
    convoai.call_errors.append(UpstreamError(status=503, reason="unavailable"))
    call = place(sip)
    assert store.get_call(call.id).state == lc.STOPPING

    clock.advance(WORK_LEASE_S + 1)
    sip.calls.sweep()

    record = store.get_call(call.id)
    assert (record.state, record.end_reason) == (lc.ENDED, "outbound_failed")


def test_a_call_hung_up_before_its_dial_is_never_dialled(sip, store, convoai):
    call = sip.outbound_call(to=TO, caller_id=FROM, persona=None, variables={})
    sip.hangup(call)
    sip.dial(call, region="NA", prompt="false", events_url=None)
    assert convoai.count("call") == 0


def end_while_convoai_dials(convoai: FakeConvoAI, store) -> None:
    """Make the (only) call end as the operator's while ConvoAI's /call is in flight."""
    place_call = convoai.place_call

    def place_then_end(name: str, **kwargs: Any) -> str:
        agent_id = place_call(name, **kwargs)
        [call] = store.list_calls()
        store.end_call(call.id, "operator_hangup")
        return agent_id

    convoai.place_call = place_then_end


def test_a_call_ended_while_convoai_dials_it_has_its_leg_hung_up_and_its_agent_stopped(
        sip, store, convoai):
    # The operator hangs up (or the caller's leave lands) while /call is still in flight: the
    # agent ConvoAI then reports must not stay in the call.
    end_while_convoai_dials(convoai, store)
    call = place(sip)

    assert [k for k, _ in convoai.calls if k in ("hangup", "leave")] == ["hangup", "leave"]
    assert convoai.running() == []
    [hung_up] = [e for e in store.timeline(call.id) if e["kind"] == "convoai_hung_up"]
    assert hung_up["source"] == "service"
    assert store.get_call(call.id).end_reason == "operator_hangup"


def test_an_answered_call_whose_record_fails_keeps_its_agent(settings, store, convoai,
                                                            gateway, monkeypatch):
    # The callee picked up: a store that fails to note the leg's call id must not end the
    # call under them (the gateway's events and the reconciler see to the record).
    sip = make_sip(settings, store, convoai, gateway)

    def store_down(*args: Any, **kwargs: Any) -> None:
        raise StoreUnavailable("the store is down")

    monkeypatch.setattr(store, "set_gateway_callid", store_down)
    place(sip)  # no error: an API caller must not dial the callee again
    [call] = store.list_calls()
    assert call.state == lc.ACTIVE and len(convoai.running()) == 1


def test_a_call_hung_up_while_the_gateway_rings_has_the_answered_leg_hung_up(
        settings, store, convoai, gateway):
    # The operator's hang-up finds no leg yet (the gateway has not answered): once the
    # gateway answers, the leg it reports must be hung up, not left in an empty channel.
    sip = make_sip(settings, store, convoai, gateway)
    outbound = gateway.outbound

    def answer_after_a_hangup(**kwargs: Any) -> OutboundResult:
        [call] = store.list_calls()
        assert sip.hangup(call) == "call_ending"
        return outbound(**kwargs)

    gateway.outbound = answer_after_a_hangup
    call = place(sip)

    assert gateway.ended == ["gw-1"] and convoai.running() == []
    record = store.get_call(call.id)
    assert (record.state, record.end_reason) == (lc.ENDED, "operator_hangup")
    assert "gateway_hung_up" in kinds(store, call.id, "service")


def test_a_failed_hangup_of_a_leg_convoai_dialled_meanwhile_still_stops_the_agent(
        sip, store, convoai):
    end_while_convoai_dials(convoai, store)
    convoai.hangup_errors.append(UpstreamError(status=503, reason="unavailable"))
    call = place(sip)

    assert convoai.running() == [] and convoai.count("leave") == 1
    assert "convoai_hangup_failed" in kinds(store, call.id, "service")


def test_a_dial_that_fails_unexpectedly_ends_its_call_and_stops_its_agent(
        settings, store, convoai, gateway):
    # The gateway refusing or failing ends the call in _dial; anything else (a fault of ours)
    # must not leave the agent waiting in a channel no phone leg will join.
    sip = make_sip(settings, store, convoai, gateway)

    def broken_outbound(**kwargs: Any) -> OutboundResult:
        raise RuntimeError("a bug")

    gateway.outbound = broken_outbound
    with pytest.raises(RuntimeError):
        place(sip)
    [call] = store.list_calls()
    assert (call.state, call.end_reason) == (lc.ENDED, "outbound_failed")
    assert convoai.count("join") == 1 and convoai.running() == []


@pytest.mark.parametrize(("region", "prompt", "message"), [
    ("XX", "false", "unknown region"), ("NA", "loud", "prompt must be one of")])
def test_a_dial_the_gateway_could_not_be_asked_for_is_refused_before_anything_starts(
        settings, store, convoai, gateway, region, prompt, message):
    sip = make_sip(settings, store, convoai, gateway)
    with pytest.raises(ValueError, match=message):
        sip.place_outbound(to=TO, caller_id=FROM, persona=None, variables={}, region=region,
                           prompt=prompt, events_url=None)
    assert store.list_calls() == [] and convoai.calls == [] and gateway.dialled == []


# -- hanging up ------------------------------------------------------------------------------


def test_the_operators_hangup_goes_to_convoai_not_the_gateway(sip, store, convoai, gateway):
    call = store.get_call(place(sip).id)

    assert sip.hangup(call) == "call_ending"

    assert ("hangup", "agent-1") in convoai.calls and gateway.ended == []
    assert store.get_call(call.id).end_reason == "operator_hangup"
    [hung_up] = [e for e in store.timeline(call.id) if e["kind"] == "convoai_hung_up"]
    assert (hung_up["source"], hung_up["detail"]) == (
        "service", {"agent_id": "agent-1", "already_gone": False})


def test_an_operators_hangup_stays_the_operators_when_convoais_hangup_event_comes_first(
        sip, store, convoai):
    # ConvoAI reports the leg's HANGUP (NCS 202) as soon as it hangs up: under load that
    # webhook can be handled by another worker before the operator's request has ended the
    # call. The end reason must still say the operator ended it.
    call = store.get_call(place(sip).id)
    hang_up_call = convoai.hang_up_call

    reported = []

    def hang_up_then_report(agent_id: str) -> bool:
        hung_up = hang_up_call(agent_id)
        reported.append(sip.convoai_call_state(state_event("HANGUP", call),
                                               notice_id="n-hangup"))
        return hung_up

    convoai.hang_up_call = hang_up_then_report
    assert sip.hangup(call) == "call_ending"

    assert [answer["outcome"] for answer in reported] == ["already_ended"]
    record = store.get_call(call.id)
    assert (record.state, record.end_reason) == (lc.ENDED, "operator_hangup")
    assert "call_hangup" in kinds(store, call.id, "convoai")


def test_an_operators_hangup_convoai_cannot_take_still_stops_the_agent(sip, store, convoai):
    call = store.get_call(place(sip).id)
    convoai.hangup_errors.append(UpstreamError(status=503, reason="unavailable"))

    assert sip.hangup(call) == "call_ending"

    record = store.get_call(call.id)
    assert (record.state, record.end_reason) == (lc.ENDED, "operator_hangup")
    assert ("leave", "agent-1") in convoai.calls and convoai.running() == []
    [failed] = [e for e in store.timeline(call.id) if e["kind"] == "convoai_hangup_failed"]
    assert (failed["source"], failed["detail"]) == (
        "service", {"error": "UpstreamError", "status": 503})


def test_a_gateway_call_is_not_hung_up_through_convoai(settings, store, convoai, gateway):
    sip = make_sip(settings, store, convoai, gateway)
    call = store.get_call(place(sip).id)
    sip.hangup(call)
    assert gateway.ended == ["gw-1"] and convoai.count("hangup") == 0


def test_a_gateway_calls_hangup_stays_the_operators_when_the_gateways_echo_comes_first(
        settings, store, convoai, gateway):
    # The gateway's call_hangup for the leg the operator ends can be handled by another worker
    # before the operator's request has ended the call.
    sip = make_sip(settings, store, convoai, gateway)
    call = store.get_call(place(sip).id)
    end_call = gateway.end_call
    echoed = []

    def end_then_echo(callid: str) -> None:
        end_call(callid)
        echoed.append(sip.gateway_event({"event": "call_hangup", "callid": callid,
                                         "hangup_cause": "NORMAL_CLEARING"}))

    gateway.end_call = end_then_echo
    assert sip.hangup(call) == "call_ending"

    assert echoed == ["already_ended"] and gateway.ended == ["gw-1"]
    record = store.get_call(call.id)
    assert (record.state, record.end_reason) == (lc.ENDED, "operator_hangup")
    assert convoai.running() == []
    assert "call_hangup" in kinds(store, call.id, "gateway")
    assert "gateway_hung_up" in kinds(store, call.id, "service")


def test_a_gateway_that_fails_the_hangup_leaves_the_leg_to_a_retry_and_stops_the_agent(
        settings, store, convoai, gateway):
    sip = make_sip(settings, store, convoai, gateway)
    call = store.get_call(place(sip).id)
    gateway.end_call_errors.append(GatewayUnavailable(status=503, action="endcall"))

    with pytest.raises(GatewayUnavailable):
        sip.hangup(call)
    record = store.get_call(call.id)
    assert (record.state, record.end_reason) == (lc.ENDED, "operator_hangup")
    assert convoai.running() == [] and gateway.ended == []
    [failed] = [e for e in store.timeline(call.id) if e["kind"] == "gateway_hangup_failed"]
    assert failed["detail"] == {"error": "GatewayUnavailable", "status": 503}

    # The operator tries again: the call has ended, but its leg is still asked to hang up.
    assert sip.hangup(store.get_call(call.id)) == "already_ended"
    assert gateway.ended == ["gw-1"]
    assert "gateway_hung_up" in kinds(store, call.id, "service")


def test_hanging_up_a_call_whose_leg_is_gone_answers_already_ended(
        settings, store, convoai, gateway):
    sip = make_sip(settings, store, convoai, gateway)
    call = store.get_call(place(sip).id)
    assert sip.hangup(call) == "call_ending"
    gateway.end_call_errors.append(CallNotFound(status=404, action="endcall"))

    assert sip.hangup(store.get_call(call.id)) == "already_ended"
    assert store.get_call(call.id).end_reason == "operator_hangup"


def test_the_end_call_tool_stops_the_agent_then_hangs_up_at_convoai(sip, store, convoai):
    call = store.get_call(place(sip).id)
    ended, agent_id = store.end_call(call.id, "agent_ended")
    BuiltinTools(sip)._stop_then_hang_up(call, agent_id)
    assert [k for k, _ in convoai.calls if k in ("leave", "hangup")] == ["leave", "hangup"]
    assert "convoai_hung_up" in kinds(store, call.id, "service")


def test_the_reconcilers_hang_up_reaches_only_the_legs_convoai_placed(sip, store, convoai):
    call = store.get_call(place(sip).id)
    inbound = store.create_call(channel="in_1", direction="inbound", state=lc.PENDING,
                                persona=None, agent_name_prefix="phoneagent",
                                new_id=lambda: "in0001", caller_uid=222)
    sip.hang_up_leg(inbound, source="reconciler")
    assert convoai.count("hangup") == 0 and kinds(store, inbound.id, "reconciler") == []
    sip.hang_up_leg(call, source="reconciler")
    assert convoai.count("hangup") == 1
    assert "convoai_hung_up" in kinds(store, call.id, "reconciler")


def test_the_end_call_tool_puts_a_failed_gateway_hangup_on_the_timeline(
        settings, store, convoai, gateway):
    sip = make_sip(settings, store, convoai, gateway)
    call = store.get_call(place(sip).id)
    ended, agent_id = store.end_call(call.id, "agent_ended")
    gateway.end_call_errors.append(GatewayUnavailable(status=503, action="endcall"))

    BuiltinTools(sip)._stop_then_hang_up(call, agent_id)  # logs, does not raise

    assert convoai.running() == [] and gateway.ended == []
    [failed] = [e for e in store.timeline(call.id) if e["kind"] == "gateway_hangup_failed"]
    assert (failed["source"], failed["detail"]) == (
        "service", {"error": "GatewayUnavailable", "status": 503})


# -- NCS 202 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("states", "reason"), [
    (["START", "CALLING", "RINGING", "ANSWERED", "HANGUP"], "convoai_hangup"),
    (["START", "CALLING", "RINGING", "HANGUP"], "outbound_no_answer"),
    (["START", "CALLING", "HANGUP"], "outbound_failed"),
    (["START", "HANGUP"], "outbound_failed"),
])
def test_the_hangup_ends_the_call_for_what_was_seen_before(sip, store, convoai, states, reason):
    call = place(sip)
    answers = [sip.convoai_call_state(state_event(s, call), notice_id=f"n-{i}")
               for i, s in enumerate(states)]

    assert [a["outcome"] for a in answers] == ["recorded"] * (len(states) - 1) + ["call_ended"]
    record = store.get_call(call.id)
    assert (record.state, record.end_reason) == (lc.ENDED, reason)
    timeline = [e for e in store.timeline(call.id) if e["source"] == "convoai"
                and e["kind"].startswith("call_")]
    assert [e["kind"] for e in timeline] == [f"call_{s.lower()}" for s in states]
    assert timeline[-1]["detail"] == {"agent_id": "agent-1", "report_ms": 1_700_000_000_000}


def test_repeated_deliveries_are_recorded_once_and_end_nothing_twice(sip, store, convoai):
    call = place(sip)
    first = sip.convoai_call_state(state_event("HANGUP", call), notice_id="n-1")
    again = sip.convoai_call_state(state_event("HANGUP", call), notice_id="n-1")
    other_copy = sip.convoai_call_state(state_event("HANGUP", call), notice_id="n-2")

    assert [first["outcome"], again["outcome"], other_copy["outcome"]] == [
        "call_ended", "duplicate_notice", "already_ended"]
    assert kinds(store, call.id, "convoai").count("call_hangup") == 2
    assert [e for e in store.timeline(call.id) if e["kind"] == "call_ending"][0]["detail"] == {
        "reason": "outbound_failed"}


def test_a_start_before_the_agent_is_recorded_is_found_by_its_channel(sip, store, convoai):
    call = sip.outbound_call(to=TO, caller_id=FROM, persona=None, variables={})
    answer = sip.convoai_call_state(state_event("START", call, agent_id="not-yet"),
                                    notice_id="n-1")
    assert (answer["outcome"], answer["call_id"]) == ("recorded", call.id)


def test_events_of_another_services_agents_are_ignored(sip, store, convoai):
    call = place(sip)
    event = CallStateEvent(direction="outbound", state="HANGUP", event_type=202,
                           agent_id="agent-1", name="someone-else", channel=call.channel,
                           labels={}, report_ms=None, reason=None)
    assert sip.convoai_call_state(event, notice_id="n-1")["status"] == "ignored"
    assert store.get_call(call.id).state == lc.ACTIVE


def test_a_hangup_reason_is_kept_on_the_timeline(sip, store, convoai):
    call = place(sip)
    sip.convoai_call_state(state_event("HANGUP", call, reason="busy"), notice_id="n-1")
    (hangup,) = [e for e in store.timeline(call.id) if e["kind"] == "call_hangup"]
    assert hangup["detail"]["reason"] == "busy"
    assert json.dumps(hangup["detail"]).count(TO) == 0


@pytest.mark.parametrize(("direction", "seen", "reason"), [
    ("outbound", {"call_answered", "call_ringing"}, "convoai_hangup"),
    ("outbound", {"call_ringing"}, "outbound_no_answer"),
    ("outbound", {"call_start", "call_calling"}, "outbound_failed"),
    ("inbound", {"call_start"}, "convoai_hangup"),
])
def test_hangup_end_reasons_are_the_disposition_contract(direction, seen, reason):
    assert hangup_end_reason(direction, seen) == reason


def test_the_api_says_a_call_is_ended_when_the_gateway_failed_to_hang_up_its_leg(app, client):
    gateway = FakeGateway(end_call_errors=[GatewayUnavailable(status=503, action="endcall")])
    app.extensions["sip"].gateway = gateway
    call = app.extensions["store"].create_call(
        channel="ch_api_hangup", direction="inbound", state=lc.PENDING, persona=None,
        agent_name_prefix="pa", new_id=lambda: "callapi1", caller_uid=111,
        gateway_callid="gw-api")
    admin = {"Authorization": "Bearer sandbox-admin-token"}

    failed = client.post(f"/api/calls/{call.id}/hangup", headers=admin)
    assert failed.status_code == 502
    body = failed.get_json()
    assert body["error"] == "gateway_error"
    assert body["message"].startswith("the call is ended and its agent stopped, but the SIP "
                                      "gateway did not hang up the phone leg")

    again = client.post(f"/api/calls/{call.id}/hangup", headers=admin)
    assert (again.status_code, again.get_json()["outcome"]) == (200, "already_ended")
    assert gateway.ended == ["gw-api"]
