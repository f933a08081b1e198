"""The sandbox behaves like ConvoAI (and NCS) for everything the service relies on.

In-process: Flask test client, fake clock (``sb.advance`` moves it and runs the ticker once) and
a recording NCS transport, so no socket is opened.
"""

from __future__ import annotations

import base64
import dataclasses
import re

import pytest

from ncs.signature import NamedSecret, NcsVerifier
from sandbox.config import ConfigError, SandboxConfig
from sandbox.redact import fingerprint
from sandbox.testing import Harness, join_body, make_harness


@pytest.fixture
def sb() -> Harness:
    return make_harness()


def started(sb: Harness, **overrides) -> str:
    response = sb.join(**overrides)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["agent_id"]


def event_types(sb: Harness, product_id: int) -> list[int]:
    return [body["eventType"] for body in sb.events(product_id)]


# -- authentication and request shape ----------------------------------------------------------

@pytest.mark.parametrize("header", [
    None, "Basic " + base64.b64encode(b"sandbox-customer:wrong").decode(), "Bearer abc",
    "Basic !!!not-base64",
])
def test_requests_without_the_customer_credentials_get_401(sb, header):
    headers = {"Authorization": header} if header else {}
    response = sb.client.post(sb.url("/join"), json=sb.body(), headers=headers)
    assert response.status_code == 401
    assert set(response.get_json()) == {"detail", "reason"}
    assert sb.sandbox.agents.summaries() == []


def test_another_app_id_in_the_path_is_refused(sb):
    response = sb.client.post("/convoai/v2/projects/" + "0" * 32 + "/join", json=sb.body(),
                              headers=sb.headers)
    assert response.status_code == 403
    assert response.get_json()["reason"] == "InvalidPermission"


def test_a_body_that_is_not_json_is_invalid_request_body(sb):
    response = sb.client.post(sb.url("/join"), data=b"{not json", headers=sb.headers,
                              content_type="application/json")
    assert (response.status_code, response.get_json()["reason"]) == (400, "InvalidRequestBody")


@pytest.mark.parametrize(("field", "value", "reason", "detail"), [
    ("agent_rtc_uid", 222, "InvalidFieldValue",
     "properties.agent_rtc_uid: Input should be a valid string"),
    ("remote_rtc_uids", [111], "InvalidFieldValue",
     "properties.remote_rtc_uids[0]: Input should be a valid string"),
    ("remote_rtc_uids", ["111", "112"], "InvalidFieldValue",
     "properties.remote_rtc_uids: List should have at most 1 items"),
    ("idle_timeout", -1, "InvalidFieldValue",
     "properties.idle_timeout: Input should be greater than or equal to 0"),
    ("token", None, "InvalidFieldValue", "properties.token: Input should be a valid string"),
])
def test_schema_violations_get_agoras_400_body(sb, field, value, reason, detail):
    body = sb.body()
    body["properties"][field] = value
    response = sb.join(body)
    assert response.status_code == 400
    assert response.get_json() == {"detail": detail, "reason": reason}


@pytest.mark.parametrize(("path", "detail"), [
    (("token",), "properties.token: Field required"),
    (("tts", "params", "base_url"), "properties.tts.params.base_url: Field required"),
    (("name",), "name: Field required"),
])
def test_missing_fields_are_missing_required_field(sb, path, detail):
    body = sb.body()
    node = body if path == ("name",) else body["properties"]
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    response = sb.join(body)
    assert response.status_code == 400
    assert response.get_json() == {"detail": detail, "reason": "MissingRequiredField"}


def test_error_details_never_echo_a_submitted_secret(sb):
    body = sb.body()
    body["properties"]["tts"]["params"]["key"] = 987654321  # wrong type, secret-ish value
    response = sb.join(body)
    assert response.status_code == 400
    assert "987654321" not in response.get_data(as_text=True)


# -- tokens ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("channel", "uid"), [("room-2", "222"), ("room-1", "333")])
def test_a_token_for_another_channel_or_uid_is_invalid_field_value(sb, channel, uid):
    body = sb.body()
    body["properties"]["token"] = sb.token(channel, uid)
    response = sb.join(body)
    assert response.status_code == 400
    assert response.get_json()["reason"] == "InvalidFieldValue"
    assert response.get_json()["detail"].startswith("properties.token: token was minted for")


def test_a_valid_007_token_is_accepted_and_the_agent_starts(sb):
    response = sb.join()
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"agent_id", "create_ts", "status"}
    # The answer says RUNNING as Agora's join examples do; the agent is in the channel (101,
    # GET says RUNNING) only once it has started.
    assert body["status"] == "RUNNING" and body["create_ts"] == int(sb.clock.now())
    assert sb.query(body["agent_id"]).get_json()["status"] == "STARTING"


def test_an_expired_token_is_rejected(sb):
    body = sb.body()
    body["properties"]["token"] = sb.token(lifetime_s=10)
    # The fake clock starts at a whole second and the token is issued a moment later: leave a
    # margin so the second boundary cannot decide the test.
    sb.clock.advance(13)
    assert sb.join(body).get_json()["detail"] == "properties.token: token has expired"


def test_without_a_certificate_any_token_string_is_accepted():
    sb = make_harness(app_certificate="")
    assert sb.join(join_body("")).status_code == 200


# -- names, limits, leave ------------------------------------------------------------------------

def test_reusing_a_name_is_409_task_conflict_even_after_the_agent_stopped(sb):
    agent_id = started(sb)
    sb.leave(agent_id)
    sb.advance(1)
    response = sb.join()
    assert response.status_code == 409
    assert response.get_json() == {"detail": "create agent failed, code: 409, msg: task conflict",
                                   "reason": "TaskConflict"}


def test_joins_beyond_the_concurrency_limit_get_422():
    sb = make_harness(concurrency_limit=2)
    first = started(sb, name="a-1")
    started(sb, name="a-2")
    response = sb.join(name="a-3")
    assert (response.status_code, response.get_json()["reason"]) == (
        422, "ConcurrencyLimitExceeded")
    sb.leave(first)                       # STOPPING still counts against the limit
    assert sb.join(name="a-4").status_code == 422
    sb.advance(1)                         # STOPPED frees the slot
    assert sb.join(name="a-5").status_code == 200


def test_leave_of_an_unknown_agent_is_404_task_not_found(sb):
    response = sb.leave("NOSUCHAGENT")
    assert response.status_code == 404
    assert response.get_json()["reason"] == "TaskNotFound"


def test_leave_of_a_stopped_agent_is_404(sb):
    agent_id = started(sb)
    assert sb.leave(agent_id).status_code == 200
    sb.advance(1)
    assert sb.leave(agent_id).status_code == 404


# -- states over time -------------------------------------------------------------------------

def test_states_follow_starting_running_stopping_stopped_with_the_clock(sb):
    agent_id = started(sb)
    states = [sb.query(agent_id).get_json()["status"]]
    sb.advance(0.29)
    states.append(sb.query(agent_id).get_json()["status"])
    sb.advance(0.01)
    states.append(sb.query(agent_id).get_json()["status"])
    sb.leave(agent_id)
    states.append(sb.query(agent_id).get_json()["status"])
    sb.advance(0.2)
    final = sb.query(agent_id).get_json()
    assert states + [final["status"]] == ["STARTING", "STARTING", "RUNNING", "STOPPING",
                                          "STOPPED"]
    assert final["message"] == "OK" and final["stop_ts"] == int(sb.clock.now())
    assert set(final) == {"agent_id", "name", "status", "start_ts", "stop_ts", "message"}


def test_agent_events_101_102_103_112_are_signed_with_the_convoai_secret():
    sb = make_harness(convoai_ncs_secret="convoai-secret")
    agent_id = started(sb)
    sb.advance(0.3)
    sb.leave(agent_id)
    sb.advance(0.2)
    assert event_types(sb, 17) == [101, 102, 103, 112]
    verifier = NcsVerifier([NamedSecret("convoai", "convoai-secret")])
    for sent in sb.transport.sent:
        assert verifier.verify(sent.raw, sent.headers).name == "convoai"
    joined, left, history, turns = sb.events(17)
    assert joined["payload"]["labels"] == {"call_id": "1a2b3c4d5e6f7a8b",
                                           "service": "phoneagent"}
    assert {joined["payload"]["agent_id"], left["payload"]["agent_id"]} == {agent_id}
    assert (left["payload"]["status"], left["payload"]["message"]) == ("STOPPED", "OK")
    assert history["payload"]["contents"] == [
        {"role": "assistant", "content": "Hello, how can I help?"}]
    assert turns["payload"]["total_turn_count"] == 1  # the greeting
    assert len({body["noticeId"] for body in sb.events(17)}) == 4
    assert all(re.fullmatch(r"\d{10}:\d{4}:\d{3}", body["noticeId"]) for body in sb.events(17))


def test_the_caller_hears_scripted_turns_and_the_agent_exits_when_idle(sb):
    agent_id = started(sb)
    sb.client.post("/_sandbox/calls", json={"channel": "room-1", "uid": 111, "duration_s": 3.5})
    sb.advance(0.3)
    for _ in range(3):
        sb.advance(1)
    history = sb.client.get(sb.url(f"/agents/{agent_id}/history"), headers=sb.headers)
    contents = history.get_json()["contents"]
    assert [c["role"] for c in contents] == ["assistant"] + ["user", "assistant"] * 3
    sb.advance(1)      # the caller leaves at 3.5 s
    sb.advance(59)     # idle_timeout is 60 s: not yet (63.3 s < 3.5 + 60)
    assert sb.query(agent_id).get_json()["status"] == "RUNNING"
    sb.advance(0.25)
    assert sb.query(agent_id).get_json()["status"] == "STOPPING"
    sb.advance(0.2)
    left = [b for b in sb.events(17) if b["eventType"] == 102][0]
    assert left["payload"]["message"] == "Idle for too long"
    assert sb.query(agent_id).get_json()["message"] == "Idle for too long"
    gone = sb.client.get(sb.url(f"/agents/{agent_id}/history"), headers=sb.headers)
    assert gone.status_code == 404


def test_turns_finished_reports_each_turn_with_its_latency_segments(sb):
    agent_id = started(sb)
    sb.client.post("/_sandbox/calls", json={"channel": "room-1", "uid": 111, "duration_s": 60})
    sb.advance(0.3)
    for _ in range(2):
        sb.advance(1)
    sb.leave(agent_id)
    sb.advance(0.2)
    finished = [b for b in sb.events(17) if b["eventType"] == 112][0]["payload"]
    assert (finished["agent_id"], finished["channel"]) == (agent_id, "room-1")
    assert finished["labels"]["call_id"] == "1a2b3c4d5e6f7a8b"
    assert (finished["total_turn_count"], finished["is_truncated"]) == (3, False)
    greeting, first, _ = finished["turns"]
    assert [t["turn_id"] for t in finished["turns"]] == [1, 2, 3]
    assert (greeting["start"]["type"], first["start"]["type"]) == ("greeting", "voice_input")
    assert first["end"]["end_at"] > first["start"]["start_at"]
    segments = first["metrics"]["segmented_latency_ms"]
    assert set(segments) == {"algorithm_processing", "asr_ttlw", "llm_ttft", "llm_ftfs",
                             "tts_ttfb", "transport"}
    assert first["metrics"]["e2e_latency_ms"] == sum(segments.values())


def test_more_than_200_turns_are_reported_truncated():
    from sandbox.lifecycle import finished_turns
    from sandbox.turns import record as record_turn

    sb = make_harness()
    agent = sb.sandbox.world.agents[started(sb)]
    for n in range(250):
        record_turn(agent.turn_log, "voice_input", float(n))
    report = finished_turns(agent)
    assert (len(report["turns"]), report["total_turn_count"], report["is_truncated"]) == (
        200, 250, True)


def test_the_control_api_sends_token_expiring_for_a_live_agent_only(sb):
    agent_id = started(sb)
    sent = sb.client.post(f"/_sandbox/agents/{agent_id}/expire")
    assert sent.status_code == 200
    expiring = [b for b in sb.events(17) if b["eventType"] == 104]
    assert [e["payload"]["agent_id"] for e in expiring] == [agent_id]
    assert expiring[0]["payload"]["message"] == "Task exceeded maximum lifetime"
    assert expiring[0]["payload"]["labels"]["service"] == "phoneagent"
    assert sb.client.post("/_sandbox/agents/nobody/expire").status_code == 404


def test_an_agent_does_not_idle_out_while_the_sandbox_knows_nothing_of_its_caller(sb):
    agent_id = started(sb)
    sb.advance(0.3)
    sb.advance(600)
    assert sb.query(agent_id).get_json()["status"] == "RUNNING"


# -- list -------------------------------------------------------------------------------------

def test_list_filters_by_state_and_channel_and_pages_with_the_cursor(sb):
    ids = [started(sb, name=f"n-{i}", channel="room-a" if i < 5 else "room-b")
           for i in range(7)]
    sb.advance(0.3)
    sb.leave(ids[0])
    sb.advance(0.2)

    def listing(**params):
        response = sb.client.get(sb.url("/agents"), query_string=params, headers=sb.headers)
        assert response.status_code == 200
        return response.get_json()

    running = listing()
    assert running["status"] == "ok" and running["meta"]["total"] == 6
    assert set(running["data"]["list"][0]) == {"start_ts", "status", "agent_id"}
    assert listing(state="4")["data"]["list"][0]["agent_id"] == ids[0]
    assert listing(state="2,4", channel="room-a")["meta"]["total"] == 5
    page1 = listing(state="2", limit=4)
    assert page1["data"]["count"] == 4 and page1["meta"]["cursor"] == ids[5]
    page2 = listing(state="2", limit=4, cursor=page1["meta"]["cursor"])
    assert [a["agent_id"] for a in page2["data"]["list"]] == ids[5:]
    assert page2["meta"]["cursor"] == ""
    assert listing(from_time=int(sb.clock.now()) + 1)["meta"]["total"] == 0


def test_list_rejects_a_bad_state_filter(sb):
    response = sb.client.get(sb.url("/agents?state=running"), headers=sb.headers)
    assert (response.status_code, response.get_json()["reason"]) == (400, "InvalidFieldValue")


# -- other agent endpoints ---------------------------------------------------------------------

def test_speak_adds_an_assistant_turn_and_rejects_text_over_512_bytes(sb):
    agent_id = started(sb)
    sb.advance(0.3)
    speak = sb.url(f"/agents/{agent_id}/speak")
    assert sb.client.post(speak, json={"text": "é" * 257}, headers=sb.headers).status_code == 400
    ok = sb.client.post(speak, json={"text": "Please hold."}, headers=sb.headers)
    assert ok.status_code == 200 and ok.get_json()["channel"] == "room-1"
    history = sb.client.get(sb.url(f"/agents/{agent_id}/history"), headers=sb.headers)
    assert history.get_json()["contents"][-1] == {"role": "assistant", "content": "Please hold."}
    interrupt = sb.client.post(sb.url(f"/agents/{agent_id}/interrupt"), json={},
                               headers=sb.headers)
    assert interrupt.status_code == 200


def test_update_checks_a_new_token_against_the_agents_channel(sb):
    agent_id = started(sb)
    update = sb.url(f"/agents/{agent_id}/update")
    good = sb.client.post(update, json={"properties": {"token": sb.token()}}, headers=sb.headers)
    assert good.status_code == 200 and good.get_json()["agent_id"] == agent_id
    bad = sb.client.post(update, json={"properties": {"token": sb.token("room-9")}},
                         headers=sb.headers)
    assert (bad.status_code, bad.get_json()["reason"]) == (400, "InvalidFieldValue")


# -- faults ------------------------------------------------------------------------------------

def test_queued_join_errors_are_consumed_one_per_join(sb):
    faults = sb.client.post("/_sandbox/faults", json={"join_errors": [503, "timeout"],
                                                      "timeout_s": 30})
    assert [e["status"] for e in faults.get_json()["join_errors"]] == [503, 504]
    first = sb.join(name="f-1")
    assert (first.status_code, first.get_json()["reason"]) == (503, "ResourceAllocationFailed")
    before = sb.clock.now()
    second = sb.join(name="f-2")
    assert (second.status_code, second.get_json()["reason"]) == (504, "TaskOperationTimeout")
    assert sb.clock.now() - before == pytest.approx(30)
    assert sb.join(name="f-3").status_code == 200
    assert [a["name"] for a in sb.sandbox.agents.summaries()] == ["f-3"]


def test_an_applied_join_error_starts_the_agent_anyway(sb):
    sb.client.post("/_sandbox/faults", json={"join_errors": [{"status": 504, "apply": True}]})
    assert sb.join().status_code == 504
    assert [a["state"] for a in sb.client.get("/_sandbox/agents").get_json()["agents"]] == [
        "STARTING"]


def test_leave_errors_and_latency(sb):
    agent_id = started(sb)
    sb.client.post("/_sandbox/faults", json={"leave_errors": [500], "leave_latency_s": 2})
    before = sb.clock.now()
    assert sb.leave(agent_id).status_code == 500
    assert sb.leave(agent_id).status_code == 200
    assert sb.clock.now() - before == pytest.approx(4)


def test_faults_merge_and_reject_bad_values(sb):
    sb.client.post("/_sandbox/faults", json={"join_latency_s": 1.5})
    merged = sb.client.post("/_sandbox/faults", json={"ncs_drop": 0.5}).get_json()
    assert (merged["join_latency_s"], merged["ncs_drop"]) == (1.5, 0.5)
    assert sb.client.post("/_sandbox/faults", json={"ncs_drop": 2}).status_code == 400
    assert sb.client.post("/_sandbox/faults", json={"nonsense": 1}).status_code == 400
    assert sb.client.get("/_sandbox/faults").get_json()["ncs_drop"] == 0.5


def test_a_fault_can_lower_the_concurrency_limit(sb):
    sb.client.post("/_sandbox/faults", json={"concurrency_limit": 0})
    assert sb.join().status_code == 422


def test_reset_forgets_agents_names_and_faults(sb):
    started(sb)
    sb.client.post("/_sandbox/faults", json={"join_errors": [503]})
    sb.client.post("/_sandbox/reset")
    assert sb.client.get("/_sandbox/agents").get_json()["agents"] == []
    assert sb.join().status_code == 200          # same name, no queued error


# -- request log -------------------------------------------------------------------------------

def test_the_request_log_fingerprints_every_secret(sb):
    body = sb.body()
    sb.join(body)
    [entry] = sb.client.get("/_sandbox/requests?kind=join").get_json()["requests"]
    props = entry["body"]["properties"]
    assert props["token"] == fingerprint(body["properties"]["token"])
    assert props["llm"]["api_key"] == fingerprint("sk-test-llm")
    assert props["tts"]["params"]["key"] == fingerprint("el-test-key")
    assert entry["authorization"] == fingerprint(sb.headers["Authorization"])
    assert props["llm"]["params"] == {"model": "gpt-4o-mini"}
    assert (entry["kind"], entry["status"], entry["method"]) == ("join", 200, "POST")
    log = sb.client.get("/_sandbox/requests").get_data(as_text=True)
    for secret in ("sk-test-llm", "el-test-key", body["properties"]["token"], "sandbox-secret"):
        assert secret not in log


def test_the_request_log_filters_by_kind(sb):
    sb.leave("NOSUCHAGENT")
    sb.join()
    kinds = [r["kind"] for r in sb.client.get("/_sandbox/requests").get_json()["requests"]]
    assert kinds == ["leave", "join"]
    [leave] = sb.client.get("/_sandbox/requests?kind=leave").get_json()["requests"]
    assert leave["status"] == 404


# -- simulated callers (productId 1) -----------------------------------------------------------

def test_a_call_sends_join_then_leave_with_increasing_client_seq(sb):
    created = sb.client.post("/_sandbox/calls", json={"channel": "c-1", "duration_s": 2})
    assert created.status_code == 201
    assert created.get_json()["channel"] == "c-1" and created.get_json()["uid"] == 111
    sb.advance(2)
    join, leave = sb.events(1)
    assert (join["eventType"], leave["eventType"]) == (103, 104)
    assert join["payload"] == {"channelName": "c-1", "uid": 111, "platform": 6, "clientType": 2,
                               "clientSeq": join["payload"]["clientSeq"],
                               "ts": join["payload"]["ts"]}
    assert leave["payload"]["clientSeq"] > join["payload"]["clientSeq"]
    assert (leave["payload"]["reason"], leave["payload"]["duration"]) == (1, 2)
    verifier = NcsVerifier([NamedSecret("rtc", SandboxConfig().ncs_secret)])
    for sent in sb.transport.sent:
        verifier.verify(sent.raw, sent.headers)
    [call] = sb.client.get("/_sandbox/calls").get_json()["calls"]
    assert [(e["eventType"], e["status"]) for e in call["events"]] == [(103, 200), (104, 200)]


def test_client_seq_is_strictly_increasing_across_calls_in_the_same_millisecond(sb):
    for _ in range(3):
        sb.client.post("/_sandbox/calls", json={"duration_s": 0})
    sb.advance(0)
    seqs = [body["payload"]["clientSeq"] for body in sb.events(1)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) == 6


def test_duplicates_redundant_and_late_join_copies(sb):
    sb.client.post("/_sandbox/calls", json={"channel": "c-2", "duration_s": 1, "duplicates": 2,
                                            "redundant_copy": True, "late_join_copy": True})
    sb.advance(1)
    sent = [(b["eventType"], b["noticeId"], b["payload"]["clientSeq"]) for b in sb.events(1)]
    joins, leaves, late = sent[:4], sent[4:8], sent[8]
    assert [s[0] for s in sent] == [103] * 4 + [104] * 4 + [103]
    assert len({n for _, n, _ in joins[:3]}) == 1 and joins[3][1] != joins[0][1]
    assert len({n for _, n, _ in leaves[:3]}) == 1 and leaves[3][1] != leaves[0][1]
    assert late[1] not in {joins[0][1], joins[3][1]} and late[2] == joins[0][2]


def test_drop_leave_marks_the_caller_absent_without_a_104(sb):
    agent_id = started(sb, name="drop")
    sb.client.post("/_sandbox/calls", json={"channel": "room-1", "duration_s": 1,
                                            "drop_leave": True})
    sb.advance(1)
    assert event_types(sb, 1) == [103]
    sb.advance(60)
    sb.advance(0.2)
    assert sb.query(agent_id).get_json()["message"] == "Idle for too long"


def test_a_call_without_duration_lasts_until_hung_up(sb):
    call = sb.client.post("/_sandbox/calls", json={"duration_s": None}).get_json()
    sb.advance(3600)
    assert event_types(sb, 1) == [103]
    assert sb.client.post(f"/_sandbox/calls/{call['id']}/hangup").status_code == 200
    assert event_types(sb, 1) == [103, 104]
    assert sb.client.post("/_sandbox/calls/nope/hangup").status_code == 404


@pytest.mark.parametrize("spec", [{"uid": "111"}, {"duration_s": -1}, {"colour": "red"},
                                  {"duplicates": 99}, {"drop_leave": 1}])
def test_bad_call_specs_are_refused(sb, spec):
    assert sb.client.post("/_sandbox/calls", json=spec).status_code == 400


# -- NCS delivery faults -----------------------------------------------------------------------

def test_ncs_drop_duplicate_and_reorder(sb):
    sb.client.post("/_sandbox/faults", json={"ncs_drop": 1.0})
    sb.client.post("/_sandbox/calls", json={"channel": "d", "duration_s": 1})
    sb.advance(1)
    assert sb.events() == []
    statuses = [d["status"] for d in sb.client.get("/_sandbox/ncs").get_json()["deliveries"]]
    assert statuses == ["dropped", "dropped"]

    sb.client.post("/_sandbox/faults", json={"ncs_drop": 0, "ncs_duplicate": 1.0})
    sb.client.post("/_sandbox/calls", json={"channel": "e", "duration_s": None})
    first, second = sb.events(1)
    assert first["noticeId"] == second["noticeId"]

    sb.client.post("/_sandbox/faults", json={"ncs_duplicate": 0, "ncs_reorder": 1.0})
    sb.client.post("/_sandbox/calls", json={"channel": "f", "duration_s": 1})
    assert [b for b in sb.events(1) if b["payload"]["channelName"] == "f"] == []  # held back
    sb.client.post("/_sandbox/faults", json={"ncs_reorder": 0})
    sb.advance(1)
    assert [b["eventType"] for b in sb.events(1)
            if b["payload"]["channelName"] == "f"] == [104, 103]


def test_a_failure_injected_on_an_agent_reports_failed(sb):
    agent_id = started(sb)
    sb.advance(0.3)
    sb.client.post(f"/_sandbox/agents/{agent_id}/fail", json={"message": "RTC connection error"})
    assert sb.query(agent_id).get_json()["status"] == "FAILED"
    left = [b for b in sb.events(17) if b["eventType"] == 102][0]
    assert (left["payload"]["status"], left["payload"]["message"]) == (
        "FAILED", "RTC connection error")


# -- configuration -----------------------------------------------------------------------------

def test_config_reads_sandbox_environment_variables():
    config = SandboxConfig.from_env({
        "SANDBOX_WEBHOOK_URL": "http://127.0.0.1:8000/webhook", "SANDBOX_CONCURRENCY_LIMIT": "3",
        "SANDBOX_START_DELAY_S": "0", "SANDBOX_CONVOAI_NCS_SECRET": "c",
    })
    assert config == dataclasses.replace(
        SandboxConfig(), webhook_url="http://127.0.0.1:8000/webhook", concurrency_limit=3,
        start_delay_s=0.0, convoai_ncs_secret="c")
    assert SandboxConfig().convoai_secret == SandboxConfig().ncs_secret
    assert SandboxConfig().concurrency_limit == 20


def test_config_reports_every_problem_at_once():
    with pytest.raises(ConfigError) as info:
        SandboxConfig.from_env({"SANDBOX_CONCURRENCY_LIMIT": "many",
                                "SANDBOX_STOP_DELAY_S": "soon"})
    assert "SANDBOX_CONCURRENCY_LIMIT" in str(info.value)
    assert "SANDBOX_STOP_DELAY_S" in str(info.value)
