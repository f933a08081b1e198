"""The admin API over call records: filters, exports, erasure, and the token."""

from __future__ import annotations

import csv
import io
import itertools
import json
import time

import pytest

from calls import lifecycle as lc

TOKEN = {"Authorization": "Bearer sandbox-admin-token"}


@pytest.fixture
def calls(app):
    """Three ended calls and a live one, with numbers."""
    store = app.extensions["store"]
    ids = (f"c{n}" for n in itertools.count(1))
    made = []
    for caller, state in (("+15550001111", "ended"), ("+15550002222", "ended"),
                          ("=cmd|' /C calc'!A0", "ended"), ("+15550001111", "live")):
        call = store.create_call(channel=f"line_{len(made)}", direction="inbound",
                                 state=lc.PENDING, persona="support",
                                 agent_name_prefix="phoneagent", new_id=lambda: next(ids),
                                 caller_uid=111, caller_number=caller,
                                 called_number="+15559990000")
        if state == "ended":
            store.end_call(call.id, "test")
        made.append(call.id)
    return made


def test_the_api_needs_the_admin_token(app, calls):
    web = app.test_client()
    for method, path in (("get", "/api/calls"), ("get", "/api/calls/c1"),
                         ("get", "/api/calls.jsonl"), ("get", "/api/calls.csv"),
                         ("delete", "/api/calls/c1")):
        for headers in ({}, {"Authorization": "Bearer not-the-token"},
                        {"Authorization": "Basic c2FuZGJveC1hZG1pbi10b2tlbg=="}):
            answer = getattr(web, method)(path, headers=headers)
            assert answer.status_code == 401, (method, path, headers)
            assert answer.get_json()["error"] == "unauthorized"
    assert app.extensions["store"].get_call("c1") is not None


def test_calls_can_be_filtered_by_number(app, calls):
    web = app.test_client()
    found = web.get("/api/calls?number=%2B15550001111", headers=TOKEN).get_json()["calls"]
    assert sorted(c["id"] for c in found) == ["c1", "c4"]
    found = web.get("/api/calls?number=%2B15559990000&state=ended", headers=TOKEN).get_json()
    assert sorted(c["id"] for c in found["calls"]) == ["c1", "c2", "c3"]


def test_exports_hold_every_matching_call(app, calls):
    web = app.test_client()
    answer = web.get("/api/calls.jsonl?state=ended", headers=TOKEN)
    assert answer.status_code == 200 and answer.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in answer.get_data(as_text=True).splitlines()]
    assert sorted(c["id"] for c in lines) == ["c1", "c2", "c3"]
    assert all(c["transcript"] == [] and c["state"] == "ended" for c in lines)

    answer = web.get("/api/calls.csv", headers=TOKEN)
    assert answer.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert sorted(r["id"] for r in rows) == ["c1", "c2", "c3", "c4"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["c1"]["caller_number"] == "+15550001111"  # a number stays a number
    assert by_id["c3"]["caller_number"].startswith("'=")   # a formula is defused


def test_a_call_can_be_erased_once_it_has_ended(app, calls):
    web = app.test_client()
    store = app.extensions["store"]
    assert web.delete("/api/calls/c4", headers=TOKEN).status_code == 409
    assert web.delete("/api/calls/c1", headers=TOKEN).status_code == 204
    assert store.get_call("c1") is None and store.timeline("c1") == []
    assert web.get("/api/calls/c1", headers=TOKEN).status_code == 404
    assert web.delete("/api/calls/c1", headers=TOKEN).status_code == 404


def test_bad_filters_are_clear_errors(app, calls):
    web = app.test_client()
    for path, query in itertools.product(("/api/calls", "/api/calls.jsonl", "/api/calls.csv"),
                                         ("state=nonsense", "since=yesterday")):
        answer = web.get(f"{path}?{query}", headers=TOKEN)
        assert answer.status_code == 400, (path, query)
        assert answer.get_json()["error"] == "bad_request"
    for query in ("cursor=%%%", "limit=0", "limit=x"):
        for path in ("/api/calls",):
            answer = web.get(f"{path}?{query}", headers=TOKEN)
            assert answer.status_code == 400, (path, query)
            assert answer.get_json()["error"] == "bad_request"


# -- ConvoAI's 112 (turns finished) and 104 (token expiring) through the webhook --------------

def live_call(app, channel="line_live", agent_id="A1"):
    """An active call with its agent, as a caller's join and a started agent leave it."""
    from calls.lifecycle import CallerJoined

    store = app.extensions["store"]
    joined = store.apply_caller_event(CallerJoined(channel, 111, 1, f"{channel}-join"),
                                      grace_s=30, agent_name_prefix="phoneagent",
                                      new_id=lambda: "live1")
    store.agent_started(joined.call_id, agent_id)
    return joined.call_id


def convoai_event(signed_post, event_type, notice_id, call_id, agent_id="A1", **payload):
    return signed_post(17, event_type, notice_id=notice_id, agent_id=agent_id,
                       name=f"phoneagent-{call_id}", channel="line_live",
                       labels={"call_id": call_id, "service": "phoneagent"}, **payload)


def test_turns_finished_shows_each_turns_latency_and_truncation_in_the_call(app, signed_post):
    call_id = live_call(app)
    web = app.test_client()
    turns = [{"turn_id": n, "start": {"start_at": 1_800_000_000_000 + n, "type": "voice_input"},
              "end": {"end_at": 1_800_000_001_000 + n, "type": "ok"},
              "metrics": {"e2e_latency_ms": 700 + 100 * n, "segmented_latency_ms": {
                  "algorithm_processing": 20, "asr_ttlw": 100 + n, "llm_ttft": 300,
                  "llm_ftfs": 90, "tts_ttfb": 180, "transport": 50}}} for n in (1, 2, 3)]
    for event_type, notice, payload in (
            (111, "m-1", {"metrics": [{"turn_id": 1, "asr_ttlw": 90, "llm_ttfb": 310,
                                       "llm_ttfs": 340, "tts_ttfb": 170}]}),
            (112, "t-1", {"start_ts": 1_800_000_000, "stop_ts": 1_800_000_300,
                          "total_turn_count": 230, "is_truncated": True,
                          "turns": [*turns, {"turn_id": None}, "junk"]})):
        body, headers = convoai_event(signed_post, event_type, notice, call_id, **payload)
        answer = web.post("/webhook", data=body, headers=headers)
        assert answer.status_code == 200 and answer.get_json()["outcome"] == "recorded"
    latency = web.get(f"/api/calls/{call_id}", headers=TOKEN).get_json()["turn_latency"]
    assert [t["turn_id"] for t in latency["turns"]] == [1, 2, 3]
    assert [t["e2e_latency_ms"] for t in latency["turns"]] == [800, 900, 1000]
    assert latency["turns"][0]["llm_ttfb"] == 310 and latency["turns"][0]["asr_ttlw"] == 101
    assert latency["median_ms"]["e2e_latency_ms"] == 900
    assert latency["median_ms"]["transport"] == 50
    assert (latency["truncated"], latency["total_turn_count"]) == (True, 230)
    assert latency["sources"] == ["agent_metrics", "turns_finished"]


@pytest.mark.parametrize("payload", [
    {"turns": "many"}, {"turns": [None, 1, [], {"turn_id": {"x": 1}}]},
    {"turns": [{"turn_id": 1, "metrics": {"e2e_latency_ms": "fast",
                                          "segmented_latency_ms": [1, 2]}}]},
    {"is_truncated": "yes", "total_turn_count": -1, "turns": [{"turn_id": 1, "start": 5}]},
])
def test_a_malformed_112_is_answered_200_and_the_call_still_reads(app, signed_post, payload):
    call_id = live_call(app)
    web = app.test_client()
    body, headers = convoai_event(signed_post, 112, "t-bad", call_id, **payload)
    assert web.post("/webhook", data=body, headers=headers).status_code == 200
    answer = web.get(f"/api/calls/{call_id}", headers=TOKEN)
    assert answer.status_code == 200 and answer.get_json()["turn_latency"]["truncated"] is False


def test_token_expiring_sends_one_update_with_a_fresh_token_for_the_agent(app, signed_post):
    import responses
    from responses import matchers

    from sandbox.tokens import verify_rtc_token

    settings = app.extensions["settings"]
    call_id = live_call(app)
    url = (f"{settings.convoai_api_url}/v2/projects/{settings.agora_app_id}/agents/A1/update")
    body, headers = convoai_event(signed_post, 104, "x-1", call_id, start_ts=1_800_000_000,
                                  message="Task exceeded maximum lifetime")
    with responses.RequestsMock() as rsps:
        update = rsps.post(url, json={"agent_id": "A1", "create_ts": 1, "status": "RUNNING"},
                           match=[matchers.header_matcher({"Content-Type": "application/json"})])
        answer = app.test_client().post("/webhook", data=body, headers=headers)
        assert answer.status_code == 200
        assert answer.get_json() == {"status": "ok", "outcome": "token_renewed",
                                     "call_id": call_id}
        assert update.call_count == 1
        sent = json.loads(rsps.calls[0].request.body)
    assert list(sent) == ["properties"] and list(sent["properties"]) == ["token"]
    grant = verify_rtc_token(sent["properties"]["token"], app_id=settings.agora_app_id,
                             certificate=settings.agora_app_certificate, channel="line_live",
                             uid=str(settings.agent_uid), now=time.time())
    assert grant.version == "007"


def test_token_expiring_for_an_agent_of_no_call_is_ignored_and_sends_nothing(app, signed_post):
    import responses

    live_call(app)
    body, headers = signed_post(17, 104, notice_id="x-2", agent_id="A-unknown",
                                name="phoneagent-gone", channel="line_live",
                                labels={"service": "phoneagent"})
    with responses.RequestsMock() as rsps:  # any request to ConvoAI would fail the test
        answer = app.test_client().post("/webhook", data=body, headers=headers)
        assert len(rsps.calls) == 0
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "ignored" and answer.get_json()["reason"]
