"""tools/relay.py: operator tools over HTTP, with `responses` standing in for the operator."""

from __future__ import annotations

import base64

import pytest
import requests
import responses
from standardwebhooks import Webhook

from personas.model import OperatorTool
from tools.relay import MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, OperatorRelay

SECRET = "whsec_" + base64.b64encode(b"r" * 32).decode()
URL = "https://ops.example.com/tools/lookup"


def tool(**changes) -> OperatorTool:
    fields = {"name": "lookup", "description": "Look up", "url": URL,
              "secret_env": "LOOKUP_SECRET", "secret": SECRET, "timeout_s": 2.0}
    return OperatorTool(**{**fields, **changes})


def send(relay: OperatorRelay, arguments=None, **changes):
    return relay.send(tool(**changes), tool_call_id="tc_1", arguments=arguments or {"n": "1"},
                      call={"id": "call1"})


@responses.activate
def test_a_json_answer_is_the_result_and_the_request_is_signed_with_its_key():
    hook = responses.post(URL, json={"text": "Order 1 shipped.", "status": "shipped"})
    outcome = send(OperatorRelay())
    assert outcome.ok and outcome.text == "Order 1 shipped."
    assert outcome.structured == {"text": "Order 1 shipped.", "status": "shipped"}
    sent = hook.calls[0].request
    assert sent.headers["Idempotency-Key"] == sent.headers["webhook-id"] == "tc_1"
    assert Webhook(SECRET).verify(sent.body, dict(sent.headers))["arguments"] == {"n": "1"}


@responses.activate
@pytest.mark.parametrize(("answer", "outcome"), [
    ({"status": 302, "headers": {"Location": "https://elsewhere.example.com/"}}, "http_error"),
    ({"status": 500, "body": "Traceback (most recent call last)"}, "http_error"),
    ({"status": 200, "body": "<html>hello</html>"}, "bad_answer"),
    ({"status": 200, "json": [1, 2]}, "bad_answer"),
    ({"status": 200, "body": b"{" + b" " * MAX_RESPONSE_BYTES + b"}"}, "too_large"),
    ({"body": requests.ConnectTimeout()}, "timeout"),
    ({"body": requests.ConnectionError()}, "unreachable"),
])
def test_anything_but_a_2xx_json_object_is_a_short_error(answer, outcome):
    responses.post(URL, **answer)
    responses.get("https://elsewhere.example.com/", json={"text": "followed"})
    result = send(OperatorRelay())
    assert result.outcome == outcome
    assert result.text == "The lookup tool is not available right now."
    assert len(responses.calls) == 1  # no redirect followed, no retry


def test_an_oversized_request_or_an_unset_secret_is_never_sent():
    relay = OperatorRelay()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        hook = mocked.post(URL, json={})
        assert send(relay, {"n": "x" * MAX_REQUEST_BYTES}).outcome == "too_large"
        assert send(relay, secret="").outcome == "not_configured"
        assert hook.call_count == 0
