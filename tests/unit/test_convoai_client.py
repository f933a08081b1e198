"""ConvoAIClient against a mocked ConvoAI (``responses``): what is sent, and what comes back."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import pytest
import requests
import responses
from responses import matchers

from convoai.client import ConvoAIClient
from convoai.errors import (
    AgentNotFound,
    AuthenticationFailed,
    ConvoAIError,
    InvalidRequest,
    LimitExceeded,
    RateLimited,
    TaskConflict,
    UpstreamError,
    UpstreamUnavailable,
    error_from_response,
)
from convoai.models import (
    Agent,
    AgentPage,
    AgentStatus,
    AgentSummary,
    History,
)
from upstream.retry import RetryPolicy

BASE_URL = "https://convoai.test/api/conversational-ai-agent/"  # trailing slash on purpose
APP_ID = "0123456789abcdef0123456789abcdef"
PROJECT = f"https://convoai.test/api/conversational-ai-agent/v2/projects/{APP_ID}"
CUSTOMER_ID = "cust-id"
SECRET = "s3cr3t-value"
SECRET_B64 = base64.b64encode(f"{CUSTOMER_ID}:{SECRET}".encode()).decode()
BASIC = f"Basic {SECRET_B64}"
PROVIDER_KEY = "sk-provider-key-in-body"

PROPERTIES = {
    "channel": "call-42",
    "token": "007rtc-token",
    "agent_rtc_uid": "1001",
    "remote_rtc_uids": ["2002"],
    "llm": {"url": "https://llm.test/v1", "api_key": PROVIDER_KEY},
}
JOINED = {"agent_id": "A1", "create_ts": 1_700_000_000, "status": "RUNNING"}


class FakeTime:
    """A monotonic clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
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
def client(fake_time: FakeTime) -> Iterator[ConvoAIClient]:
    with ConvoAIClient(
        BASE_URL,
        APP_ID,
        CUSTOMER_ID,
        SECRET,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        rand=lambda: 0.0,  # lowest jitter: delays are exactly half the backoff
    ) as convoai:
        yield convoai


def auth_and_timeout(timeout: object = (3.05, 5.0)) -> list:
    return [
        matchers.header_matcher({"Authorization": BASIC}),
        matchers.request_kwargs_matcher({"timeout": timeout}),
    ]


# -- join ------------------------------------------------------------------------------------


def test_join_posts_name_and_properties_with_basic_auth_and_timeout(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(
        f"{PROJECT}/join",
        json=JOINED,
        match=[
            matchers.json_params_matcher({"name": "call-42-agent", "properties": PROPERTIES}),
            *auth_and_timeout(),
        ],
    )

    agent = client.join("call-42-agent", PROPERTIES)

    assert agent == Agent(agent_id="A1", status="RUNNING", created_at=1_700_000_000)
    assert rsps.calls[0].request.headers["Content-Type"] == "application/json"


def test_join_uses_the_per_call_timeout(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{PROJECT}/join", json=JOINED, match=auth_and_timeout((1.0, 2.0)))

    client.join("n", PROPERTIES, timeout=(1.0, 2.0))


def test_join_conflict_raises_task_conflict_with_reason_detail_and_response(
    client: ConvoAIClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    rsps.post(
        f"{PROJECT}/join",
        status=409,
        json={"detail": "task conflict: name in use", "reason": "TaskConflict"},
    )

    with pytest.raises(TaskConflict) as caught:
        client.join("call-42-agent", PROPERTIES)

    err = caught.value
    assert (err.status, err.reason, err.detail) == (
        409,
        "TaskConflict",
        "task conflict: name in use",
    )
    assert err.response is not None and err.response.status_code == 409
    assert str(err) == "ConvoAI 409 TaskConflict: task conflict: name in use"
    assert err.http_status == 409
    assert len(rsps.calls) == 1 and fake_time.sleeps == []


def test_join_limit_exceeded_is_not_retried(
    client: ConvoAIClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    rsps.post(
        f"{PROJECT}/join",
        status=422,
        json={"detail": "too many agents", "reason": "ConcurrencyLimitExceeded"},
    )

    with pytest.raises(LimitExceeded) as caught:
        client.join("n", PROPERTIES)

    assert caught.value.reason == "ConcurrencyLimitExceeded"
    assert len(rsps.calls) == 1
    assert fake_time.sleeps == []


def test_join_retries_two_503s_then_succeeds(
    client: ConvoAIClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    body = matchers.json_params_matcher({"name": "n", "properties": PROPERTIES})
    failure = {"detail": "agent startup failed", "reason": "ResourceAllocationFailed"}
    rsps.post(f"{PROJECT}/join", status=503, json=failure, match=[body])
    rsps.post(f"{PROJECT}/join", status=503, json=failure, match=[body])
    rsps.post(f"{PROJECT}/join", json=JOINED, match=[body])

    agent = client.join("n", PROPERTIES)

    assert agent.agent_id == "A1"
    assert len(rsps.calls) == 3
    assert fake_time.sleeps == pytest.approx([0.1, 0.2])  # 0.2 s and 0.4 s at lowest jitter


@pytest.mark.parametrize(
    "transport_error",
    [
        requests.exceptions.ConnectTimeout("connect timed out"),
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectionError("connection refused"),
    ],
)
def test_transport_failures_are_retried_then_raise_unavailable_chained(
    client: ConvoAIClient,
    rsps: responses.RequestsMock,
    fake_time: FakeTime,
    transport_error: Exception,
) -> None:
    for _ in range(4):
        rsps.post(f"{PROJECT}/join", body=transport_error)

    with pytest.raises(UpstreamUnavailable) as caught:
        client.join("n", PROPERTIES)

    assert caught.value.__cause__ is transport_error
    assert caught.value.status is None
    assert len(rsps.calls) == 4
    assert fake_time.sleeps == pytest.approx([0.1, 0.2, 0.4])


def test_timeout_then_success_returns_the_agent(
    client: ConvoAIClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    rsps.post(f"{PROJECT}/join", body=requests.exceptions.ConnectTimeout())
    rsps.post(f"{PROJECT}/join", json=JOINED)

    assert client.join("n", PROPERTIES).agent_id == "A1"
    assert fake_time.sleeps == pytest.approx([0.1])


def test_join_budget_override_stops_retrying_early(
    client: ConvoAIClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    rsps.post(f"{PROJECT}/join", status=503)

    with pytest.raises(UpstreamError):
        client.join("n", PROPERTIES, budget_s=0.05)  # the first backoff (0.1 s) overruns it

    assert len(rsps.calls) == 1 and fake_time.sleeps == []


def test_rate_limit_honours_retry_after(
    client: ConvoAIClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    rsps.post(
        f"{PROJECT}/join",
        status=429,
        headers={"Retry-After": "1.5"},
        json={"detail": "slow down", "reason": "RateLimited"},
    )
    rsps.post(f"{PROJECT}/join", json=JOINED)

    assert client.join("n", PROPERTIES).agent_id == "A1"
    assert fake_time.sleeps == [1.5]


def test_rate_limit_with_retry_after_beyond_the_budget_gives_up(
    client: ConvoAIClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    rsps.post(f"{PROJECT}/join", status=429, headers={"Retry-After": "30"})

    with pytest.raises(RateLimited) as caught:
        client.join("n", PROPERTIES)

    assert caught.value.retry_after == 30.0
    assert len(rsps.calls) == 1 and fake_time.sleeps == []


def test_success_body_without_agent_id_is_an_upstream_error(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{PROJECT}/join", json={"status": "RUNNING", "create_ts": 1})

    with pytest.raises(UpstreamError) as caught:
        client.join("n", PROPERTIES)

    assert caught.value.status == 200
    assert "agent_id" in str(caught.value)


# -- leave / update / query / history --------------------------------------------------------


def test_leave_posts_to_the_agent_leave_path(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{PROJECT}/agents/A1/leave", body="", match=auth_and_timeout())

    assert client.leave("A1") is None


def test_leave_of_a_gone_agent_raises_agent_not_found_without_retry(
    client: ConvoAIClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    rsps.post(
        f"{PROJECT}/agents/A1/leave",
        status=404,
        json={"detail": "agent not found", "reason": "TaskNotFound"},
    )

    with pytest.raises(AgentNotFound) as caught:
        client.leave("A1")

    assert caught.value.reason == "TaskNotFound"
    assert len(rsps.calls) == 1 and fake_time.sleeps == []


def test_leave_is_retried_on_502(
    client: ConvoAIClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    rsps.post(f"{PROJECT}/agents/A1/leave", status=502, body="<html>Bad Gateway</html>")
    rsps.post(f"{PROJECT}/agents/A1/leave", json={})

    client.leave("A1")

    assert len(rsps.calls) == 2


def test_agent_ids_are_quoted_into_one_path_segment(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{PROJECT}/agents/a%2F..%2Fjoin/leave", json={})

    client.leave("a/../join")


def test_update_posts_properties(client: ConvoAIClient, rsps: responses.RequestsMock) -> None:
    props = {"token": "007new-token"}
    rsps.post(
        f"{PROJECT}/agents/A1/update",
        json=JOINED,
        match=[matchers.json_params_matcher({"properties": props}), *auth_and_timeout()],
    )

    assert client.update("A1", props) == Agent("A1", "RUNNING", 1_700_000_000)


def test_a_token_renewal_is_retried_within_its_budget_then_given_up(
    client: ConvoAIClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    props = {"token": "007renewed"}
    body = matchers.json_params_matcher({"properties": props})
    # Each attempt's timeout is cut to what remains of the budget.
    rsps.post(f"{PROJECT}/agents/A1/update", status=503,
              match=[body, *auth_and_timeout((2.0, 2.0))])
    rsps.post(f"{PROJECT}/agents/A1/update", json=JOINED,
              match=[body, *auth_and_timeout(pytest.approx((1.9, 1.9)))])

    assert client.update("A1", props, budget_s=2.0).agent_id == "A1"
    assert fake_time.sleeps == pytest.approx([0.1])
    rsps.post(f"{PROJECT}/agents/A1/update", status=503)
    with pytest.raises(UpstreamError):
        client.update("A1", props, budget_s=0.05)  # the first backoff (0.1 s) overruns it


def test_query_returns_agent_status(client: ConvoAIClient, rsps: responses.RequestsMock) -> None:
    rsps.get(
        f"{PROJECT}/agents/A1",
        json={
            "agent_id": "A1",
            "name": "call-42-agent",
            "status": "FAILED",
            "start_ts": 10,
            "stop_ts": 20,
            "message": "agent exits with reason: RTC connection error",
        },
        match=auth_and_timeout(),
    )

    assert client.query("A1") == AgentStatus(
        agent_id="A1",
        name="call-42-agent",
        status="FAILED",
        start_ts=10,
        stop_ts=20,
        message="agent exits with reason: RTC connection error",
    )


def test_query_is_retried_after_a_timeout(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{PROJECT}/agents/A1", body=requests.exceptions.ReadTimeout())
    rsps.get(f"{PROJECT}/agents/A1", json={"agent_id": "A1", "status": "RUNNING"})

    status = client.query("A1")

    assert (status.status, status.name, status.stop_ts) == ("RUNNING", None, None)


def test_history_returns_contents(client: ConvoAIClient, rsps: responses.RequestsMock) -> None:
    contents = [{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Hi"}]
    rsps.get(
        f"{PROJECT}/agents/A1/history",
        json={"agent_id": "A1", "status": "RUNNING", "start_ts": 5, "contents": contents},
    )

    assert client.history("A1") == History("A1", "RUNNING", 5, tuple(contents))


# -- list / iter / find ----------------------------------------------------------------------


def page(items: list[dict], cursor: str | None, total: int = 3) -> dict:
    meta = {"total": total} if cursor is None else {"cursor": cursor, "total": total}
    return {"data": {"count": len(items), "list": items}, "meta": meta, "status": "ok"}


def item(agent_id: str, status: str = "RUNNING") -> dict:
    return {"agent_id": agent_id, "status": status, "start_ts": 100}


def test_list_agents_encodes_filters_and_state_codes(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(
        f"{PROJECT}/agents",
        json=page([item("A1", "STARTING")], cursor=""),
        match=[
            matchers.query_param_matcher(
                {
                    "channel": "call-42",
                    "state": "1,2,6",
                    "from_time": "100",
                    "to_time": "200",
                    "limit": "10",
                    "cursor": "A0",
                }
            ),
            *auth_and_timeout(),
        ],
    )

    result = client.list_agents(
        channel="call-42",
        states=["STARTING", "running", "FAILED"],
        from_time=100,
        to_time=200,
        limit=10,
        cursor="A0",
    )

    assert result == AgentPage(items=(AgentSummary("A1", "STARTING", 100),), cursor=None, total=3)


def test_list_agents_without_filters_sends_no_query(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{PROJECT}/agents", json={"status": "ok"}, match=[matchers.query_param_matcher({})])

    assert client.list_agents() == AgentPage(items=(), cursor=None, total=None)


@pytest.mark.parametrize("states", [["SLEEPING"], [], ["RUNNING", "2"]])
def test_list_agents_refuses_bad_states_before_sending(
    client: ConvoAIClient, rsps: responses.RequestsMock, states: list[str]
) -> None:
    with pytest.raises(ValueError):
        client.list_agents(states=states)

    assert len(rsps.calls) == 0


def test_iter_agents_follows_cursors_to_the_last_page(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(
        f"{PROJECT}/agents",
        json=page([item("A1"), item("A2")], cursor="A3"),
        match=[matchers.query_param_matcher({"state": "2", "limit": "2"})],
    )
    rsps.get(
        f"{PROJECT}/agents",
        json=page([item("A3")], cursor=None),
        match=[matchers.query_param_matcher({"state": "2", "limit": "2", "cursor": "A3"})],
    )

    ids = [a.agent_id for a in client.iter_agents(states=["RUNNING"], limit=2)]

    assert ids == ["A1", "A2", "A3"]


def test_iter_agents_stops_on_a_repeated_cursor(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{PROJECT}/agents", json=page([item("A1")], cursor="A2"))
    rsps.get(f"{PROJECT}/agents", json=page([item("A2")], cursor="A2"))

    with pytest.raises(UpstreamError, match="cursor repeated"):
        list(client.iter_agents())


def test_find_by_name_queries_live_agents_and_returns_the_match(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(
        f"{PROJECT}/agents",
        json=page([item("A1"), item("A2", "STARTING"), item("A3")], cursor=None),
        match=[
            matchers.query_param_matcher({"state": "1,2", "channel": "call-42", "from_time": "100"})
        ],
    )
    rsps.get(f"{PROJECT}/agents/A1", json={"agent_id": "A1", "name": "other", "status": "RUNNING"})
    rsps.get(f"{PROJECT}/agents/A2", status=404, json={"reason": "TaskNotFound"})  # gone since
    rsps.get(
        f"{PROJECT}/agents/A3",
        json={"agent_id": "A3", "name": "call-42-agent", "status": "RUNNING", "start_ts": 150},
    )

    found = client.find_by_name("call-42-agent", channel="call-42", from_time=100)

    assert found == AgentStatus("A3", "call-42-agent", "RUNNING", 150, None, None)


def test_find_by_name_returns_none_when_nothing_matches(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{PROJECT}/agents", json=page([item("A1")], cursor=None))
    rsps.get(f"{PROJECT}/agents/A1", json={"agent_id": "A1", "name": "other", "status": "RUNNING"})

    assert client.find_by_name("call-42-agent") is None


# -- speak / interrupt -----------------------------------------------------------------------


def test_speak_sends_text_priority_and_interruptable(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    reply = {"agent_id": "A1", "channel": "call-42", "start_ts": 1}
    rsps.post(
        f"{PROJECT}/agents/A1/speak",
        json=reply,
        match=[
            matchers.json_params_matcher(
                {"text": "One moment please.", "priority": "APPEND", "interruptable": False}
            ),
            *auth_and_timeout(),
        ],
    )

    assert client.speak("A1", "One moment please.", priority="APPEND", interruptable=False) == reply


def test_speak_is_not_retried_on_503(
    client: ConvoAIClient, rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    rsps.post(f"{PROJECT}/agents/A1/speak", status=503)

    with pytest.raises(UpstreamError) as caught:
        client.speak("A1", "hello")

    assert caught.value.status == 503
    assert len(rsps.calls) == 1 and fake_time.sleeps == []


def test_speak_is_not_retried_after_a_timeout(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{PROJECT}/agents/A1/speak", body=requests.exceptions.ReadTimeout())

    with pytest.raises(UpstreamUnavailable):
        client.speak("A1", "hello")

    assert len(rsps.calls) == 1


def test_speak_accepts_exactly_512_utf8_bytes(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{PROJECT}/agents/A1/speak", json={})

    client.speak("A1", "é" * 256)  # 2 bytes each


@pytest.mark.parametrize(
    ("text", "priority"),
    [("é" * 257, "INTERRUPT"), ("a" * 513, "INTERRUPT"), ("", "INTERRUPT"), ("hi", "LOUD")],
)
def test_speak_refuses_bad_input_before_sending(
    client: ConvoAIClient, rsps: responses.RequestsMock, text: str, priority: str
) -> None:
    with pytest.raises(ValueError):
        client.speak("A1", text, priority=priority)

    assert len(rsps.calls) == 0


def test_interrupt_posts_an_empty_object_and_is_not_retried(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(
        f"{PROJECT}/agents/A1/interrupt",
        status=504,
        match=[matchers.json_params_matcher({}), *auth_and_timeout()],
    )

    with pytest.raises(UpstreamError):
        client.interrupt("A1")

    assert len(rsps.calls) == 1


# -- error mapping ---------------------------------------------------------------------------


def make_response(status: int, body: bytes, headers: dict[str, str] | None = None):
    resp = requests.Response()
    resp.status_code = status
    resp._content = body
    resp.headers.update(headers or {})
    return resp


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidRequest),
        (401, AuthenticationFailed),
        (403, AuthenticationFailed),
        (404, AgentNotFound),
        (409, TaskConflict),
        (422, LimitExceeded),
        (429, RateLimited),
        (500, UpstreamError),
        (502, UpstreamError),
        (503, UpstreamError),
        (504, UpstreamError),
        (408, UpstreamError),
        (418, UpstreamError),
        (302, UpstreamError),
    ],
)
def test_error_from_response_maps_status_to_class(status: int, cls: type) -> None:
    err = error_from_response(
        make_response(status, b'{"detail": "d", "reason": "ServiceUnavailable"}')
    )

    assert type(err) is cls
    assert (err.status, err.reason, err.detail) == (status, "ServiceUnavailable", "d")


def test_error_from_response_tolerates_a_non_json_body() -> None:
    page_html = b"<html>\n<body>\n502 Bad Gateway\n</body>\n</html>"

    err = error_from_response(make_response(502, page_html))

    assert isinstance(err, UpstreamError) and err.reason is None
    assert str(err) == "ConvoAI 502: <html> <body> 502 Bad Gateway </body> </html>"
    assert "\n" not in str(err)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2", 2.0),
        ("0.5", 0.5),
        (None, None),
        ("soon", None),
        ("-1", None),
        ("nan", None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),
    ],
)
def test_retry_after_is_parsed_as_seconds(header: str | None, expected: float | None) -> None:
    headers = {} if header is None else {"Retry-After": header}

    err = error_from_response(make_response(429, b"", headers))

    assert isinstance(err, RateLimited) and err.retry_after == expected


# -- secrets ---------------------------------------------------------------------------------


def raise_each_error(client: ConvoAIClient, rsps: responses.RequestsMock) -> list[ConvoAIError]:
    rsps.post(f"{PROJECT}/join", status=401, json={"detail": "bad auth", "reason": "Unauth"})
    rsps.post(f"{PROJECT}/join", status=409, json={"detail": "dup", "reason": "TaskConflict"})
    rsps.post(f"{PROJECT}/join", status=429, headers={"Retry-After": "60"})
    rsps.post(f"{PROJECT}/join", status=501, body="not implemented")
    rsps.post(f"{PROJECT}/join", status=200, body="not json")
    rsps.post(f"{PROJECT}/agents/A1/speak", body=requests.exceptions.ConnectTimeout(BASIC))
    errors: list[ConvoAIError] = []
    for _ in range(5):
        with pytest.raises(ConvoAIError) as caught:
            client.join("n", PROPERTIES)
        errors.append(caught.value)
    with pytest.raises(ConvoAIError) as caught:
        client.speak("A1", "hello")
    errors.append(caught.value)
    return errors


def test_errors_never_show_the_credentials(
    client: ConvoAIClient, rsps: responses.RequestsMock
) -> None:
    errors = raise_each_error(client, rsps)

    assert [type(e) for e in errors] == [
        AuthenticationFailed,
        TaskConflict,
        RateLimited,
        UpstreamError,
        UpstreamError,
        UpstreamUnavailable,
    ]
    for err in errors:
        shown = f"{err} {err!r} {err.args!r}"
        assert SECRET not in shown and SECRET_B64 not in shown and PROVIDER_KEY not in shown
    # The credentials really were sent, so the checks above could have failed.
    assert rsps.calls[0].request.headers["Authorization"] == BASIC


def test_logs_carry_no_credentials_or_bodies(
    client: ConvoAIClient, rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="convoai")
    rsps.post(f"{PROJECT}/join", status=503)
    rsps.post(f"{PROJECT}/join", json=JOINED)

    client.join("n", PROPERTIES)

    events = [(r.getMessage(), r.levelname) for r in caplog.records]
    assert events == [
        ("convoai.request", "INFO"),
        ("convoai.retry", "WARNING"),
        ("convoai.request", "INFO"),
    ]
    first = caplog.records[0]
    assert (first.method, first.path, first.status, first.attempt) == ("POST", "/join", 503, 1)
    for record in caplog.records:
        dumped = repr(record.__dict__)
        assert SECRET not in dumped and SECRET_B64 not in dumped and PROVIDER_KEY not in dumped


# -- session lifecycle -----------------------------------------------------------------------


def test_context_manager_closes_the_session_it_created(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[bool] = []
    monkeypatch.setattr(requests.Session, "close", lambda self: closed.append(True))

    with ConvoAIClient(BASE_URL, APP_ID, CUSTOMER_ID, SECRET):
        pass

    assert closed == [True]


def test_a_session_passed_in_gets_auth_but_stays_open(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[bool] = []
    monkeypatch.setattr(requests.Session, "close", lambda self: closed.append(True))
    session = requests.Session()

    with ConvoAIClient(BASE_URL, APP_ID, CUSTOMER_ID, SECRET, session=session):
        pass

    assert closed == []
    assert session.auth is not None
    assert (session.auth.username, session.auth.password) == (CUSTOMER_ID, SECRET)


def test_no_retry_policy_makes_one_attempt(
    rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    rsps.post(f"{PROJECT}/join", status=503)
    convoai = ConvoAIClient(
        BASE_URL,
        APP_ID,
        CUSTOMER_ID,
        SECRET,
        retry=RetryPolicy(max_attempts=1),
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )

    with pytest.raises(UpstreamError):
        convoai.join("n", PROPERTIES)

    assert len(rsps.calls) == 1


@pytest.mark.parametrize(
    "args",
    [
        ("", APP_ID, CUSTOMER_ID, SECRET),
        (BASE_URL, "", CUSTOMER_ID, SECRET),
        (BASE_URL, APP_ID, "", SECRET),
        (BASE_URL, APP_ID, CUSTOMER_ID, ""),
    ],
)
def test_missing_settings_are_refused_without_echoing_the_secret(args: tuple) -> None:
    with pytest.raises(ValueError) as caught:
        ConvoAIClient(*args)

    assert SECRET not in str(caught.value)


def test_each_attempt_is_cut_to_what_remains_of_the_budget():
    """A join inside a webhook must not outlast NCS's 10 s: the read timeout shrinks as the
    budget is spent."""
    import requests as _requests

    from convoai.client import ConvoAIClient as _Client

    now = [0.0]
    seen = []

    class RecordingSession(_requests.Session):
        def request(self, method, url, **kwargs):
            seen.append(kwargs["timeout"])
            now[0] += 3.0  # each attempt times out after 3 s
            raise _requests.exceptions.ReadTimeout("slow")

    client = _Client("https://convoai.test", "app", "cid", "secret", session=RecordingSession(),
                     timeout=(3.05, 5.0), clock=lambda: now[0], sleep=lambda s: None,
                     rand=lambda: 0.0)
    with pytest.raises(UpstreamUnavailable):
        client.join("n", {"channel": "c"}, budget_s=7.0)
    # 3 s spent of 7, then 6 s: the last attempt gets the one second that is left.
    assert seen == [(3.05, 5.0), (3.05, 4.0), (1.0, 1.0)]
