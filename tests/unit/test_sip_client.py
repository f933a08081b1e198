"""GatewayClient against a mocked SIP/PSTN gateway (``responses``): what is sent and received."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from sip.client import GatewayClient, should_retry
from sip.errors import (
    CallNotFound,
    GatewayAuthError,
    GatewayBadRequest,
    GatewayError,
    GatewayRejected,
    GatewayUnavailable,
    error_from_response,
)
from sip.models import OutboundResult, Reservation
from sip.payload import mask_number, normalize_region

API_URL = "https://sipcm.test/v1/api/pstn"
AUTH = "c2lwLWF1dGgtdmFsdWUtZnJvbS1hZ29yYQ=="
APP_ID = "0123456789abcdef0123456789abcdef"
TOKEN = "007eJxTYLh-rtc-token-for-the-gateway"
TO = "+14155550123"
CALLER_ID = "+18005559876"
TIMEOUT = (3.05, 10.0)
OUTBOUND_TIMEOUT = (3.05, 90.0)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def gateway(fake_time: FakeTime) -> Iterator[GatewayClient]:
    with GatewayClient(
        API_URL, AUTH, APP_ID, sleep=fake_time.sleep, clock=fake_time.clock
    ) as client:
        yield client


def sent(body: dict[str, Any], timeout: object = TIMEOUT) -> list:
    """Matchers for one exact request: the body (strict), the credential, the timeout."""
    return [
        matchers.json_params_matcher({"appid": APP_ID, **body}, strict_match=True),
        matchers.header_matcher({"Authorization": f"Basic {AUTH}"}),
        matchers.request_kwargs_matcher({"timeout": timeout}),
    ]


def sent_json(rsps: responses.RequestsMock, index: int = 0) -> dict[str, Any]:
    return json.loads(rsps.calls[index].request.body)


def assert_all_strings_but_video(body: dict[str, Any]) -> None:
    for name, value in body.items():
        assert isinstance(value, bool if name == "video" else str), name


# -- inbound / inboundsip ----------------------------------------------------------------------


def test_inbound_reserves_a_number_and_sends_uid_as_a_string(
    gateway: GatewayClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(
        API_URL,
        json={"did": "18005550142", "display": "+1 (800) 555-0142", "pin": "123456"},
        match=sent(
            {
                "action": "inbound",
                "channel": "call-42",
                "region": "AREA_CODE_NA",
                "token": TOKEN,
                "uid": "111",
            }
        ),
    )

    reservation = gateway.inbound("call-42", "na", token=TOKEN, uid=111)

    assert reservation == Reservation(did="18005550142", display="+1 (800) 555-0142", pin="123456")
    body = sent_json(rsps)
    assert body["uid"] == "111"
    assert_all_strings_but_video(body)
    assert rsps.calls[0].request.headers["Content-Type"] == "application/json"


def test_inbound_sends_common_options_as_strings_and_video_as_a_bool(
    gateway: GatewayClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(
        API_URL,
        json={"did": "442071838750", "display": "+44 20 7183 8750", "pin": "9"},
        match=sent(
            {
                "action": "inbound",
                "channel": "c",
                "region": "AREA_CODE_EU",
                "webhook_url": "https://svc.test/sip/events/k",
                "audio_scenario": "10",
                "sdk_options": '{"rtc.client_type":"71"}',
                "video": True,
            }
        ),
    )

    gateway.inbound(
        "c",
        "AREA_CODE_EU",
        webhook_url="https://svc.test/sip/events/k",
        audio_scenario=10,
        sdk_options={"rtc.client_type": "71"},
        video=True,
    )

    assert_all_strings_but_video(sent_json(rsps))


def test_inbound_without_a_pin_in_the_answer_is_a_gateway_error(
    gateway: GatewayClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(API_URL, json={"did": "18005550142", "display": "x"})

    with pytest.raises(GatewayError, match="missing pin") as caught:
        gateway.inbound("c", "NA")

    assert caught.value.reason == "MalformedResponse"


def test_inbound_sip_returns_the_uri(gateway: GatewayClient, rsps: responses.RequestsMock) -> None:
    rsps.post(
        API_URL,
        json={"sip": "sip:pstn_abc@127.0.0.1:5080"},
        match=sent({"action": "inboundsip", "channel": "c", "region": "AREA_CODE_AS", "uid": "0"}),
    )

    assert gateway.inbound_sip("c", "as", uid=0) == "sip:pstn_abc@127.0.0.1:5080"


# -- regions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("NA", "AREA_CODE_NA"),
        ("na", "AREA_CODE_NA"),
        ("AREA_CODE_NA", "AREA_CODE_NA"),
        ("area_code_eu", "AREA_CODE_EU"),
        (" jp ", "AREA_CODE_JP"),
        ("IN", "AREA_CODE_IN"),
        ("CN", "AREA_CODE_CN"),
    ],
)
def test_regions_are_normalised(given: str, expected: str) -> None:
    assert normalize_region(given) == expected


@pytest.mark.parametrize("region", ["US", "", "AREA_CODE_", "AREA_CODE_XX", "NA ;", "europe"])
def test_unknown_regions_are_refused_before_sending(
    gateway: GatewayClient, rsps: responses.RequestsMock, region: str
) -> None:
    with pytest.raises(ValueError, match="region"):
        gateway.inbound("c", region)

    assert len(rsps.calls) == 0


# -- outbound ----------------------------------------------------------------------------------


def test_outbound_success_returns_the_callid_and_uses_the_long_timeout(
    gateway: GatewayClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(
        API_URL,
        json={"success": True, "callid": "call-abc"},
        match=sent(
            {
                "action": "outbound",
                "channel": "call-42",
                "region": "AREA_CODE_NA",
                "to": TO,
                "from": CALLER_ID,
                "prompt": "false",
                "token": TOKEN,
                "uid": "111",
                "timeout": "600",
                "webhook_url": "https://svc.test/hook",
                "audio_scenario": "10",
            },
            timeout=OUTBOUND_TIMEOUT,
        ),
    )

    result = gateway.outbound(
        channel="call-42",
        region="NA",
        to=TO,
        caller_id=CALLER_ID,
        token=TOKEN,
        uid=111,
        timeout_s=600,
        webhook_url="https://svc.test/hook",
        audio_scenario="10",
    )

    assert result == OutboundResult(callid="call-abc")
    assert_all_strings_but_video(sent_json(rsps))


def test_outbound_busy_raises_rejected_with_the_reason(
    gateway: GatewayClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(API_URL, json={"success": False, "reason": "Busy"})

    with pytest.raises(GatewayRejected) as caught:
        gateway.outbound(channel="c", region="NA", to=TO, caller_id=CALLER_ID)

    err = caught.value
    assert (err.status, err.reason, err.action) == (200, "Busy", "outbound")
    assert str(err) == "SIP gateway outbound 200: Busy"
    assert len(rsps.calls) == 1


def test_outbound_timeout_is_unavailable_chained_and_not_retried(
    gateway: GatewayClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    cause = requests.exceptions.ReadTimeout("read timed out")
    rsps.post(API_URL, body=cause)

    with pytest.raises(GatewayUnavailable) as caught:
        gateway.outbound(channel="c", region="NA", to=TO, caller_id=CALLER_ID)

    assert caught.value.__cause__ is cause
    assert caught.value.status is None
    assert len(rsps.calls) == 1 and fake_time.sleeps == []


def test_outbound_is_not_retried_on_503(
    gateway: GatewayClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    rsps.post(API_URL, status=503, json={"error": "No resource currently available"})

    with pytest.raises(GatewayUnavailable) as caught:
        gateway.outbound(channel="c", region="NA", to=TO, caller_id=CALLER_ID)

    assert caught.value.reason == "No resource currently available"
    assert len(rsps.calls) == 1 and fake_time.sleeps == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prompt": "yes"},
        {"timeout_s": 0},
        {"timeout_s": True},
        {"to": ""},
        {"caller_id": ""},
        {"sdk_options": "not json"},
        {"sdk_options": "[1]"},
        {"uid": -1},
        {"uid": True},
        {"video": "yes"},
    ],
)
def test_outbound_refuses_bad_input_before_sending(
    gateway: GatewayClient, rsps: responses.RequestsMock, kwargs: dict[str, Any]
) -> None:
    args = {"channel": "c", "region": "NA", "to": TO, "caller_id": CALLER_ID, **kwargs}

    with pytest.raises(ValueError):
        gateway.outbound(**args)

    assert len(rsps.calls) == 0


# -- ending: endcall / cancelcall --------------------------------------------------------------


def test_end_call_is_retried_once_after_a_503(
    gateway: GatewayClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    expected = sent({"action": "endcall", "callid": "call-abc"})
    rsps.post(
        API_URL, status=503, json={"error": "No resource currently available"}, match=expected
    )
    rsps.post(API_URL, json={"success": True}, match=expected)

    assert gateway.end_call("call-abc") is None

    assert len(rsps.calls) == 2
    assert fake_time.sleeps == [0.5]


def test_end_call_gives_up_after_the_second_connection_error(
    gateway: GatewayClient, rsps: responses.RequestsMock
) -> None:
    first = requests.exceptions.ConnectionError("refused")
    second = requests.exceptions.ConnectionError("refused again")
    rsps.post(API_URL, body=first)
    rsps.post(API_URL, body=second)

    with pytest.raises(GatewayUnavailable) as caught:
        gateway.end_call("call-abc")

    assert caught.value.__cause__ is second
    assert len(rsps.calls) == 2


def test_end_call_of_an_unknown_call_is_call_not_found_without_retry(
    gateway: GatewayClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    rsps.post(API_URL, status=404, json={"error": "call call-abc not found or already ended"})

    with pytest.raises(CallNotFound) as caught:
        gateway.end_call("call-abc")

    assert caught.value.reason == "call call-abc not found or already ended"
    assert caught.value.http_status == 404
    assert len(rsps.calls) == 1 and fake_time.sleeps == []


@pytest.mark.parametrize(
    ("kwargs", "body"),
    [
        ({"token": TOKEN, "channel": "c"}, {"token": TOKEN, "channel": "c"}),
        (
            {"token": TOKEN, "channel": "c", "uid": 111},
            {"token": TOKEN, "channel": "c", "uid": "111"},
        ),
        ({"sip": "sip:pstn_abc@127.0.0.1:5080"}, {"sip": "sip:pstn_abc@127.0.0.1:5080"}),
        ({"did": "18005550142", "pin": "123456"}, {"did": "18005550142", "pin": "123456"}),
    ],
)
def test_cancel_call_sends_exactly_the_key_given(
    gateway: GatewayClient,
    rsps: responses.RequestsMock,
    kwargs: dict[str, Any],
    body: dict[str, str],
) -> None:
    rsps.post(API_URL, json={"success": True}, match=sent({"action": "cancelcall", **body}))

    gateway.cancel_call(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"token": TOKEN},
        {"channel": "c"},
        {"uid": 111},
        {"did": "18005550142"},
        {"pin": "123456"},
        {"sip": ""},
        {"sip": "sip:x@y", "did": "1", "pin": "2"},
        {"token": TOKEN, "channel": "c", "sip": "sip:x@y"},
        {"token": TOKEN, "channel": "c", "did": "1", "pin": "2"},
    ],
)
def test_cancel_call_needs_exactly_one_complete_key(
    gateway: GatewayClient, rsps: responses.RequestsMock, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        gateway.cancel_call(**kwargs)

    assert len(rsps.calls) == 0


def test_cancel_call_is_retried_once_after_a_timeout(
    gateway: GatewayClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(API_URL, body=requests.exceptions.ConnectTimeout())
    rsps.post(API_URL, json={"success": True})

    gateway.cancel_call(sip="sip:pstn_abc@127.0.0.1:5080")

    assert len(rsps.calls) == 2


# -- live-call control -------------------------------------------------------------------------


def test_send_dtmf_sends_the_digits(gateway: GatewayClient, rsps: responses.RequestsMock) -> None:
    rsps.post(
        API_URL,
        json={"success": True},
        match=sent({"action": "send_dtmf", "callid": "call-abc", "digits": "12*#"}),
    )

    gateway.send_dtmf("call-abc", "12*#")


def test_send_dtmf_is_not_retried_on_503(
    gateway: GatewayClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(API_URL, status=503)

    with pytest.raises(GatewayUnavailable):
        gateway.send_dtmf("call-abc", "1")

    assert len(rsps.calls) == 1


def test_transfer_sends_destination_and_leg_and_is_not_retried(
    gateway: GatewayClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(
        API_URL,
        body=requests.exceptions.ConnectionError("reset"),
        match=sent({"action": "transfer", "callid": "call-abc", "destination": TO, "leg": "bleg"}),
    )

    with pytest.raises(GatewayUnavailable):
        gateway.transfer("call-abc", TO, leg="bleg")

    assert len(rsps.calls) == 1


def test_bridge_and_unbridge(gateway: GatewayClient, rsps: responses.RequestsMock) -> None:
    rsps.post(
        API_URL,
        json={"success": True},
        match=sent(
            {
                "action": "bridge",
                "callid": "call-abc",
                "channel": "c2",
                "token": TOKEN,
                "uid": "111",
                "audio_scenario": "10",
            }
        ),
    )
    rsps.post(
        API_URL, json={"success": True}, match=sent({"action": "unbridge", "callid": "call-abc"})
    )

    gateway.bridge("call-abc", "c2", TOKEN, 111, audio_scenario=10)
    gateway.unbridge("call-abc")


def test_rebridge_mismatch_raises_rejected(
    gateway: GatewayClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(
        API_URL,
        json={"success": False, "reason": "current channel/uid mismatch"},
        match=sent(
            {
                "action": "rebridge",
                "callid": "call-abc",
                "channel": "c2",
                "token": TOKEN,
                "uid": "111",
                "current_channel": "c1",
                "current_uid": "111",
            }
        ),
    )

    with pytest.raises(GatewayRejected) as caught:
        gateway.rebridge("call-abc", "c2", TOKEN, 111, "c1", "111")

    assert caught.value.reason == "current channel/uid mismatch"


def test_callid_is_required(gateway: GatewayClient, rsps: responses.RequestsMock) -> None:
    with pytest.raises(ValueError, match="callid"):
        gateway.end_call("")

    assert len(rsps.calls) == 0


# -- error mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cls", "reason"),
    [
        (401, {"error": "Unauthorized"}, GatewayAuthError, "Unauthorized"),
        (403, b"Forbidden", GatewayAuthError, "Forbidden"),
        (404, {"error": "not found"}, CallNotFound, "not found"),
        (
            500,
            {"error": "Missing Parameters: callid"},
            GatewayBadRequest,
            "Missing Parameters: callid",
        ),
        (400, {"reason": "unknown action"}, GatewayBadRequest, "unknown action"),
        (
            503,
            b"No resource currently available",
            GatewayUnavailable,
            "No resource currently available",
        ),
        (
            502,
            b"<html>\n<b>Bad Gateway</b>\n</html>",
            GatewayUnavailable,
            "<html> <b>Bad Gateway</b> </html>",
        ),
        (418, {"other": "x"}, GatewayError, None),
        (500, [1, 2], GatewayBadRequest, None),
        (500, b"", GatewayBadRequest, None),
    ],
)
def test_statuses_map_to_error_classes(
    gateway: GatewayClient,
    rsps: responses.RequestsMock,
    status: int,
    body: Any,
    cls: type,
    reason: str | None,
) -> None:
    if isinstance(body, bytes):
        rsps.post(API_URL, status=status, body=body)
    else:
        rsps.post(API_URL, status=status, json=body)

    with pytest.raises(GatewayError) as caught:
        gateway.unbridge("call-abc")

    err = caught.value
    assert type(err) is cls
    assert (err.status, err.reason, err.action) == (status, reason, "unbridge")
    assert err.response is not None and err.response.status_code == status


def test_a_long_error_page_is_cut_to_one_short_line() -> None:
    resp = requests.Response()
    resp.status_code = 500
    resp._content = ("x" * 1000 + "\n" + "y" * 1000).encode()

    err = error_from_response(resp)

    assert err is not None and err.reason is not None
    assert len(err.reason) == 200 and "\n" not in str(err)


def test_a_2xx_without_success_false_is_not_an_error() -> None:
    resp = requests.Response()
    resp.status_code = 200
    resp._content = b'{"success": true}'

    assert error_from_response(resp) is None


def test_a_positional_message_is_kept() -> None:
    err = GatewayError("the call has no gateway call id")

    assert str(err) == "SIP gateway unavailable: the call has no gateway call id"
    assert err.status is None and err.http_status == 502


# -- retry policy (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "error", "attempt", "expected"),
    [
        ("endcall", GatewayUnavailable(status=503), 1, True),
        ("cancelcall", GatewayUnavailable(), 1, True),
        ("endcall", GatewayUnavailable(status=503), 2, False),
        ("endcall", CallNotFound(status=404), 1, False),
        ("endcall", GatewayBadRequest(status=500), 1, False),
        ("outbound", GatewayUnavailable(), 1, False),
        ("transfer", GatewayUnavailable(), 1, False),
        ("send_dtmf", GatewayUnavailable(status=503), 1, False),
        ("inbound", GatewayUnavailable(status=503), 1, False),
        ("bridge", GatewayUnavailable(status=503), 1, False),
    ],
)
def test_retry_policy(action: str, error: GatewayError, attempt: int, expected: bool) -> None:
    assert should_retry(action, error, attempt) is expected


# -- secrets and logs --------------------------------------------------------------------------


def test_errors_never_show_the_credential_or_the_token(
    gateway: GatewayClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(API_URL, status=401, json={"error": f"bad credential Basic {AUTH}"})
    rsps.post(API_URL, status=500, json={"error": f"Missing Parameters: token {TOKEN} bad"})
    rsps.post(API_URL, json={"success": False, "reason": f"join failed: {TOKEN}"})
    rsps.post(API_URL, body=requests.exceptions.ConnectTimeout(f"Basic {AUTH} {TOKEN}"))
    errors: list[GatewayError] = []
    for _ in range(4):
        with pytest.raises(GatewayError) as caught:
            gateway.bridge("call-abc", "c", TOKEN, 111)
        errors.append(caught.value)

    assert [type(e) for e in errors] == [
        GatewayAuthError,
        GatewayBadRequest,
        GatewayRejected,
        GatewayUnavailable,
    ]
    assert errors[1].reason == "Missing Parameters: token *** bad"
    for err in errors:
        shown = f"{err} {err!r} {err.args!r} {err.reason}"
        assert AUTH not in shown and TOKEN not in shown
    # Both really were sent, so the checks above could have failed.
    assert rsps.calls[0].request.headers["Authorization"] == f"Basic {AUTH}"
    assert sent_json(rsps)["token"] == TOKEN


def test_client_repr_shows_no_credential() -> None:
    client = GatewayClient(API_URL, AUTH, APP_ID)

    assert AUTH not in repr(client)


def test_logs_carry_masked_numbers_and_no_secrets(
    gateway: GatewayClient, rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sip")
    rsps.post(API_URL, json={"success": True, "callid": "call-abc"})
    rsps.post(API_URL, json={"did": "18005550142", "display": "+1 (800) 555-0142", "pin": "4321"})

    gateway.outbound(
        channel="c",
        region="NA",
        to=TO + ";dtmf=9876",
        caller_id=CALLER_ID,
        token=TOKEN,
        sip="sip:trunk.test;username=u;password=hunter22",
    )
    gateway.inbound("c", "NA", token=TOKEN)

    assert [r.getMessage() for r in caplog.records] == ["sip.request", "sip.request"]
    out, inb = caplog.records
    assert (out.action, out.status, out.callid) == ("outbound", 200, "call-abc")
    assert isinstance(out.elapsed_ms, int)
    assert out.to == "*******0123"
    assert getattr(out, "from") == "*******9876"
    assert (inb.action, inb.did) == ("inbound", "*******0142")
    for record in caplog.records:
        dumped = repr(record.__dict__)
        for secret in (
            AUTH,
            TOKEN,
            "hunter22",
            "4155550123",
            "8005559876",
            "8005550142",
            "4321",
            "dtmf",
        ):
            assert secret not in dumped, secret


def test_a_failed_exchange_is_logged_with_its_status(
    gateway: GatewayClient, rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sip")
    rsps.post(API_URL, status=503)
    rsps.post(API_URL, json={"success": True})

    gateway.end_call("call-abc")

    events = [(r.getMessage(), r.levelname, getattr(r, "status", None)) for r in caplog.records]
    assert events == [
        ("sip.request", "INFO", 503),
        ("sip.retry", "WARNING", 503),
        ("sip.request", "INFO", 200),
    ]


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+14155550123", "*******0123"),
        ("+1 (415) 555-0123", "*******0123"),
        ("14155550123#55", "*******0123"),
        ("123", "****"),
        ("sip:alice@trunk.test", "sip:***"),
    ],
)
def test_mask_number(number: str, masked: str) -> None:
    assert mask_number(number) == masked


# -- construction and session ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("", AUTH, APP_ID),
        (API_URL, f"Basic {AUTH}", APP_ID),
        (API_URL, f" {AUTH}", APP_ID),
        (API_URL, f"{AUTH}\n", APP_ID),
    ],
)
def test_bad_settings_are_refused_without_echoing_the_credential(args: tuple) -> None:
    with pytest.raises(ValueError) as caught:
        GatewayClient(*args)

    assert AUTH not in str(caught.value)


@pytest.mark.parametrize(("auth", "app_id"), [("", APP_ID), (AUTH, "")])
def test_an_unconfigured_client_refuses_every_call_unsent(
    rsps: responses.RequestsMock, auth: str, app_id: str
) -> None:
    client = GatewayClient(API_URL, auth, app_id)  # SIP is optional: building it is fine

    assert client.configured is False
    with pytest.raises(GatewayAuthError, match="not configured|no gateway credential"):
        client.end_call("call-abc")
    assert len(rsps.calls) == 0


def test_a_session_passed_in_is_used_and_left_open(
    rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[bool] = []
    monkeypatch.setattr(requests.Session, "close", lambda self: closed.append(True))
    session = requests.Session()
    rsps.post(API_URL, json={"success": True})

    with GatewayClient(API_URL, AUTH, APP_ID, session=session) as client:
        client.unbridge("call-abc")

    assert closed == []
    assert "Authorization" not in session.headers  # sent per request, not left on the session


def test_the_client_closes_the_session_it_created(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[bool] = []
    monkeypatch.setattr(requests.Session, "close", lambda self: closed.append(True))

    with GatewayClient(API_URL, AUTH, APP_ID):
        pass

    assert closed == [True]
