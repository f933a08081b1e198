"""Issue 2's acceptance, from outside: gunicorn (2 gthread workers) against the sandbox's ConvoAI
over loopback, driven only by signed NCS posts. Nothing inside the service is patched."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest
import requests

from ncs.signature import sign
from sandbox.turns import CASCADE_SEGMENTS
from tests.integration.conftest import SECRETS
from tests.integration.harness import wait_until

pytestmark = pytest.mark.integration
JOIN_SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "convoai" /
                          "join_schema.json").read_text())
RUNNING = ("STARTING", "RUNNING")


def running(stack, channel):
    return [a for a in stack.sandbox.agents(channel) if a["state"] in RUNNING]


def settled(stack, channel, count):
    """Wait until ``count`` agents exist in the channel and none is running any more."""
    return wait_until(lambda: (len(agents := stack.sandbox.agents(channel)) == count
                               and not any(a["state"] in RUNNING for a in agents) and agents),
                      message=f"{count} stopped agent(s) in {channel}")


@pytest.mark.parametrize("case", ["unsigned", "wrong secret", "tampered", "sha1 wrong"])
def test_requests_not_signed_by_us_are_refused_and_start_nothing(fresh, case):
    channel = fresh.channel("forged")
    body = json.dumps({"noticeId": "forged-1", "productId": 1, "eventType": 103,
                       "payload": {"channelName": channel, "uid": 111, "clientSeq": 1}}).encode()
    headers = {
        "unsigned": {},
        "wrong secret": sign("not-our-secret", body),
        "tampered": sign(SECRETS["ncs_secret"], body.replace(b'"clientSeq": 1',
                                                             b'"clientSeq": 2')),
        "sha1 wrong": {"Agora-Signature": sign("nope", body)["Agora-Signature"]},
    }[case]
    response = fresh.service.post_raw(body, headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_signature"
    time.sleep(0.3)
    assert fresh.sandbox.agents(channel) == []


def test_malformed_json_is_a_400(fresh):
    body = b'{"noticeId": "x", "productId": 1,'
    response = fresh.service.post_raw(body, sign(SECRETS["ncs_secret"], body))
    assert response.status_code == 400 and response.json()["error"] == "invalid_envelope"


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"event_type": 103, "uid": 999}, "not the phone caller"),
    ({"event_type": 103, "product_id": 3}, "productId 3"),
    ({"event_type": 101}, "not a user join or leave"),
])
def test_events_that_are_not_the_callers_are_acknowledged_and_start_nothing(fresh, kwargs,
                                                                             reason):
    channel = fresh.channel("other")
    response = fresh.service.event(channel=channel, seq=1, **kwargs)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored" and reason in response.json()["reason"]
    time.sleep(0.3)
    assert fresh.sandbox.agents(channel) == []


def test_one_call_gets_exactly_one_agent_with_a_valid_join_body_and_one_leave(fresh):
    channel = fresh.channel("one")
    answer = fresh.service.event(103, channel=channel, seq=1)
    assert answer.status_code == 200 and answer.json()["outcome"] == "call_started"
    agent = wait_until(lambda: running(fresh, channel), message="agent running")[0]
    joins = [r for r in fresh.sandbox.requests("join") if r["body"]["properties"]["channel"]
             == channel]
    assert len(joins) == 1 and joins[0]["status"] == 200
    body = joins[0]["body"]
    jsonschema.validate(body, JOIN_SCHEMA)
    props = body["properties"]
    assert body["name"] == f"phoneagent-{answer.json()['call_id']}"
    assert (props["agent_rtc_uid"], props["remote_rtc_uids"]) == ("222", ["111"])
    assert props["labels"] == {"call_id": answer.json()["call_id"], "service": "phoneagent",
                               "persona": "support", "line": "support"}
    assert props["tts"]["vendor"] == "elevenlabs"
    assert props["tts"]["params"]["base_url"].startswith("wss://")
    assert props["llm"]["url"].endswith("/chat/completions")
    assert "{{agent_name}}" in props["llm"]["system_messages"][0]["content"]
    assert props["llm"]["template_variables"]["agent_name"] == "Jack"
    assert props["token"].startswith("***")  # redacted by the sandbox; it validated the token

    fresh.service.event(104, channel=channel, seq=2, reason=1)
    settled(fresh, channel, 1)
    leaves = [r for r in fresh.sandbox.requests("leave") if agent["agent_id"] in r["path"]]
    assert len(leaves) == 1


def test_simultaneous_copies_of_a_join_start_one_agent_and_copies_of_the_leave_one_leave(fresh):
    channel = fresh.channel("dupes")
    sessions = [requests.Session() for _ in range(4)]
    notices = ["join-a", "join-a", "join-a", "join-b"]  # three copies, one redundant copy
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: fresh.service.event(
            103, channel=channel, seq=10, notice_id=notices[i], session=sessions[i]), range(4)))
    assert all(a.status_code == 200 for a in answers)
    assert sum(a.json()["outcome"] == "call_started" for a in answers) == 1
    agent = wait_until(lambda: running(fresh, channel), message="agent running")[0]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda i: fresh.service.event(104, channel=channel, seq=11, reason=1,
                                                    notice_id="leave-a", session=sessions[i]),
                      range(3)))
    settled(fresh, channel, 1)
    time.sleep(0.3)
    assert len([r for r in fresh.sandbox.requests("leave") if agent["agent_id"] in r["path"]]) == 1


def test_a_leave_delivered_before_its_join_leaves_no_agent_running(fresh):
    channel = fresh.channel("reorder")
    fresh.service.event(104, channel=channel, seq=21, reason=1)
    answer = fresh.service.event(103, channel=channel, seq=20)
    assert answer.json()["outcome"] == "stale"
    time.sleep(0.5)
    assert running(fresh, channel) == []


def test_the_agent_is_stopped_when_the_caller_leaves_during_a_slow_join(fresh):
    fresh.sandbox.faults(join_latency_s=1.5)
    channel = fresh.channel("slowjoin")
    fresh.service.event(103, channel=channel, seq=1)
    time.sleep(0.2)
    fresh.service.event(104, channel=channel, seq=2, reason=1)
    agents = settled(fresh, channel, 1)
    assert agents[0]["state"] in ("STOPPING", "STOPPED")


def test_two_503s_then_success_gives_one_agent_and_a_fast_answer(fresh):
    fresh.sandbox.faults(join_errors=[503, 503])
    channel = fresh.channel("retry")
    started = time.monotonic()
    answer = fresh.service.event(103, channel=channel, seq=1)
    assert answer.status_code == 200 and time.monotonic() - started < 10
    wait_until(lambda: running(fresh, channel), message="agent running after retries")
    joins = [r for r in fresh.sandbox.requests("join")]
    assert [r["status"] for r in joins] == [503, 503, 200]
    assert len(fresh.sandbox.agents(channel)) == 1


def test_two_calls_in_a_row_in_one_channel_get_two_agents_both_stopped(fresh):
    channel = fresh.channel("twice")
    for seq in (1, 3):
        fresh.service.event(103, channel=channel, seq=seq)
        wait_until(lambda: running(fresh, channel), message="agent running")
        fresh.service.event(104, channel=channel, seq=seq + 1, reason=1)
        wait_until(lambda: not running(fresh, channel), message="agent stopped")
    settled(fresh, channel, 2)


def test_forty_simultaneous_calls_each_get_exactly_one_agent_all_stopped(fresh):
    channels = [fresh.channel(f"burst{n}") for n in range(40)]
    sessions = [requests.Session() for _ in range(16)]

    def call(index: int, event_type: int) -> int:
        return fresh.service.event(event_type, channel=channels[index], seq=event_type,
                                   reason=1 if event_type == 104 else None,
                                   session=sessions[index % len(sessions)]).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(lambda i: call(i, 103), range(40))) == {200}
    wait_until(lambda: all(len(fresh.sandbox.agents(c)) == 1 for c in channels), timeout=20,
               message="40 agents")
    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(lambda i: call(i, 104), range(40))) == {200}
    wait_until(lambda: not [a for a in fresh.sandbox.agents()
                            if a["channel"] in channels and a["state"] in RUNNING],
               timeout=20, message="every agent stopped")
    by_channel = {c: len(fresh.sandbox.agents(c)) for c in channels}
    assert set(by_channel.values()) == {1}, by_channel


def test_no_secret_appears_in_the_output_even_when_convoai_fails(fresh):
    # Failures first: errors are where secrets usually leak (bodies, headers, tracebacks).
    fresh.sandbox.faults(join_errors=[500, 500, 500, 500, 401])
    for n in range(2):
        channel = fresh.channel(f"fail{n}")
        fresh.service.event(103, channel=channel, seq=1)
    # Every fault handed out (four failed attempts, then the 401) and the service's log of them.
    wait_until(lambda: len(fresh.sandbox.requests("join")) >= 5
               and "convoai.request" in fresh.service.process.output(),
               message="the five failed joins")
    forged = fresh.service.event(103, channel=fresh.channel("forged"), seq=1, secret="wrong")
    assert forged.status_code == 401
    bodies = forged.text
    output = fresh.service.process.output() + bodies
    customer_id = "sandbox-customer"
    forms = set(SECRETS.values()) | {
        base64.b64encode(f"{customer_id}:{SECRETS['customer_secret']}".encode()).decode()}
    leaked = sorted(form for form in forms if form in output)
    assert not leaked, f"secrets in the service output: {leaked}"
    assert "convoai.request" in output  # the run did log its upstream calls


def call_record(stack, call_id):
    return requests.get(f"{stack.service.url}/api/calls/{call_id}", timeout=10,
                        headers={"Authorization": "Bearer sandbox-admin-token"}).json()


def test_the_turns_convoai_reports_at_the_end_show_in_the_calls_latency(fresh):
    """ConvoAI's 112 (from the sandbox, after the agent stops) reaches GET /api/calls/<id>."""
    channel = fresh.channel("turns")
    fresh.sandbox.control("POST", "calls", json={"channel": channel, "duration_s": 2.5})
    agent = wait_until(lambda: fresh.sandbox.agents(channel), message="agent")[0]
    call_id = agent["labels"]["call_id"]
    latency = wait_until(lambda: (t := call_record(fresh, call_id)["turn_latency"])["sources"]
                         and t, timeout=30, message="turn latency from event 112")
    assert latency["sources"] == ["turns_finished"] and latency["truncated"] is False
    assert latency["total_turn_count"] == len(latency["turns"]) >= 2
    assert latency["turns"][0]["start_type"] == "greeting"
    spoken = [t for t in latency["turns"] if t["start_type"] == "voice_input"]
    figures = dict(CASCADE_SEGMENTS)
    assert spoken and all(t["e2e_latency_ms"] == sum(figures.values())
                          and t["llm_ttft"] == figures["llm_ttft"] for t in spoken)
    assert latency["median_ms"]["tts_ttfb"] == figures["tts_ttfb"]


def test_a_token_expiring_warning_renews_the_live_agents_token_once(fresh):
    channel = fresh.channel("expiring")
    answer = fresh.service.event(103, channel=channel, seq=1)
    agent = wait_until(lambda: running(fresh, channel), message="agent running")[0]
    fresh.sandbox.control("POST", f"agents/{agent['agent_id']}/expire")

    def renewals():
        return [r for r in fresh.sandbox.requests("update") if agent["agent_id"] in r["path"]]

    wait_until(renewals, message="the token's renewal")
    time.sleep(0.3)
    # Once, and accepted: the sandbox checked the token against the channel and agent uid.
    [renewal] = renewals()
    assert renewal["status"] == 200 and list(renewal["body"]["properties"]) == ["token"]
    kinds = [e["kind"] for e in call_record(fresh, answer.json()["call_id"])["timeline"]]
    assert kinds.index("agent_token_expiring") < kinds.index("agent_token_renewed")
    fresh.service.event(104, channel=channel, seq=2, reason=1)
    settled(fresh, channel, 1)
