"""The 5xx the fuzzing found, one example each, kept as regression tests (all fixed)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from werkzeug.test import TestResponse

from tests.fuzz.harness import FuzzedService
from tests.fuzz.strategies import deep_nesting


def caller_event(channel: object = "fb_channel", **payload: object) -> dict:
    return {"noticeId": f"fb-{json.dumps([channel, payload], default=str)[:100]}",
            "productId": 1, "eventType": 103, "notifyMs": int(time.time() * 1000),
            "payload": {"channelName": channel, "uid": 111, **payload}}


def post_signed(service: FuzzedService, body: bytes) -> TestResponse:
    return service.send("POST", "/webhook", body, headers=service.signed(body))


# -- fixed: ncs/events.py --------------------------------------------------------------------

def test_a_signed_body_nested_past_the_parsers_stack_is_a_400(service: FuzzedService) -> None:
    answer = post_signed(service, deep_nesting(100_000))
    service.check(answer, "webhook")
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_envelope"


@pytest.mark.parametrize(("event", "reason"), [
    (caller_event("fb_\ud800", clientSeq=1), "channelName"),
    (caller_event("fb_\x00nul", clientSeq=1), "channelName"),
    (caller_event(ts=2**62), "no clientSeq or ts"),
    (caller_event(clientSeq="9999999999999999999"), "no clientSeq or ts"),
    (caller_event(clientSeq="\u00b2"), "no clientSeq or ts"),
], ids=["lone-surrogate-channel", "nul-channel", "ts-times-1000-overflows", "seq-over-64-bits",
        "superscript-digit-seq"])
def test_signed_joins_the_store_cannot_hold_are_ignored(service: FuzzedService, event: dict,
                                                        reason: str) -> None:
    # Each once answered 500: the store could not encode, hold or bind the value.
    answer = post_signed(service, json.dumps(event).encode())
    service.check(answer, "webhook")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["status"] == "ignored" and reason in answer.get_json()["reason"]


def test_a_notice_id_that_is_not_text_the_store_can_hold_is_a_400(
        service: FuzzedService) -> None:
    event = {**caller_event(clientSeq=1), "noticeId": "fb-\ud800"}
    answer = post_signed(service, json.dumps(event).encode())
    service.check(answer, "webhook")
    assert answer.status_code == 400


def test_a_convoai_event_with_nul_in_its_labels_is_answered(service: FuzzedService) -> None:
    event = {"noticeId": "fb-convoai-nul", "productId": 17, "eventType": 102,
             "payload": {"agent_id": "A\x00", "name": "phoneagent-x",
                         "labels": {"service": "phoneagent", "call_id": "c\x00"}}}
    answer = post_signed(service, json.dumps(event).encode())
    service.check(answer, "webhook")
    assert answer.status_code == 200


# -- fixed: sip/views.py -----------------------------------------------------------------------

@pytest.mark.parametrize("route", ["/sip/lookup", "/sip/events/{events}", "/api/lines",
                                   "/api/numbers", "/api/calls"])
def test_json_routes_refuse_a_body_nested_past_the_parsers_stack_with_400(
        service: FuzzedService, route: str) -> None:
    path = route.format(events=service.settings.sip_events_token)
    token = service.settings.sip_lookup_token if route == "/sip/lookup" else \
        service.settings.admin_token
    answer = service.send("POST", path, deep_nesting(100_000), headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    service.check(answer, path)
    assert answer.status_code == 400


@pytest.mark.parametrize(("action", "body"), [
    ("transfer", {"destination": "+15555550100"}), ("dtmf", {"digits": "12#"})])
def test_controlling_a_call_with_no_phone_leg_is_a_409_not_a_502(
        service: FuzzedService, action: str, body: dict) -> None:
    # The call made by an NCS join has no gateway call id: nothing to ask the gateway.
    call_id = service.known["call_id"][0]
    answer = service.send("POST", f"/api/calls/{call_id}/{action}", json.dumps(body).encode(),
                          headers={"Content-Type": "application/json", **service.admin()})
    service.check(answer, action)
    assert answer.status_code == 409 and answer.get_json()["error"] == "no_phone_leg"


@pytest.mark.parametrize("leg", [5, "cleg", ["aleg"]])
def test_a_transfer_to_an_unknown_leg_is_a_400(service: FuzzedService, leg: object) -> None:
    # It reached the gateway client, whose ValueError answered 500.
    call_id = service.known["call_id"][1]  # the outbound call: it has a gateway call id
    body = json.dumps({"destination": "+15555550100", "leg": leg}).encode()
    answer = service.send("POST", f"/api/calls/{call_id}/transfer", body,
                          headers={"Content-Type": "application/json", **service.admin()})
    service.check(answer, "transfer")
    assert answer.status_code == 400 and "leg" in answer.get_json()["message"]


# -- fixed: calls/views.py -------------------------------------------------------------------

@pytest.mark.parametrize("cursor", [b"[" + b"9" * 400 + b", \"c\"]", deep_nesting(50_000)],
                         ids=["number-too-big-for-a-float", "nested-too-deep"])
def test_a_forged_cursor_is_a_400(service: FuzzedService, cursor: bytes) -> None:
    query = b"cursor=" + base64.urlsafe_b64encode(cursor).rstrip(b"=")
    answer = service.send("GET", "/api/calls", headers=service.admin(), query=query)
    service.check(answer, "GET /api/calls")
    assert answer.status_code == 400


# -- fixed: sip/try_page.py (the body must be a JSON object) -----------------------------------

@pytest.mark.parametrize("body", [b"[1]", b'"text"', deep_nesting(100_000)],
                         ids=["array", "string", "deep"])
def test_try_number_refuses_a_body_that_is_not_an_object_with_400(service: FuzzedService,
                                                                  body: bytes) -> None:
    answer = service.send("POST", "/try/number", body,
                          headers={"Content-Type": "application/json"})
    assert answer.status_code == 400


def nul_requests(service: FuzzedService) -> dict[str, tuple[str, str, bytes, bytes, dict]]:
    admin = service.admin()
    lookup = {"Authorization": f"Bearer {service.settings.sip_lookup_token}"}
    number = service.known["number"][0]
    return {
        "get_call": ("GET", "/api/calls/c%00", b"", b"", admin),
        "list_calls_filter": ("GET", "/api/calls", b"persona=p%00", b"", admin),
        "list_calls_cursor": ("GET", "/api/calls", b"cursor=WzEuMCwgImNcdTAwMDAiXQ", b"",
                              admin),
        "export_csv_filter": ("GET", "/api/calls.csv", b"persona=%00", b"", admin),
        "export_jsonl_filter": ("GET", "/api/calls.jsonl", b"channel=%00", b"", admin),
        "hangup": ("POST", "/api/calls/c%00/hangup", b"", b"", admin),
        "home_call": ("GET", "/home/calls/c%00", b"", b"", {}),
        "release_number": ("DELETE", "/api/numbers/r%00", b"", b"", admin),
        "line_label": ("POST", "/api/lines", b"", json.dumps(
            {"number": "+15555550199", "label": "l\x00"}).encode(), admin),
        "gateway_event": ("POST", f"/sip/events/{service.settings.sip_events_token}", b"",
                          json.dumps({"event": "call_hangup", "callid": "x\x00"}).encode(), {}),
        "lookup_callid": ("POST", "/sip/lookup", b"", json.dumps(
            {"did": number, "callid": "x\x00"}).encode(), lookup),
    }


NUL_CASES = ["get_call", "list_calls_filter", "list_calls_cursor", "export_csv_filter",
             "export_jsonl_filter", "hangup", "home_call",
             "release_number", "line_label", "gateway_event", "lookup_callid"]


# -- fixed: errors.py (PostgreSQL refuses NUL in text: a 400, nothing recorded); the exports
# (calls/views.py) read their first page before the download starts, so they answer 400 too
# rather than a 200 cut short.

@pytest.mark.parametrize("case", NUL_CASES)
def test_nul_in_a_value_the_store_looks_up_or_keeps_is_not_a_5xx(
        service: FuzzedService, case: str) -> None:
    method, path, query, body, headers = nul_requests(service)[case]
    answer = service.send(method, path, body, query=query,
                          headers={"Content-Type": "application/json", **headers})
    assert answer.status_code < 500, answer.get_data(as_text=True)
