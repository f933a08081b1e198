"""ConvoAIClient.join's ``on_wire`` against a real HTTP server on loopback: it runs once, after
the join is sent and before its answer is read (convoai/wire.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import responses

from convoai.client import ConvoAIClient
from convoai.errors import UpstreamUnavailable
from convoai.retry import NO_RETRY, RetryPolicy
from tests.integration.harness import free_port

APP_ID = "0123456789abcdef0123456789abcdef"
JOINED = {"agent_id": "A1", "create_ts": 1_700_000_000, "status": "RUNNING"}
PROPERTIES = {"channel": "call-42", "token": "007-token"}


class Upstream(ThreadingHTTPServer):
    """Answers a join only once the client's ``on_wire`` has run (or after ``patience_s``,
    with 500): a client that waited for the answer before running it would get the 500."""

    daemon_threads = True
    patience_s = 5.0

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fired = threading.Event()
        self.fired_before_answer: list[bool] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a second request reuses the connection
    server: Upstream

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers["Content-Length"]))
        fired = self.server.fired.wait(self.server.patience_s)
        self.server.fired_before_answer.append(fired)
        self._answer(200 if fired else 500, JOINED)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(200, {"agent_id": "A0", "status": "RUNNING"})

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def client_for(url: str, **kwargs: object) -> ConvoAIClient:
    return ConvoAIClient(url, APP_ID, "cust-id", "cust-secret", timeout=(2, 10), **kwargs)


def counting(event: threading.Event) -> tuple[list[int], object]:
    calls = [0]

    def on_wire() -> None:
        calls[0] += 1
        event.set()

    return calls, on_wire


@pytest.mark.parametrize("connection", ["new", "kept alive"])
def test_on_wire_runs_once_before_the_answer_is_awaited(upstream, connection):
    client = client_for(upstream.url, retry=NO_RETRY)
    if connection == "kept alive":
        client.query("A0")  # the join then goes out on this connection: fired after sending
    calls, on_wire = counting(upstream.fired)
    agent = client.join("phoneagent-1", PROPERTIES, on_wire=on_wire)
    assert agent.agent_id == "A1"
    assert upstream.fired_before_answer == [True]
    assert calls == [1]


def test_on_wire_runs_before_a_failed_first_attempt_is_retried():
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    fired = threading.Event()
    calls, on_wire = counting(fired)
    fired_before_each_wait: list[bool] = []
    client = client_for(nowhere, retry=RetryPolicy(max_attempts=3, base_delay_s=0.01),
                        sleep=lambda _s: fired_before_each_wait.append(fired.is_set()))
    with pytest.raises(UpstreamUnavailable):
        client.join("phoneagent-1", PROPERTIES, on_wire=on_wire)
    # The caller's lock (the store's) is never held while a retry waits.
    assert fired_before_each_wait == [True, True]
    assert calls == [1]


@responses.activate
def test_a_session_the_client_does_not_own_runs_on_wire_before_the_request():
    order: list[str] = []
    responses.add_callback(
        responses.POST, f"https://convoai.test/v2/projects/{APP_ID}/join",
        callback=lambda _request: (order.append("request"), (200, {}, json.dumps(JOINED)))[1])
    client = client_for("https://convoai.test", session=requests.Session())
    client.join("phoneagent-1", PROPERTIES, on_wire=lambda: order.append("on_wire"))
    assert order == ["on_wire", "request"]


def test_without_on_wire_nothing_is_pending_for_the_next_request(upstream):
    client = client_for(upstream.url, retry=NO_RETRY)
    fired = threading.Event()
    calls, on_wire = counting(fired)
    upstream.fired.set()  # answer at once
    client.join("phoneagent-1", PROPERTIES, on_wire=on_wire)
    client.join("phoneagent-2", PROPERTIES)
    client.query("A1")
    assert calls == [1]
