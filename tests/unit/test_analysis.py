"""Post-call analysis (calls/analysis.py) on the real store, with `responses` as the LLM, and
the sandbox's chat completions endpoint (sandbox/llm.py)."""

from __future__ import annotations

import itertools
import json

import jsonschema
import pytest
import responses

from calls.analysis import RETRY_DELAYS_S, Analyzer, response_schema
from calls.lifecycle import CallerJoined, CallerLeft
from calls.records import find_call_detail
from calls.service import CallService
from sandbox.testing import make_harness
from tests.fakes import FakeConvoAI

URL = "http://127.0.0.1:8090/v1/chat/completions"  # sandbox mode: the sandbox answers


def completion(content: dict, model: str = "gpt-test") -> dict:
    return {"model": model, "choices": [{"message": {"role": "assistant",
                                                     "content": json.dumps(content)}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30}}


@pytest.fixture
def world(settings, store, clock):
    convoai = FakeConvoAI()
    ids = (f"call{n:04d}" for n in itertools.count(1))
    settings = settings.replace(analysis_delay_s=10)
    service = CallService(settings, store, convoai, new_id=lambda: next(ids))
    service.personas.default = "triage"
    analyzer = Analyzer(settings, store, service.persona_of, clock=clock)
    return service, analyzer, convoai


def finished_call(world, clock, channel="a1", said=True):
    service, analyzer, convoai = world
    service.handle_caller_event(CallerJoined(channel=channel, uid=111, seq=1,
                                             notice_id=f"{channel}-j"), event_type=103)
    call = service.store.calls_in_channel(channel)[0]
    if said:
        convoai.agents[call.agent_id].history = [
            {"role": "assistant", "content": "This is the urgent line."},
            {"role": "user", "content": "There is smoke at 4 Elm Street, call me on 5550100."}]
    service.handle_caller_event(CallerLeft(channel=channel, uid=111, seq=2,
                                           notice_id=f"{channel}-l", reason=1), event_type=104)
    clock.advance(11)
    return call.id


TRIAGE_ANSWER = {"summary": "Smoke at Elm Street; a responder will call back.", "success": True,
                 "data": {"urgency": "high", "location": "4 Elm Street",
                          "callback_number": "5550100"}}


@responses.activate
def test_an_ended_call_is_analysed_once_with_the_personas_schema(world, clock):
    service, analyzer, _ = world
    service.store.emit_events = True
    call_id = finished_call(world, clock)
    hook = responses.post(URL, json=completion(TRIAGE_ANSWER))
    assert analyzer.run_due() == 1
    assert analyzer.run_due() == 0 and hook.call_count == 1  # once
    sent = json.loads(hook.calls[0].request.body)
    assert sent["response_format"]["type"] == "json_schema"
    assert "5550100" in sent["messages"][1]["content"]
    detail = find_call_detail(service.store, call_id)
    analysis = detail["analysis"]
    assert (analysis["state"], analysis["success"], analysis["model"]) == ("done", True,
                                                                           "gpt-test")
    assert analysis["data"] == TRIAGE_ANSWER["data"]
    assert analysis["prompt_tokens"] == 120
    assert [e["type"] for e in service.store.outbox_events(call_id)].count("call.analyzed") == 1


@responses.activate
def test_an_endpoint_that_fails_twice_then_answers_yields_one_analysis(world, clock):
    service, analyzer, _ = world
    call_id = finished_call(world, clock)
    responses.post(URL, status=500)
    responses.post(URL, body="not json")
    responses.post(URL, json=completion(TRIAGE_ANSWER))
    assert analyzer.run_due() == 0
    assert analyzer.run_due() == 0  # not due yet: waits RETRY_DELAYS_S[0]
    clock.advance(RETRY_DELAYS_S[0])
    assert analyzer.run_due() == 0
    clock.advance(RETRY_DELAYS_S[1])
    assert analyzer.run_due() == 1
    analysis = find_call_detail(service.store, call_id)["analysis"]
    assert analysis["state"] == "done" and analysis["attempts"] == 3
    assert len(responses.calls) == 3


@responses.activate
def test_an_endpoint_that_never_answers_leaves_the_call_marked_failed(world, clock):
    service, analyzer, _ = world
    service.store.emit_events = True
    call_id = finished_call(world, clock)
    responses.post(URL, status=503)
    for delay in (0, *RETRY_DELAYS_S):
        clock.advance(delay)
        analyzer.run_due()
    clock.advance(10_000)
    assert analyzer.run_due() == 0
    assert len(responses.calls) == len(RETRY_DELAYS_S) + 1
    analysis = find_call_detail(service.store, call_id)["analysis"]
    assert analysis["state"] == "failed" and analysis["error"] == "HTTP 503"
    kinds = [e["kind"] for e in service.store.timeline(call_id)]
    assert kinds.count("analysis_failed") == 1
    assert "call.analyzed" not in [e["type"] for e in service.store.outbox_events(call_id)]


@responses.activate
def test_an_answer_that_breaks_the_schema_is_not_kept(world, clock):
    service, analyzer, _ = world
    call_id = finished_call(world, clock)
    responses.post(URL, json=completion({**TRIAGE_ANSWER, "data": {"urgency": "extreme"}}))
    assert analyzer.run_due() == 0
    analysis = find_call_detail(service.store, call_id)["analysis"]
    assert analysis["state"] == "pending" and "schema" in analysis["error"]


def test_a_call_with_no_transcript_is_marked_empty_and_nothing_is_sent(world, clock):
    service, analyzer, _ = world
    call_id = finished_call(world, clock, said=False)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        hook = mocked.post(URL, json=completion(TRIAGE_ANSWER))
        analyzer.run_due()
        assert hook.call_count == 0
    assert find_call_detail(service.store, call_id)["analysis"]["state"] == "empty"


def test_a_call_is_not_queued_before_its_delay(world, clock):
    service, analyzer, _ = world
    call_id = finished_call(world, clock)
    clock.advance(-5)  # 6 s after the end; ANALYSIS_DELAY_S is 10 here
    analyzer.run_due()
    assert find_call_detail(service.store, call_id)["analysis"]["state"] == "pending"
    assert service.store.analysis_of(call_id) is None


def test_the_sandbox_answers_with_schema_valid_data_from_the_transcript(settings):
    from personas import load_registry

    persona = load_registry(settings).get("triage")
    harness = make_harness()
    client = harness.app.test_client()
    schema = response_schema(persona)
    body = {"model": "x", "messages": [
        {"role": "system", "content": "..."},
        {"role": "user", "content": "Agent: This is the urgent line.\nCaller: It is high "
                                    "urgency, smoke at the mill, call 555 0100."}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "call_analysis", "schema": schema}}}
    answer = client.post("/v1/chat/completions", json=body).get_json()
    content = json.loads(answer["choices"][0]["message"]["content"])
    jsonschema.validate(content, schema)
    assert content["data"]["urgency"] == "high"
    assert content["data"]["callback_number"] == "5550100"
    again = client.post("/v1/chat/completions", json=body).get_json()
    assert again["choices"] == answer["choices"]  # deterministic
    client.post("/_sandbox/llm", json={"fail": 1})
    assert client.post("/v1/chat/completions", json=body).status_code == 503
    assert client.post("/v1/chat/completions", json=body).status_code == 200


@responses.activate
def test_the_list_and_exports_carry_the_verdict_and_filter_on_it(app, client, clock):
    store = app.extensions["store"]
    service = app.extensions["calls"]
    service.convoai = FakeConvoAI()
    analyzer = Analyzer(app.extensions["settings"].replace(analysis_delay_s=0), store,
                        service.persona_of)
    for channel in ("ok_call", "bad_call"):
        service.handle_caller_event(CallerJoined(channel=channel, uid=111, seq=1,
                                                 notice_id=f"{channel}-j"), event_type=103)
        call = store.calls_in_channel(channel)[0]
        service.convoai.agents[call.agent_id].history = [{"role": "user", "content": "hi"}]
        service.handle_caller_event(CallerLeft(channel=channel, uid=111, seq=2,
                                               notice_id=f"{channel}-l", reason=1),
                                    event_type=104)
        verdict = {"summary": f"{channel} summary", "success": channel == "ok_call",
                   "data": {"topic": "billing", "sentiment": "neutral"}}
        responses.post(URL, json=completion(verdict))
        analyzer.run_due()
    admin = {"Authorization": "Bearer sandbox-admin-token"}
    listed = client.get("/api/calls", headers=admin).json["calls"]
    assert {c["channel"]: (c["analysis_state"], c["success"]) for c in listed} == {
        "ok_call": ("done", True), "bad_call": ("done", False)}
    failed = client.get("/api/calls?success=false", headers=admin).json["calls"]
    assert [c["channel"] for c in failed] == ["bad_call"]
    assert client.get("/api/calls?success=maybe", headers=admin).status_code == 400
    csv_text = client.get("/api/calls.csv", headers=admin).get_data(as_text=True)
    assert "analysis_state,success,summary" in csv_text.splitlines()[0]
    assert "bad_call summary" in csv_text
    lines = client.get("/api/calls.jsonl", headers=admin).get_data(as_text=True).splitlines()
    assert {json.loads(line)["summary"] for line in lines} == {"ok_call summary",
                                                               "bad_call summary"}
