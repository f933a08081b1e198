import json

import pytest

from calls.lifecycle import CallerJoined, CallerLeft
from ncs.events import (
    AgentEvent,
    CallStateEvent,
    EnvelopeError,
    Ignored,
    classify,
    parse_envelope,
)


def envelope(product_id=1, event_type=103, **payload):
    return parse_envelope(json.dumps({"noticeId": "n-1", "productId": product_id,
                                      "eventType": event_type, "notifyMs": 1,
                                      "payload": payload}).encode())


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"productId": 1, "eventType": 103, "payload": {}}', "missing envelope field(s): noticeId"),
    (b'{"noticeId": "n", "eventType": 103}', "productId, payload"),
    (b'{"noticeId": "n", "productId": "x", "eventType": 103, "payload": {}}', "productId"),
    (b'{"noticeId": "n", "productId": 1, "eventType": 103, "payload": []}', "payload must be"),
    (b'{"noticeId": "", "productId": 1, "eventType": 103, "payload": {}}', "noticeId"),
])
def test_malformed_envelopes_are_rejected_with_a_reason(body, message):
    with pytest.raises(EnvelopeError) as info:
        parse_envelope(body)
    assert message in str(info.value)


@pytest.mark.parametrize("uid", [111, "111"])
@pytest.mark.parametrize("event_type", [103, 105, 107])
def test_caller_join_whether_uid_is_a_number_or_a_string(uid, event_type):
    event = classify(envelope(1, event_type, channelName="ch", uid=uid, clientSeq=7),
                     pstn_uid=111)
    assert event == CallerJoined(channel="ch", uid=111, seq=7, notice_id="n-1")


@pytest.mark.parametrize("event_type", [104, 106, 108])
def test_caller_leave_carries_its_reason(event_type):
    event = classify(envelope(1, event_type, channelName="ch", uid=111, clientSeq=8, reason=2),
                     pstn_uid=111)
    assert event == CallerLeft(channel="ch", uid=111, seq=8, notice_id="n-1", reason=2)


@pytest.mark.parametrize(("product_id", "event_type", "payload", "reason"), [
    (1, 103, {"channelName": "ch", "uid": 222, "clientSeq": 1}, "not the phone caller"),
    (1, 103, {"channelName": "test_webhook", "uid": 12121212, "clientSeq": 1},
     "not the phone caller"),
    (1, 101, {"channelName": "ch", "ts": 1}, "not a user join or leave"),
    (1, 111, {"channelName": "ch", "uid": 111, "clientSeq": 1}, "not a user join or leave"),
    (3, 103, {"channelName": "ch", "uid": 111, "clientSeq": 1}, "productId 3"),
    (1, 103, {"uid": 111, "clientSeq": 1}, "channelName"),
    (1, 103, {"channelName": "ch", "uid": 111}, "no clientSeq"),
    (17, 999, {"agent_id": "a"}, "ConvoAI eventType 999"),
])
def test_events_the_service_does_not_act_on_are_ignored_with_a_reason(
        product_id, event_type, payload, reason):
    event = classify(envelope(product_id, event_type, **payload), pstn_uid=111)
    assert isinstance(event, Ignored)
    assert reason in event.reason


def test_convoai_events_are_routed_on_product_before_event_type():
    # 103 is "agent history" for ConvoAI, not a join, even with uid 111 in the payload.
    event = classify(envelope(17, 103, agent_id="a-1", name="phoneagent-x", channel="ch",
                              uid=111, labels={"call_id": "x"}, contents=[]), pstn_uid=111)
    assert isinstance(event, AgentEvent)
    assert (event.kind, event.agent_id, event.labels) == ("agent_history", "a-1",
                                                           {"call_id": "x"})


def test_missing_client_seq_falls_back_to_ts_in_milliseconds():
    event = classify(envelope(1, 103, channelName="ch", uid=111, ts=1700000000), pstn_uid=111)
    assert isinstance(event, CallerJoined) and event.seq == 1_700_000_000_000


@pytest.mark.parametrize(("event_type", "kind"), [(104, "agent_token_expiring"),
                                                  (112, "turns_finished")])
def test_convoai_104_and_112_are_agent_events_not_rtc_leaves(event_type, kind):
    event = classify(envelope(17, event_type, agent_id="a-1", name="phoneagent-x", channel="ch",
                              uid=111, clientSeq=3, labels={"call_id": "x"}), pstn_uid=111)
    assert isinstance(event, AgentEvent) and (event.kind, event.event_type) == (kind, event_type)


@pytest.mark.parametrize(("event_type", "state", "direction", "kind"), [
    (202, "RINGING", "outbound", "call_ringing"),
    (202, "answered", "outbound", "call_answered"),
    (202, "HANGUP", "outbound", "call_hangup"),
    (201, "TRANSFERED", "inbound", "call_transfered"),
    (201, "START", "inbound", "call_start"),
])
def test_convoai_201_and_202_are_call_states_not_rtc_events(event_type, state, direction,
                                                            kind):
    # 201/202 are RTC numbers too (productId 1 would ignore them): the product decides first.
    event = classify(envelope(17, event_type, agent_id="a-1", name="phoneagent-x",
                              channel="out_1", state=state, report_ms=1_700_000_000_123,
                              labels={"call_id": "x"}), pstn_uid=111)
    assert event == CallStateEvent(
        direction=direction, state=state.upper(), event_type=event_type, agent_id="a-1",
        name="phoneagent-x", channel="out_1", labels={"call_id": "x"},
        report_ms=1_700_000_000_123, reason=None)
    assert event.kind == kind


def test_a_call_state_keeps_a_reason_when_one_comes():
    event = classify(envelope(17, 202, agent_id="a-1", state="HANGUP", reason="busy"),
                     pstn_uid=111)
    assert isinstance(event, CallStateEvent) and event.reason == "busy"


@pytest.mark.parametrize(("event_type", "payload", "reason"), [
    (202, {"agent_id": "a", "state": "TRANSFERED"}, "not an outbound call state"),
    (201, {"agent_id": "a", "state": "RINGING"}, "not an inbound call state"),
    (202, {"agent_id": "a"}, "not an outbound call state"),
    (202, {"state": "HANGUP"}, "neither agent_id nor channel"),
])
def test_call_states_that_cannot_be_used_are_ignored_with_a_reason(event_type, payload, reason):
    event = classify(envelope(17, event_type, **payload), pstn_uid=111)
    assert isinstance(event, Ignored) and reason in event.reason
