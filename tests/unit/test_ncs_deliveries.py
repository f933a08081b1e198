"""POST /webhook: which deliveries count as copies of one already processed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from app import create_app
from config import Settings
from tests.fakes import FakeConvoAI

SignedPost = Callable[..., tuple[bytes, dict[str, str]]]
#: Agora's noticeId shape, the same for RTC and ConvoAI events.
SHARED_ID = "2000001428:4330:107"


@pytest.fixture
def app(settings: Settings) -> Flask:
    app = create_app(settings)
    app.extensions["calls"].convoai = FakeConvoAI()
    return app


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
