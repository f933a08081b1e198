"""The sandbox behaves like Agora's SIP/PSTN gateway (reference B.1-B.3) for what the service
relies on, and lets simulators mark callers present.

In-process: Flask test client, fake clock, recording NCS transport, and a fake service (Peer)
that answers the ring-time lookup and records every lifecycle webhook, so no socket is opened.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from convoai.tokens import MAX_TOKEN_LIFETIME_S
from sandbox.app import create_sandbox_app
from sandbox.clock import FakeClock
from sandbox.config import ConfigError, SandboxConfig
from sandbox.ncs_sender import RecordingTransport
from sandbox.redact import fingerprint
from sandbox.sip_hooks import Hook, HookSender
from sandbox.testing import WEBHOOK_URL, Harness

HOOK_URL = "http://127.0.0.1:1/sip/events?key=unguessable"
LOOKUP_URL = "http://127.0.0.1:1/sip/lookup"  # derived from WEBHOOK_URL's origin


@dataclass
class Post:
    url: str
    json: Any
    headers: dict[str, str]
    timeout: Any


class FakeResponse:
    def __init__(self, status_code: int, body: Any) -> None:
        self.status_code = status_code
        self._body = body

    def json(self) -> Any:
        if isinstance(self._body, Exception):
            raise self._body
        return self._body


@dataclass
class Peer:
    """The service as the gateway sees it: answers lookups, records every POST."""

    posts: list[Post] = field(default_factory=list)
    lookup: tuple[int, Any] = (404, {})
    hook_status: int = 200
    fail_with: Exception | None = None

    def post(self, url: str, *, json: Any = None, headers: dict[str, str] | None = None,
             timeout: Any = None) -> FakeResponse:
        self.posts.append(Post(url, json, dict(headers or {}), timeout))
        if self.fail_with is not None:
            raise self.fail_with
        if url.startswith(LOOKUP_URL):
            return FakeResponse(*self.lookup)
        return FakeResponse(self.hook_status, {})

    def lookups(self) -> list[Post]:
        return [p for p in self.posts if p.url.startswith(LOOKUP_URL)]

    def hooks(self, event: str | None = None) -> list[dict[str, Any]]:
        return [p.json for p in self.posts
                if not p.url.startswith(LOOKUP_URL) and event in (None, p.json["event"])]

    def events(self) -> list[str]:
        return [h["event"] for h in self.hooks()]


@dataclass
class Sip:
    sb: Harness
    peer: Peer

    @property
    def config(self) -> SandboxConfig:
        return self.sb.config

    def api(self, action: str, *, auth: str | None = "Basic sandbox-sip-auth",
            **fields: Any) -> Any:
        body = {"action": action, "appid": self.config.app_id, **fields}
        headers = {"Authorization": auth} if auth else {}
        return self.sb.client.post("/sip/v1/api/pstn", json=body, headers=headers)

    def outbound(self, **fields: Any) -> Any:
        """An outbound call for uid 111 in room-1; ``fields`` override or add body fields."""
        body = {"channel": "room-1", "region": "AREA_CODE_NA", "to": "+15557654321",
                "from": "+18005550100", "prompt": "false", "uid": "111",
                "webhook_url": HOOK_URL, **fields}
        if "token" not in body:
            body["token"] = self.sb.token("room-1", "111")
        return self.api("outbound", **body)

    def inbound(self, **fields: Any) -> Any:
        body = {"channel": "room-1", "region": "AREA_CODE_NA", "uid": "111",
                "webhook_url": HOOK_URL, **fields}
        if "token" not in body:
            body["token"] = self.sb.token(body["channel"], "111")
        return self.api("inbound", **body)

    def dial(self, **spec: Any) -> Any:
        return self.sb.client.post("/_sandbox/sip/dial", json={"to": "+18005550100", **spec})

    def calls(self) -> list[dict[str, Any]]:
        return self.sb.client.get("/_sandbox/sip/calls").get_json()["calls"]

    def ncs(self) -> list[tuple[int, str, int]]:
        return [(b["eventType"], b["payload"]["channelName"], b["payload"]["uid"])
                for b in self.sb.events(1)]

    def answered_call(self) -> str:
        response = self.outbound()
        assert response.get_json()["success"] is True, response.get_json()
        return response.get_json()["callid"]


def make_sip(**config: Any) -> Sip:
    clock = FakeClock()
    transport = RecordingTransport(clock)
    peer = Peer()
    settings = dataclasses.replace(SandboxConfig(webhook_url=WEBHOOK_URL), **config)
    app = create_sandbox_app(settings, clock=clock, transport=transport, rng=random.Random(7),
                             start_background=False, sip_http=peer)
    harness = Harness(app, app.test_client(), clock, transport, app.extensions["sandbox"])
    return Sip(harness, peer)


@pytest.fixture
def sip() -> Sip:
    return make_sip()


def lookup_answer(sip: Sip, channel: str = "line-1", uid: str = "111", **extra: Any) -> dict:
    return {"token": sip.sb.token(channel, uid), "uid": uid, "channel": channel,
            "webhook_url": HOOK_URL, **extra}


# -- request shape and authentication --------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [
    ("uid", 111), ("timeout", 60), ("prompt", False), ("video", "true"), ("channel", None),
    ("sdk_options", {"rtc.client_type": "71"}),
])
def test_every_field_but_video_must_be_a_json_string(sip, field, value):
    response = sip.outbound(**{field: value})
    assert response.status_code == 500
    assert response.get_json() == {"error": response.get_json()["error"]}
    assert field in response.get_json()["error"]
    assert sip.calls() == [] and sip.peer.posts == []


def test_video_may_be_a_boolean(sip):
    assert sip.outbound(video=True).get_json()["success"] is True


@pytest.mark.parametrize(("action", "fields", "missing"), [
    ("inbound", {"channel": "c"}, "region"),
    ("outbound", {"channel": "c", "region": "AREA_CODE_EU", "to": "+4420", "from": "+4421"},
     "prompt"),
    ("endcall", {}, "callid"),
    ("rebridge", {"callid": "x", "channel": "c", "uid": "1", "current_channel": "d",
                  "current_uid": "1"}, "token"),
    ("send_dtmf", {"callid": "x"}, "digits"),
])
def test_missing_required_fields_are_500(sip, action, fields, missing):
    response = sip.api(action, **fields)
    assert response.status_code == 500
    assert missing in response.get_json()["error"]


@pytest.mark.parametrize(("fields", "bad"), [
    ({"region": "AREA_CODE_MARS"}, "region"), ({"uid": "abc"}, "uid"),
    ({"prompt": "maybe"}, "prompt"), ({"timeout": "0"}, "timeout"),
    ({"sdk_options": "not json"}, "sdk_options"), ({"webhook_url": "ftp://x"}, "webhook_url"),
])
def test_unusable_values_are_500(sip, fields, bad):
    response = sip.outbound(**fields)
    assert response.status_code == 500 and bad in response.get_json()["error"]


def test_an_unknown_action_is_400_and_a_missing_one_500(sip):
    assert sip.api("teleport").status_code == 400
    assert sip.sb.client.post("/sip/v1/api/pstn", json={"appid": sip.config.app_id},
                              headers={"Authorization": "Basic sandbox-sip-auth"}
                              ).status_code == 500


@pytest.mark.parametrize("auth", [None, "Basic wrong", "Bearer sandbox-sip-auth",
                                  "sandbox-sip-auth"])
def test_requests_without_the_gateway_credential_get_401(sip, auth):
    response = sip.inbound(auth=auth)
    assert response.status_code == 401
    assert sip.sb.client.get("/_sandbox/sip/reservations").get_json()["reservations"] == []


def test_another_appid_is_401(sip):
    response = sip.inbound(appid="0" * 32)
    assert response.status_code == 401


def test_the_credential_comes_from_config():
    sip = make_sip(sip_auth="from-agora")
    assert sip.inbound().status_code == 401
    assert sip.inbound(auth="Basic from-agora").status_code == 200


def test_the_request_log_records_each_action_with_tokens_fingerprinted(sip):
    token = sip.sb.token("room-1", "111")
    sip.inbound(token=token)
    sip.outbound(sip="sip:+15557654321@trunk.example;transport=tls;password=hunter2")
    log = sip.sb.client.get("/_sandbox/requests").get_json()["requests"]
    assert [(r["kind"], r["status"]) for r in log] == [("sip:inbound", 200),
                                                       ("sip:outbound", 200)]
    assert log[0]["body"]["token"] == fingerprint(token)
    assert log[0]["authorization"] == fingerprint("Basic sandbox-sip-auth")
    text = sip.sb.client.get("/_sandbox/requests?kind=sip:outbound").get_data(as_text=True)
    assert "hunter2" not in text and token not in text and "password=***" in text


# -- inbound reservations --------------------------------------------------------------------

@pytest.mark.parametrize(("region", "did", "display"), [
    ("AREA_CODE_NA", "18005550142", "+1 (800) 555-0142"),
    ("AREA_CODE_EU", "442071838750", "+44 20 7183 8750"),
    ("AREA_CODE_JP", "81345789012", "+81 3-4578-9012"),
])
def test_inbound_reserves_the_regions_number_and_a_pin(sip, region, did, display):
    token = sip.sb.token("room-1", "111")
    answer = sip.inbound(region=region, token=token).get_json()
    assert (answer["did"], answer["display"]) == (did, display)
    assert answer["pin"].isdigit() and len(answer["pin"]) == 6
    [reservation] = sip.sb.client.get("/_sandbox/sip/reservations").get_json()["reservations"]
    assert (reservation["channel"], reservation["uid"], reservation["state"]) == (
        "room-1", "111", "pending")
    assert reservation["token"] == fingerprint(token)
    # 24 h, as the service assumes (sip/service.py provision): one constant on both sides.
    assert reservation["expires_at"] == reservation["created_at"] + MAX_TOKEN_LIFETIME_S


@pytest.mark.parametrize(("channel", "uid"), [("room-2", "111"), ("room-1", "112")])
def test_inbound_refuses_a_token_for_another_channel_or_uid(sip, channel, uid):
    response = sip.inbound(token=sip.sb.token(channel, uid))
    assert response.status_code == 500
    assert "token" in response.get_json()["error"]


def test_without_a_certificate_inbound_takes_any_token():
    sip = make_sip(app_certificate="")
    assert sip.inbound(token=SandboxConfig().app_id).status_code == 200


def test_two_reservations_get_different_pins(sip):
    pins = {sip.inbound().get_json()["pin"] for _ in range(5)}
    assert len(pins) == 5


# -- outbound --------------------------------------------------------------------------------

def test_an_answered_outbound_call_joins_the_callee_and_hangs_up_after_its_duration(sip):
    before = sip.sb.clock.now()
    response = sip.outbound()
    assert sip.sb.clock.now() - before == pytest.approx(1.0)  # answered only when answered
    callid = response.get_json()["callid"]
    assert response.get_json() == {"success": True, "callid": callid}
    assert sip.ncs() == [(103, "room-1", 111)]
    assert sip.peer.events() == ["call_initiated", "call_ringing", "call_answered",
                                 "agora_bridge_start"]
    initiated, ringing, answered, _ = sip.peer.hooks()
    assert initiated["callid"] == ringing["callid"] == "" and answered["callid"] == callid
    assert ringing["timestamp"] == initiated["timestamp"] + 1
    assert answered | {"event": "x"} == {
        "event": "x", "callid": callid, "timestamp": int(sip.sb.clock.now()), "uid": "111",
        "channel": "room-1", "to": "+15557654321", "from": "+18005550100",
        "direction": "outbound", "appid": sip.config.app_id, "video": False}
    assert all("token" not in hook for hook in sip.peer.hooks())

    sip.sb.advance(4.9)
    assert [e for e, _, _ in sip.ncs()] == [103]
    sip.sb.advance(0.1)
    assert [e for e, _, _ in sip.ncs()] == [103, 104]
    assert sip.peer.events()[-2:] == ["agora_bridge_end", "call_hangup"]
    hangup = sip.peer.hooks("call_hangup")[0]
    assert (hangup["hangup_cause"], hangup["duration"], hangup["billsec"],
            hangup["sip_disposition"]) == ("NORMAL_CLEARING", "6", "5", "recv_bye")
    assert sip.calls()[0]["state"] == "ended"


def test_the_callee_stays_until_endcall_when_the_duration_is_unset():
    sip = make_sip(outbound_call_duration_s=None)
    sip.answered_call()
    sip.sb.advance(600)
    assert [e for e, _, _ in sip.ncs()] == [103]


def test_the_timeout_field_caps_the_call_and_the_gateway_hangs_up(sip):
    sip.outbound(timeout="3")
    sip.sb.advance(3)
    hangup = sip.peer.hooks("call_hangup")[0]
    assert (hangup["hangup_cause"], hangup["sip_disposition"]) == ("ALLOTTED_TIMEOUT",
                                                                  "send_bye")


@pytest.mark.parametrize("how", ["fault", "number"])
def test_a_busy_callee_is_success_false_and_never_joins(sip, how):
    if how == "fault":
        sip.sb.client.post("/_sandbox/faults", json={"outbound_results": ["Busy"]})
        response = sip.outbound()
    else:
        response = sip.outbound(to="+15551230000")
    assert (response.status_code, response.get_json()) == (200, {"success": False,
                                                                 "reason": "Busy"})
    assert sip.ncs() == []
    assert sip.peer.events() == ["call_initiated", "call_ringing", "call_hangup"]
    hangup = sip.peer.hooks("call_hangup")[0]
    assert (hangup["hangup_cause"], hangup["callid"], hangup["billsec"]) == ("USER_BUSY", "",
                                                                             "0")


def test_queued_results_are_consumed_one_per_call(sip):
    sip.sb.client.post("/_sandbox/faults", json={"outbound_results": ["Invalid", "answered"]})
    assert sip.outbound().get_json() == {"success": False, "reason": "Invalid"}
    assert sip.outbound(to="+15550000000").get_json()["success"] is True  # fault beats rule
    assert sip.outbound(to="+15550000000").get_json()["reason"] == "Busy"
    assert sip.sb.client.post("/_sandbox/faults",
                              json={"outbound_results": ["Maybe"]}).status_code == 400


def test_a_hanging_gateway_answers_503_after_outbound_hang_s(sip):
    sip.sb.client.post("/_sandbox/faults", json={"outbound_results": ["hang"]})
    before = sip.sb.clock.now()
    response = sip.outbound()
    assert response.status_code == 503 and "error" in response.get_json()
    assert sip.sb.clock.now() - before == pytest.approx(30)
    assert sip.ncs() == [] and sip.peer.events() == ["call_initiated"]
    assert sip.calls()[0]["state"] == "failed"


def test_outbound_checks_the_token_for_the_callee(sip):
    response = sip.outbound(token=sip.sb.token("room-1", "222"))
    assert response.status_code == 500 and sip.calls() == []


# -- actions on a live call ------------------------------------------------------------------

def test_endcall_takes_the_callee_out_and_sends_call_hangup(sip):
    callid = sip.answered_call()
    sip.sb.advance(2)
    assert sip.api("endcall", callid=callid).get_json() == {"success": True}
    leave = sip.sb.events(1)[-1]
    assert (leave["eventType"], leave["payload"]["reason"], leave["payload"]["uid"]) == (
        104, 1, 111)
    hangup = sip.peer.hooks("call_hangup")[0]
    assert (hangup["callid"], hangup["hangup_cause"], hangup["sip_disposition"]) == (
        callid, "NORMAL_CLEARING", "send_bye")
    assert sip.api("endcall", callid=callid).status_code == 404
    assert sip.api("endcall", callid="no-such-call").status_code == 404
    sip.sb.advance(10)
    assert len(sip.peer.hooks("call_hangup")) == 1


def test_send_dtmf_echoes_one_webhook_per_digit(sip):
    callid = sip.answered_call()
    assert sip.api("send_dtmf", callid=callid, digits="12#*").get_json() == {"success": True}
    assert [h["digits"] for h in sip.peer.hooks("dtmf_received")] == ["1", "2", "#", "*"]
    assert sip.calls()[0]["dtmf"] == "12#*"
    assert sip.api("send_dtmf", callid=callid, digits="12a").status_code == 500
    assert sip.api("send_dtmf", callid="nope", digits="1").status_code == 404


def test_transfer_records_the_destination_and_ends_the_agora_leg(sip):
    callid = sip.answered_call()
    response = sip.api("transfer", callid=callid, destination="+15550001111", leg="bleg")
    assert response.get_json() == {"success": True}
    assert [e for e, _, _ in sip.ncs()] == [103, 104]
    assert sip.peer.events()[-2:] == ["agora_bridge_end", "call_hangup"]
    assert sip.peer.hooks("call_hangup")[0]["hangup_cause"] == "BLIND_TRANSFER"
    [call] = sip.calls()
    assert call["state"] == "transferred"
    assert (call["transfer"]["destination"], call["transfer"]["leg"]) == ("+15550001111", "bleg")
    assert sip.api("transfer", callid=callid, destination="+1555").status_code == 404


def test_unbridge_keeps_the_phone_and_bridge_puts_it_back(sip):
    callid = sip.answered_call()
    assert sip.api("unbridge", callid=callid).get_json() == {"success": True}
    assert [e for e, _, _ in sip.ncs()] == [103, 104]
    assert sip.api("unbridge", callid=callid).get_json()["success"] is False
    token = sip.sb.token("room-2", "111")
    assert sip.api("bridge", callid=callid, channel="room-2", uid="111",
                   token=token).get_json() == {"success": True}
    assert sip.ncs()[-1] == (103, "room-2", 111)
    assert sip.peer.events()[-2:] == ["agora_bridge_end", "agora_bridge_start"]


def test_rebridge_checks_the_current_leg_and_moves_the_call(sip):
    callid = sip.answered_call()
    move = {"callid": callid, "channel": "room-2", "uid": "111",
            "token": sip.sb.token("room-2", "111")}
    wrong = sip.api("rebridge", current_channel="room-9", current_uid="111", **move)
    assert wrong.get_json() == {"success": False, "reason": "current channel/uid mismatch"}
    moved = sip.api("rebridge", current_channel="room-1", current_uid="111", **move)
    assert moved.get_json() == {"success": True}
    assert sip.ncs()[-2:] == [(104, "room-1", 111), (103, "room-2", 111)]
    start = sip.peer.hooks("agora_bridge_start")[-1]
    assert (start["rebridge"], start["previous_channel"], start["channel"]) == (
        True, "room-1", "room-2")


def test_a_rebridge_join_failure_leaves_the_call_unbridged(sip):
    callid = sip.answered_call()
    response = sip.api("rebridge", callid=callid, channel="room-2", uid="111",
                       token=sip.sb.token("room-3", "111"), current_channel="room-1",
                       current_uid="111")
    assert response.get_json()["reason"].startswith("join failed:")
    assert sip.peer.events()[-2:] == ["agora_bridge_end", "agora_bridge_failed"]
    assert sip.calls()[0]["state"] == "unbridged"
    assert "call_hangup" not in sip.peer.events()


# -- dial-ins through a line ------------------------------------------------------------------

def test_a_dial_in_asks_the_lookup_hook_and_joins_where_it_says():
    sip = make_sip(lookup_token="lookup-secret")
    sip.peer.lookup = (200, lookup_answer(sip))
    response = sip.dial(**{"from": "+15551234567", "duration_s": 5,
                           "sip_headers": {"X-Account": "42", "X-Agora-Internal": "no",
                                           "Contact": "no"}})
    assert response.status_code == 201
    answer = response.get_json()
    assert (answer["status"], answer["channel"]) == ("bridged", "line-1")
    [lookup] = sip.peer.lookups()
    assert lookup.json == {"did": "18005550100", "pin": "", "callerid": "+15551234567",
                           "callid": answer["callid"], "sip_headers": {"X-Account": "42"}}
    assert lookup.headers == {"Authorization": "Bearer lookup-secret"}
    assert sip.ncs() == [(103, "line-1", 111)]
    initiated = sip.peer.hooks("call_initiated")[0]
    assert (initiated["direction"], initiated["callid"], initiated["pin"],
            initiated["sip_headers"]) == ("inbound", answer["callid"], "", {"X-Account": "42"})
    sip.sb.advance(5)
    assert [e for e, _, _ in sip.ncs()] == [103, 104]
    assert sip.peer.events() == ["call_initiated", "agora_bridge_start", "agora_bridge_end",
                                 "call_hangup"]


def test_a_dial_in_sends_the_lookup_auth_header_exactly_as_given():
    sip = make_sip(lookup_auth="Basic cGhvbmU6YWdlbnQtc2VjcmV0", lookup_token="ignored")
    sip.peer.lookup = (200, lookup_answer(sip))
    sip.dial()
    [lookup] = sip.peer.lookups()
    assert lookup.headers == {"Authorization": "Basic cGhvbmU6YWdlbnQtc2VjcmV0"}


def test_a_lookup_404_rejects_the_call(sip):
    sip.peer.lookup = (404, {})
    answer = sip.dial().get_json()
    assert answer["status"] == "rejected" and answer["channel"] == ""
    assert sip.ncs() == [] and sip.peer.hooks() == []
    assert sip.calls()[0]["state"] == "rejected"
    assert len(sip.peer.lookups()) == 1


def test_a_lookup_token_for_another_channel_rejects_the_call(sip):
    sip.peer.lookup = (200, {**lookup_answer(sip), "token": sip.sb.token("elsewhere", "111")})
    answer = sip.dial().get_json()
    assert answer["status"] == "rejected" and answer["reason"].startswith("join failed")
    assert sip.ncs() == []
    assert sip.peer.hooks("call_hangup")[0]["hangup_cause"] == "CALL_REJECTED"


@pytest.mark.parametrize("answer", [{"uid": "111"}, {"token": "t", "uid": "x1", "channel": "c"},
                                    ["not", "an", "object"]])
def test_a_malformed_lookup_answer_rejects_the_call(sip, answer):
    sip.peer.lookup = (200, answer)
    assert sip.dial().get_json()["status"] == "rejected"
    assert sip.ncs() == []


def test_an_unreachable_lookup_rejects_the_call(sip):
    sip.peer.fail_with = requests.ConnectionError("refused")
    answer = sip.dial().get_json()
    assert (answer["status"], answer["reason"]) == ("rejected", "lookup failed: ConnectionError")


def test_dialling_a_reserved_number_with_its_pin_joins_without_a_lookup(sip):
    reserved = sip.inbound(channel="room-7", token=sip.sb.token("room-7", "111")).get_json()
    wrong = sip.dial(to="+" + reserved["did"], pin="000000" if reserved["pin"] != "000000"
                     else "111111").get_json()
    assert wrong["status"] == "rejected"
    answer = sip.dial(to="+" + reserved["did"], pin=reserved["pin"], duration_s=None).get_json()
    assert (answer["status"], answer["channel"]) == ("bridged", "room-7")
    assert sip.peer.lookups() == []
    assert sip.ncs() == [(103, "room-7", 111)]
    assert sip.peer.hooks("call_initiated")[0]["pin"] == reserved["pin"]
    [reservation] = sip.sb.client.get("/_sandbox/sip/reservations").get_json()["reservations"]
    assert (reservation["state"], reservation["callid"]) == ("used", answer["callid"])
    again = sip.dial(to="+" + reserved["did"], pin=reserved["pin"]).get_json()
    assert again["status"] == "rejected"  # a reservation is used once


def test_cancelcall_cancels_a_reservation_then_404s(sip):
    reserved = sip.inbound().get_json()
    cancel = {"did": reserved["did"], "pin": reserved["pin"]}
    assert sip.api("cancelcall", **cancel).get_json() == {"success": True}
    assert sip.dial(to="+" + reserved["did"], pin=reserved["pin"]).get_json()["status"] == (
        "rejected")
    assert sip.api("cancelcall", **cancel).status_code == 404
    assert sip.api("cancelcall", channel="room-1").status_code == 500  # no complete key


def test_cancelcall_by_token_ends_the_call_a_reservation_led_to(sip):
    token = sip.sb.token("room-1", "111")
    reserved = sip.inbound(token=token).get_json()
    callid = sip.dial(to="+" + reserved["did"], pin=reserved["pin"],
                      duration_s=None).get_json()["callid"]
    assert sip.api("cancelcall", token=token, channel="room-1").get_json()["success"] is True
    assert [e for e, _, _ in sip.ncs()] == [103, 104]
    assert sip.peer.hooks("call_hangup")[0]["callid"] == callid


def test_inboundsip_gives_a_uri_that_leads_into_the_channel(sip):
    uri = sip.api("inboundsip", channel="room-1", region="AREA_CODE_EU", uid="111",
                  token=sip.sb.token("room-1", "111")).get_json()["sip"]
    assert uri.startswith("sip:pstn_") and uri.endswith("@127.0.0.1:5080")
    assert sip.dial(to=uri).get_json()["status"] == "bridged"
    assert sip.ncs() == [(103, "room-1", 111)]


def test_the_phone_can_hang_up_through_the_control_api(sip):
    answer = sip.dial(to="+" + sip.inbound().get_json()["did"], duration_s=None)
    assert answer.get_json()["status"] == "rejected"  # no PIN given
    reserved = sip.inbound().get_json()
    callid = sip.dial(to="+" + reserved["did"], pin=reserved["pin"],
                      duration_s=None).get_json()["callid"]
    assert sip.sb.client.post(f"/_sandbox/sip/calls/{callid}/hangup").status_code == 200
    assert sip.peer.hooks("call_hangup")[0]["sip_disposition"] == "recv_bye"
    assert sip.sb.client.post(f"/_sandbox/sip/calls/{callid}/hangup").status_code == 404


@pytest.mark.parametrize("spec", [{}, {"to": 18005550100}, {"to": "+1", "colour": "red"},
                                  {"to": "+1", "pin": "12a"}, {"to": "+1", "duration_s": -1},
                                  {"to": "+1", "sip_headers": {"X-A": 1}}])
def test_bad_dial_specs_are_refused(sip, spec):
    assert sip.sb.client.post("/_sandbox/sip/dial", json=spec).status_code == 400


def test_reset_forgets_gateway_calls_and_reservations(sip):
    sip.inbound()
    sip.answered_call()
    sip.sb.client.post("/_sandbox/reset")
    assert sip.calls() == []
    assert sip.sb.client.get("/_sandbox/sip/reservations").get_json()["reservations"] == []


# -- webhook delivery ------------------------------------------------------------------------

def test_webhooks_go_out_from_a_background_thread_and_failures_are_not_retried():
    release = threading.Event()

    class SlowPeer(Peer):
        def post(self, url: str, **kwargs: Any) -> FakeResponse:
            release.wait(5)
            return super().post(url, **kwargs)

    peer = SlowPeer(hook_status=500)
    sender = HookSender(peer)
    statuses: list[Any] = []
    done = threading.Event()

    def finished(hook: Hook, status: Any) -> None:
        statuses.append(status)
        done.set()

    sender.start()
    try:
        hook = Hook(HOOK_URL, {"event": "call_hangup", "callid": "c", "timestamp": 1})
        sender.submit(hook, finished)  # returns at once, although the peer is stuck
        assert statuses == []
        release.set()
        assert done.wait(5)
    finally:
        sender.stop()
    assert statuses == [500] and len(peer.posts) == 1
    assert peer.posts[0].timeout == (2.0, 5.0)


def test_a_webhook_that_cannot_be_delivered_is_dropped(sip):
    sip.peer.fail_with = requests.ConnectTimeout("slow")
    assert sip.outbound().get_json()["success"] is True  # the API answer does not depend on it
    events = sip.calls()[0]["events"]
    assert {e["status"] for e in events} == {"error: ConnectTimeout"}
    assert len(sip.peer.posts) == len(events)


# -- presence for external simulators ---------------------------------------------------------

def test_presence_drives_turns_and_the_idle_timeout_without_ncs_events(sip):
    sb = sip.sb
    agent_id = sb.join().get_json()["agent_id"]  # idle_timeout 60, caller uid "111"
    sb.advance(0.3)
    mark = {"channel": "room-1", "uid": 111, "present": True}
    assert sb.client.post("/_sandbox/presence", json=mark).get_json() == mark
    sb.advance(3)
    assert sb.client.get("/_sandbox/agents").get_json()["agents"][0]["turns"] == 3
    sb.client.post("/_sandbox/presence", json={**mark, "present": False})
    sb.advance(59)
    assert sb.query(agent_id).get_json()["status"] == "RUNNING"
    sb.advance(1)
    sb.advance(0.2)
    assert sb.query(agent_id).get_json()["message"] == "Idle for too long"
    assert sb.events(1) == []


def test_repeating_a_presence_mark_does_not_restart_the_idle_clock(sip):
    sb = sip.sb
    agent_id = sb.join().get_json()["agent_id"]
    sb.advance(0.3)
    gone = {"channel": "room-1", "uid": 111, "present": False}
    sb.client.post("/_sandbox/presence", json=gone)
    sb.advance(30)
    sb.client.post("/_sandbox/presence", json=gone)
    sb.advance(30)
    sb.advance(0.2)
    assert sb.query(agent_id).get_json()["status"] == "STOPPED"


@pytest.mark.parametrize("body", [{"channel": "c", "uid": "111", "present": True},
                                  {"channel": "", "uid": 1, "present": True},
                                  {"channel": "c", "uid": 1, "present": "yes"},
                                  {"channel": "c", "uid": True, "present": True}])
def test_bad_presence_marks_are_refused(sip, body):
    assert sip.sb.client.post("/_sandbox/presence", json=body).status_code == 400


# -- configuration ---------------------------------------------------------------------------

def test_config_reads_the_gateway_settings():
    config = SandboxConfig.from_env({
        "SANDBOX_SIP_AUTH": "abc", "SANDBOX_OUTBOUND_ANSWER_DELAY_S": "0",
        "SANDBOX_OUTBOUND_CALL_DURATION_S": "", "SANDBOX_LOOKUP_URL": "http://127.0.0.1:9/l",
        "SANDBOX_LOOKUP_TOKEN": "t", "SANDBOX_OUTBOUND_HANG_S": "2",
    })
    assert config == dataclasses.replace(
        SandboxConfig(), sip_auth="abc", outbound_answer_delay_s=0.0,
        outbound_call_duration_s=None, lookup_url="http://127.0.0.1:9/l", lookup_token="t",
        outbound_hang_s=2.0)
    assert SandboxConfig().sip_auth == "sandbox-sip-auth"
    assert SandboxConfig().outbound_call_duration_s == 5.0


def test_config_rejects_bad_gateway_settings():
    with pytest.raises(ConfigError) as info:
        SandboxConfig.from_env({"SANDBOX_LOOKUP_URL": "ftp://x", "SANDBOX_SIP_AUTH": "",
                                "SANDBOX_OUTBOUND_CALL_DURATION_S": "-1"})
    for name in ("lookup_url", "sip_auth", "outbound_call_duration_s"):
        assert name in str(info.value)
