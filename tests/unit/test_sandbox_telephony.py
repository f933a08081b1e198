"""The sandbox's ConvoAI telephony: /call validated like Agora, dialled per the phone network's
rule, progress as productId 17 event 202, the callee as an RTC leg, status and hang-up.

In-process: Flask test client, fake clock (``sb.advance`` moves it and runs the ticker once) and
a recording NCS transport, so no socket is opened.
"""

from __future__ import annotations

from typing import Any

import pytest

from sandbox import phone_network
from sandbox.testing import Harness, make_harness

CHANNEL, AGENT_UID, PSTN_UID = "out_1", "222", "111"


@pytest.fixture
def sb() -> Harness:
    return make_harness(outbound_answer_delay_s=2.0, outbound_call_duration_s=5.0,
                        call_ring_s=4.0)


def call_body(sb: Harness, to: str = phone_network.example("answered"), **sip: Any) -> dict:
    body = sb.body(channel=CHANNEL, agent_uid=AGENT_UID, caller_uid=PSTN_UID)
    return {"name": body["name"], "sip": {
        "to_number": to, "from_number": "+12025550199", "rtc_uid": PSTN_UID,
        "rtc_token": sb.token(CHANNEL, PSTN_UID), **sip}, "properties": body["properties"]}


def place(sb: Harness, body: dict | None = None, **kwargs: Any) -> Any:
    return sb.client.post(sb.url("/call"), json=body or call_body(sb, **kwargs),
                          headers=sb.headers)


def placed(sb: Harness, **kwargs: Any) -> str:
    response = place(sb, **kwargs)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["agent_id"]


def states(sb: Harness) -> list[str]:
    return [b["payload"]["state"] for b in sb.events(17) if b["eventType"] == 202]


def rtc(sb: Harness) -> list[tuple[int, int]]:
    return [(b["eventType"], b["payload"]["uid"]) for b in sb.events(1)]


def status(sb: Harness, agent_id: str) -> dict:
    response = sb.client.get(sb.url(f"/calls/{agent_id}"), headers=sb.headers)
    assert response.status_code == 200
    return response.get_json()


def test_an_answered_call_starts_the_agent_rings_answers_and_the_callee_joins(sb):
    agent_id = placed(sb)
    assert states(sb) == ["START", "CALLING"] and rtc(sb) == []
    sb.advance(1.0)
    assert states(sb)[-1] == "RINGING" and status(sb, agent_id)["state"] == "calling"
    sb.advance(1.0)
    assert states(sb)[-1] == "ANSWERED" and rtc(sb) == [(103, int(PSTN_UID))]
    assert 101 in [b["eventType"] for b in sb.events(17)]  # the agent is in the channel
    answered = status(sb, agent_id)
    assert (answered["state"], answered["to_number"], answered["type"], answered["channel"]) == (
        "answered", phone_network.example("answered"), "outbound", CHANNEL)
    sb.advance(5.0)  # the callee hangs up
    assert states(sb)[-1] == "HANGUP" and rtc(sb)[-1] == (104, int(PSTN_UID))
    hangup = [b for b in sb.events(17) if b["eventType"] == 202][-1]["payload"]
    assert (hangup["agent_id"], hangup["channel"], hangup["reason"]) == (
        agent_id, CHANNEL, "hangup")
    assert hangup["labels"]["service"] == "phoneagent" and hangup["report_ms"] > 0
    sb.advance(1.0)
    assert 102 in [b["eventType"] for b in sb.events(17)]
    done = status(sb, agent_id)
    assert (done["state"], done["reason"]) == ("hangup", "hangup") and done["stop_ts"] > 0


@pytest.mark.parametrize(("outcome", "expected", "after_s"), [
    ("busy", ["START", "CALLING", "HANGUP"], 2.0),
    ("no_answer", ["START", "CALLING", "RINGING", "HANGUP"], 4.0),
    ("failed", ["START", "HANGUP"], 0.0),
    ("voicemail", ["START", "CALLING", "RINGING", "ANSWERED"], 2.0),
])
def test_each_outcome_of_the_phone_network_reports_its_states(sb, outcome, expected, after_s):
    agent_id = placed(sb, to=phone_network.example(outcome))
    sb.advance(after_s - 0.5 if after_s else 0)
    assert "HANGUP" not in states(sb) or outcome == "failed"
    sb.advance(0.5)
    assert states(sb) == expected
    if outcome != "voicemail":
        hangup = [b for b in sb.events(17) if b["eventType"] == 202][-1]["payload"]
        assert hangup["reason"] == outcome and rtc(sb) == []
        assert status(sb, agent_id)["reason"] == "failed"
        sb.advance(1.0)
        assert 102 in [b["eventType"] for b in sb.events(17)]


def test_the_hangup_endpoint_ends_the_call_and_the_agent_leaves(sb):
    agent_id = placed(sb)
    sb.advance(2.0)
    response = sb.client.post(sb.url(f"/calls/{agent_id}/hangup"), json={}, headers=sb.headers)
    assert (response.status_code, response.get_json()) == (200, {})
    assert states(sb)[-1] == "HANGUP" and rtc(sb)[-1] == (104, int(PSTN_UID))
    assert status(sb, agent_id)["reason"] == "request"
    sb.advance(1.0)
    assert 102 in [b["eventType"] for b in sb.events(17)]
    again = sb.client.post(sb.url(f"/calls/{agent_id}/hangup"), json={}, headers=sb.headers)
    assert again.status_code == 404 and set(again.get_json()) == {"error_type", "description"}
    assert [(r["kind"], r["status"]) for r in sb.sandbox.requests()] == [
        ("place_call", 200), ("hang_up_call", 200), ("call_status", 200),
        ("hang_up_call", 404)]


def test_an_agent_stopped_by_leave_hangs_its_call_up(sb):
    agent_id = placed(sb)
    sb.advance(2.0)
    sb.leave(agent_id)
    sb.advance(0.1)
    assert states(sb)[-1] == "HANGUP" and status(sb, agent_id)["reason"] == "request"


@pytest.mark.parametrize(("change", "description"), [
    ({"to_number": "2025550100"}, "sip.to_number must be an E.164 number"),
    ({"from_number": None}, "sip.from_number must be an E.164 number"),
    ({"rtc_uid": 111}, "sip.rtc_uid: Field required (a string)"),
    ({"rtc_uid": "333"}, "properties.remote_rtc_uids must be [sip.rtc_uid]"),
    ({"rtc_token": "006abc"}, "sip.rtc_token must be an AccessToken2 (007)"),
])
def test_bad_sip_fields_are_refused_in_telephonys_error_shape(sb, change, description):
    body = call_body(sb)
    body["sip"].update(change)
    response = place(sb, body)
    assert response.status_code == 400
    assert response.get_json() == {"error_type": "invalid_request", "description": description}
    assert sb.sandbox.agents.summaries() == [] and states(sb) == []


def test_a_token_for_another_channel_is_refused(sb):
    body = call_body(sb)
    body["sip"]["rtc_token"] = sb.token("elsewhere", PSTN_UID)
    response = place(sb, body)
    assert response.status_code == 400
    assert "another channel" in response.get_json()["description"]


def test_properties_are_validated_like_a_join_and_names_are_not_reused(sb):
    body = call_body(sb)
    body["properties"]["agent_rtc_uid"] = 222
    bad = place(sb, body)
    assert bad.status_code == 400 and "agent_rtc_uid" in bad.get_json()["description"]
    placed(sb)
    again = place(sb)
    assert (again.status_code, again.get_json()["error_type"]) == (409, "TaskConflict")


def test_a_reset_forgets_the_calls(sb):
    agent_id = placed(sb)
    sb.client.post("/_sandbox/reset")
    sb.advance(10.0)
    missing = sb.client.get(sb.url(f"/calls/{agent_id}"), headers=sb.headers)
    assert missing.status_code == 404
