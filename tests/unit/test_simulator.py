"""The simulator never leaves a call open: it checks what it needs before the first event, and
once the caller's join is sent, it sends the leave whatever happens next."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import responses
from flask import Flask

from config import Settings
from factory.app import create_app
from sandbox import simulator
from sandbox.defaults import SANDBOX_NCS_SECRET
from sandbox.simulator import Refused, SimulationError, Target, simulate_call, simulate_storm
from tests.fakes import FakeConvoAI

SERVICE_URL = "http://service.test"
ADMIN_TOKEN = "service-admin-token"


class Wire:
    """The network between the simulator and the service: every request (recorded by
    ``responses``) is answered by the Flask app's test client."""

    def __init__(self, app: Flask, mock: responses.RequestsMock) -> None:
        self.app, self.mock = app, mock
        for method in (responses.GET, responses.POST):
            mock.add_callback(method, re.compile(re.escape(SERVICE_URL) + "/.*"), self.answer)

    def answer(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(request.url or "")
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("content-length", "host")}
        answer = self.app.test_client().open(url.path, query_string=url.query, headers=headers,
                                             method=request.method, data=request.body)
        return answer.status_code, {"Content-Type": answer.content_type}, answer.get_data()

    @property
    def sent(self) -> list[tuple[str, str]]:
        return [(call.request.method or "", urlsplit(call.request.url or "").path)
                for call in self.mock.calls]

    def events(self) -> list[int]:
        return [json.loads(call.request.body)["eventType"] for call in self.mock.calls
                if urlsplit(call.request.url or "").path == "/webhook"]


@pytest.fixture
def service(tmp_path) -> Flask:
    """The service, with ADMIN_TOKEN set, starting agents on a fake ConvoAI."""
    app = create_app(Settings.for_tests(database_url=f"sqlite:///{tmp_path / 'app.db'}",
                                        admin_token=ADMIN_TOKEN, log_level="WARNING",
                                        agent_start_mode="inline"))
    app.extensions["calls"].convoai = FakeConvoAI()
    return app


@pytest.fixture
def wire(service) -> Iterator[Wire]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield Wire(service, mock)


def target(**changes: Any) -> Target:
    values: dict[str, Any] = {"url": SERVICE_URL, "ncs_secret": SANDBOX_NCS_SECRET,
                              "admin_token": ADMIN_TOKEN}
    values.update(changes)
    return Target(**values)


def calls_in(service: Flask) -> list[Any]:
    return service.extensions["store"].list_calls(limit=10)


def test_a_call_against_the_service_checks_first_then_joins_and_leaves(service, wire):
    report = simulate_call(target(), duration_s=0, wait_s=5)
    assert report.ok, report.problems
    assert wire.sent[0] == ("GET", "/api/calls")
    assert wire.events() == [simulator.CHANNEL_CREATED, simulator.JOIN, simulator.LEAVE]
    assert [c.state for c in calls_in(service)] == ["ended"]


@pytest.mark.parametrize(("token", "sent"), [
    ("", []),  # nothing to ask with: refused before any request
    ("not-the-service-token", [("GET", "/api/calls")]),
])
def test_a_missing_or_wrong_admin_token_stops_the_simulator_before_any_event(
        service, wire, token, sent):
    with pytest.raises(Refused, match="admin token") as refused:
        simulate_call(target(admin_token=token), duration_s=0)
    assert "Nothing was sent" in str(refused.value)
    assert wire.sent == sent
    assert calls_in(service) == []
    assert not service.extensions["calls"].convoai.running()


def test_the_wrong_ncs_secret_is_found_before_the_callers_join(service, wire):
    with pytest.raises(Refused, match="refused the NCS signature"):
        simulate_call(target(ncs_secret="not-the-secret"), duration_s=0)
    assert wire.events() == [simulator.CHANNEL_CREATED]  # signed, and ignored by the service
    assert calls_in(service) == []


@pytest.mark.parametrize("interruption", [
    KeyboardInterrupt(), SimulationError("the service refused the admin token"),
    RuntimeError("a bug in the simulator"),
])
def test_interrupted_after_the_join_the_simulator_still_sends_the_leave(
        service, wire, monkeypatch, interruption):
    def interrupted(*_: Any, **__: Any) -> None:
        raise interruption

    monkeypatch.setattr(simulator, "_wait_for", interrupted)  # what follows the join
    with pytest.raises(type(interruption)):
        simulate_call(target(), duration_s=0)
    assert wire.events() == [simulator.CHANNEL_CREATED, simulator.JOIN, simulator.LEAVE]
    assert [c.state for c in calls_in(service)] == ["ended"]
    assert not service.extensions["calls"].convoai.running()


def test_a_leave_that_cannot_be_sent_is_reported_without_hiding_the_interruption(
        service, wire, monkeypatch):
    def service_gone(*_: Any, **__: Any) -> None:
        def unreachable(*_: Any, **__: Any) -> None:
            raise SimulationError("cannot reach http://service.test: ConnectionError")

        monkeypatch.setattr(Target, "webhook", unreachable)
        raise KeyboardInterrupt

    monkeypatch.setattr(simulator, "_wait_for", service_gone)
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        simulate_call(target(), duration_s=0, echo=lines.append)
    assert "the leave could not be sent: cannot reach" in lines[-1]


def test_an_interrupted_storm_starts_no_more_calls_and_hangs_up_those_in_progress(
        service, wire, monkeypatch):
    two_joined = threading.Event()
    joins = []
    real_webhook = Target.webhook

    def webhook(self, event_type, *args, **kwargs):  # type: ignore[no-untyped-def]
        response = real_webhook(self, event_type, *args, **kwargs)
        if event_type == simulator.JOIN:
            joins.append(args[0])
            if len(joins) == 2:
                two_joined.set()
        return response

    class InterruptedPool(simulator.ThreadPoolExecutor):
        """Interrupts its caller (as Ctrl-C would) once two calls are in progress."""

        def map(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().map(*args, **kwargs)
            assert two_joined.wait(10)
            raise KeyboardInterrupt

    monkeypatch.setattr(Target, "webhook", webhook)
    monkeypatch.setattr(simulator, "ThreadPoolExecutor", InterruptedPool)
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        simulate_storm(target(), calls=10, concurrency=2, duration_s=30)
    assert time.monotonic() - began < 30  # hung up at once, not after their 30 s on the line
    events = wire.events()
    assert events.count(simulator.JOIN) == events.count(simulator.LEAVE) == 2
    assert [c.state for c in calls_in(service)] == ["ended", "ended"]
    assert not service.extensions["calls"].convoai.running()


@responses.activate
def test_the_command_exits_1_in_one_line_when_the_admin_token_is_refused(service):
    responses.get(f"{SERVICE_URL}/api/calls", status=401, json={
        "error": "unauthorized", "message": "missing or wrong bearer token"})
    result = service.test_cli_runner().invoke(args=[
        "simulate", "call", "--url", SERVICE_URL, "--token", "wrong", "--no-sandbox"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "simulate: the service refused the admin token (missing or wrong bearer token): set "
        "ADMIN_TOKEN (or --token) to the service's. Nothing was sent.\n")
    assert len(responses.calls) == 1  # no webhook
