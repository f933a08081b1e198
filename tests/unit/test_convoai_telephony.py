"""ConvoAIClient's telephony calls against a mocked ConvoAI (``responses``): the exact URL, auth,
timeout and body sent, the answers read, and telephony's own error body mapped to our errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import responses
from responses import matchers

from convoai.client import ConvoAIClient
from convoai.errors import (
    AgentNotFound,
    AuthenticationFailed,
    InvalidRequest,
    UpstreamError,
    UpstreamUnavailable,
)
from convoai.models import CallStatus
from tests.unit.test_convoai_client import (
    APP_ID,
    BASE_URL,
    CUSTOMER_ID,
    PROJECT,
    PROPERTIES,
    SECRET,
    FakeTime,
    auth_and_timeout,
)

SIP = {"to_number": "+12025550100", "from_number": "+12025550199", "rtc_uid": "2002",
       "rtc_token": "007pstn-token"}


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def client(fake_time: FakeTime) -> Iterator[ConvoAIClient]:
    with ConvoAIClient(BASE_URL, APP_ID, CUSTOMER_ID, SECRET, sleep=fake_time.sleep,
                       clock=fake_time.clock, rand=lambda: 0.0) as convoai:
        yield convoai


def place(client: ConvoAIClient) -> str:
    return client.place_call("phoneagent-c1", properties=PROPERTIES, **SIP)


def test_place_call_posts_name_sip_and_properties_and_returns_the_agent_id(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{PROJECT}/call", json={"agent_id": "A9"}, match=[
        matchers.json_params_matcher({"name": "phoneagent-c1", "sip": SIP,
                                      "properties": PROPERTIES}),
        *auth_and_timeout()])

    assert place(client) == "A9"


def test_place_call_is_not_retried_a_second_dial_would_ring_twice(
    client: ConvoAIClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    rsps.post(f"{PROJECT}/call", status=503, json={"error_type": "unavailable",
                                                   "description": "try later"})

    with pytest.raises(UpstreamError) as caught:
        place(client)

    assert len(rsps.calls) == 1 and fake_time.sleeps == []
    assert (caught.value.status, caught.value.reason, caught.value.detail) == (
        503, "unavailable", "try later")


@pytest.mark.parametrize(("status", "error"), [
    (400, InvalidRequest), (401, AuthenticationFailed), (404, AgentNotFound),
    (500, UpstreamError),
])
def test_telephony_error_bodies_map_to_our_typed_errors(
    client: ConvoAIClient, rsps: responses.RequestsMock, status: int, error: type
) -> None:
    rsps.post(f"{PROJECT}/call", status=status,
              json={"error_type": "invalid_number", "description": "to_number is not E.164"})

    with pytest.raises(error) as caught:
        place(client)

    assert caught.value.reason == "invalid_number"
    assert caught.value.detail == "to_number is not E.164"


def test_place_call_without_an_agent_id_is_a_malformed_answer(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{PROJECT}/call", json={"status": "ok"})

    with pytest.raises(UpstreamError, match="missing agent_id"):
        place(client)


def test_a_connection_failure_is_chained_as_upstream_unavailable(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{PROJECT}/call", body=requests.ConnectionError("refused"))

    with pytest.raises(UpstreamUnavailable) as caught:
        place(client)

    assert isinstance(caught.value.__cause__, requests.ConnectionError)


def test_call_status_reads_every_documented_field(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{PROJECT}/calls/A9", match=auth_and_timeout(), json={
        "agent_id": "A9", "state": "hangup", "channel": "out_1", "to_number": "+12025550100",
        "from_number": "+12025550199", "type": "outbound", "create_ts": 1_700_000_000,
        "stop_ts": 1_700_000_060, "reason": "hangup"})

    assert client.call_status("A9") == CallStatus(
        agent_id="A9", state="hangup", channel="out_1", to_number="+12025550100",
        from_number="+12025550199", call_type="outbound", create_ts=1_700_000_000,
        stop_ts=1_700_000_060, reason="hangup")


def test_hang_up_posts_an_empty_object(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{PROJECT}/calls/A%2F9/hangup", body=b"",
              match=[matchers.json_params_matcher({}), *auth_and_timeout()])

    assert client.hang_up_call("A/9") is True


def test_hang_up_of_a_call_already_gone_is_fine(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{PROJECT}/calls/A9/hangup", status=404,
              json={"error_type": "not_found", "description": "no such call"})

    assert client.hang_up_call("A9") is False


def test_hang_up_is_retried_after_a_503(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{PROJECT}/calls/A9/hangup", status=503, json={})
    rsps.post(f"{PROJECT}/calls/A9/hangup", body=b"")

    assert client.hang_up_call("A9") is True
    assert len(rsps.calls) == 2
