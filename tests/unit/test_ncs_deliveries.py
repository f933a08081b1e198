"""POST /webhook: which deliveries count as copies of one already processed, and which are too
old (or too far ahead) to act on at all."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask

from ncs.freshness import MAX_AHEAD_S, ReplayWindow, max_age_s
from observability import metrics
from tests.fakes import FakeClock, FakeConvoAI

SignedPost = Callable[..., tuple[bytes, dict[str, str]]]
#: Agora's noticeId shape, the same for RTC and ConvoAI events.
SHARED_ID = "2000001428:4330:107"


@pytest.fixture
def app(app: Flask) -> Flask:
    """The shared app, its ConvoAI faked."""
    app.extensions["calls"].convoai = FakeConvoAI()
    return app


@pytest.fixture
def window_clock(app: Flask, clock: FakeClock) -> FakeClock:
    """The clock the webhook dates deliveries by (the store's, in the app)."""
    app.extensions["ncs_replay_window"].clock = clock
    return clock


@pytest.fixture
def post(app: Flask, signed_post: SignedPost) -> Callable[..., dict]:
    client = app.test_client()

    def deliver(*args: object, **kwargs: object) -> dict:
        body, headers = signed_post(*args, **kwargs)
        answer = client.post("/webhook", data=body, headers=headers)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.get_json()

    return deliver


def caller_join(post: Callable[..., dict], notice_id: str, channel: str = "dedupe_ch") -> dict:
    return post(1, 103, notice_id=notice_id, channelName=channel, uid=111, clientSeq=1)


def agent_joined(post: Callable[..., dict], notice_id: str, call_id: str) -> dict:
    return post(17, 101, notice_id=notice_id, agent_id="agent-1", name=f"phoneagent-{call_id}",
                channel="dedupe_ch", labels={"service": "phoneagent", "call_id": call_id})


def test_a_convoai_event_with_a_caller_joins_notice_id_is_processed(
        app: Flask, post: Callable[..., dict]) -> None:
    join = caller_join(post, SHARED_ID)
    assert join["outcome"] == "call_started"
    assert agent_joined(post, SHARED_ID, join["call_id"]) == {"status": "ok",
                                                               "outcome": "recorded"}
    kinds = [e["kind"] for e in app.extensions["store"].timeline(join["call_id"])]
    assert "agent_joined" in kinds
    # Each is still a copy of itself.
    assert caller_join(post, SHARED_ID)["outcome"] == "duplicate_notice"
    assert agent_joined(post, SHARED_ID, join["call_id"])["outcome"] == "duplicate_notice"


def test_a_caller_join_with_a_convoai_events_notice_id_starts_its_call(
        app: Flask, post: Callable[..., dict]) -> None:
    first = caller_join(post, "first-call", channel="earlier_ch")
    assert agent_joined(post, SHARED_ID, first["call_id"])["outcome"] == "recorded"
    join = caller_join(post, SHARED_ID)
    assert join["outcome"] == "call_started"
    assert app.extensions["calls"].convoai.count("join") == 2


# -- deliveries dated outside the window the notices table covers -----------------------------

MINUTE_MS, DAY_MS = 60_000, 86_400_000


def webhooks_counted(outcome: str) -> float:
    return metrics.REGISTRY.get_sample_value("phone_agent_webhooks_total", {
        "product": "1", "event": "103", "outcome": outcome}) or 0.0


@pytest.mark.parametrize("offset_ms", [-3 * DAY_MS, 10 * MINUTE_MS],
                         ids=["three-days-old", "ten-minutes-ahead"])
def test_a_signed_join_dated_outside_the_window_starts_nothing_and_records_nothing(
        app: Flask, post: Callable[..., dict], window_clock: FakeClock, offset_ms: int,
        caplog: pytest.LogCaptureFixture) -> None:
    now_ms = int(window_clock() * 1000)
    before = webhooks_counted("stale_delivery")
    with caplog.at_level(logging.INFO, logger="ncs.views"):
        answer = post(1, 103, notice_id="replayed", notify_ms=now_ms + offset_ms,
                      channelName="replay_ch", uid=111, clientSeq=1)
    assert answer == {"status": "ignored", "reason": "stale_delivery"}
    assert app.extensions["calls"].convoai.count("join") == 0
    assert app.extensions["store"].calls_in_channel("replay_ch") == []
    assert webhooks_counted("stale_delivery") == before + 1
    [logged] = [r for r in caplog.records if r.getMessage() == "ncs.stale_delivery"]
    assert (logged.notice_id, logged.age_s) == ("replayed", -offset_ms / 1000)
    # Its notice was not recorded: the same delivery dated now is processed.
    assert post(1, 103, notice_id="replayed", notify_ms=now_ms, channelName="replay_ch",
                uid=111, clientSeq=1)["outcome"] == "call_started"


def test_a_signed_join_a_minute_old_starts_its_call(
        app: Flask, post: Callable[..., dict], window_clock: FakeClock) -> None:
    answer = post(1, 103, notify_ms=int(window_clock() * 1000) - MINUTE_MS,
                  channelName="fresh_ch", uid=111, clientSeq=1)
    assert answer["outcome"] == "call_started"
    assert app.extensions["calls"].convoai.count("join") == 1


def test_a_delivery_without_notify_ms_is_judged_as_before(
        app: Flask, window_clock: FakeClock) -> None:
    import json

    from ncs.signature import sign
    from sandbox.defaults import SANDBOX_NCS_SECRET

    body = json.dumps({"noticeId": "undated", "productId": 1, "eventType": 103, "payload": {
        "channelName": "undated_ch", "uid": 111, "clientSeq": 1}}).encode()
    answer = app.test_client().post("/webhook", data=body, headers={
        "Content-Type": "application/json", **sign(SANDBOX_NCS_SECRET, body)})
    assert answer.get_json()["outcome"] == "call_started"


def test_the_date_is_judged_after_the_signature_and_before_the_store(
        app: Flask, signed_post: SignedPost, window_clock: FakeClock) -> None:
    old = int(window_clock() * 1000) - 3 * DAY_MS
    client = app.test_client()
    forged, headers = signed_post(1, 103, secret="not-our-secret", notify_ms=old)
    assert client.post("/webhook", data=forged, headers=headers).status_code == 401

    class Untouchable:
        def __getattr__(self, name: str) -> None:
            raise AssertionError(f"a stale delivery reached the call service ({name})")

    app.extensions["calls"] = Untouchable()
    body, headers = signed_post(1, 103, notify_ms=old, channelName="ch", uid=111, clientSeq=1)
    assert client.post("/webhook", data=body, headers=headers).get_json() == {
        "status": "ignored", "reason": "stale_delivery"}


@pytest.mark.parametrize(("hours", "max_age_h"), [(48, 47), (2, 1), (1, 0.5)])
def test_the_oldest_accepted_delivery_is_younger_than_the_retention(
        hours: int, max_age_h: float) -> None:
    assert max_age_s(hours * 3600) == max_age_h * 3600


@pytest.mark.parametrize(("age_s", "stale"), [
    (47 * 3600, False), (47 * 3600 + 1, True), (0, False), (-MAX_AHEAD_S, False),
    (-MAX_AHEAD_S - 1, True)])
def test_the_window_edges(age_s: float, stale: bool) -> None:
    window = ReplayWindow(48 * 3600, clock=FakeClock(1_800_000_000.0))
    notify_ms = int((1_800_000_000.0 - age_s) * 1000)
    assert (window.stale_age_s(notify_ms) is not None) is stale


def test_an_absurd_notify_ms_is_stale_not_an_error() -> None:
    window = ReplayWindow(48 * 3600, clock=FakeClock(1_800_000_000.0))
    assert window.stale_age_s(10**400) < 0 < window.stale_age_s(-(10**400))
    assert window.stale_age_s(None) is None


def test_convoai_call_states_reach_their_call_through_the_webhook_once(
        app: Flask, post: Callable[..., dict]) -> None:
    call = app.extensions["sip"].outbound_call(to="+12025550140", caller_id="+12025550199",
                                               persona=None, variables={})

    def state(value: str, notice_id: str) -> dict:
        return post(17, 202, notice_id=notice_id, agent_id="agent-9", name=call.agent_name,
                    channel=call.channel, state=value, report_ms=1_700_000_000_000,
                    labels={"service": "phoneagent", "call_id": call.id})

    assert state("RINGING", "n-ring")["outcome"] == "recorded"
    assert state("RINGING", "n-ring")["outcome"] == "duplicate_notice"
    assert state("HANGUP", "n-hang")["outcome"] == "call_ended"
    record = app.extensions["store"].get_call(call.id)
    assert record.end_reason == "outbound_no_answer"
