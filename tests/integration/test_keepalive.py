"""Issue 21 item 5 from outside: a proxy that reuses its connection to the service must not lose
the request it sends after one the service refused without reading the body. One raw connection
to gunicorn; nothing inside the service is patched."""

from __future__ import annotations

import http.client
import json
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from ncs.signature import sign
from tests.integration.conftest import SECRETS
from tests.integration.harness import wait_until
from web.keepalive import DRAIN_LIMIT_BYTES

pytestmark = pytest.mark.integration


def signed_join(channel: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"noticeId": uuid.uuid4().hex, "productId": 1, "eventType": 103,
                       "notifyMs": int(time.time() * 1000), "sid": uuid.uuid4().hex,
                       "payload": {"channelName": channel, "uid": 111, "platform": 6,
                                   "clientSeq": 1, "ts": int(time.time())}}).encode()
    return body, {"Content-Type": "application/json", **sign(SECRETS["ncs_secret"], body)}


def port(stack) -> int:
    return int(stack.service.url.rsplit(":", 1)[1])


@pytest.fixture
def conn(fresh) -> Iterator[http.client.HTTPConnection]:
    """One connection to the service, as a proxy keeps it."""
    connection = http.client.HTTPConnection("127.0.0.1", port(fresh), timeout=15)
    yield connection
    connection.close()


@pytest.mark.parametrize(("path", "size", "status"), [
    ("/webhook", 2 * 1024 * 1024, 413),  # over MAX_CONTENT_LENGTH: refused unread
    ("/no/such/path", 200 * 1024, 404),  # refused before any view could read it
])
def test_a_valid_join_after_a_refused_body_on_the_same_connection_starts_its_agent(
        fresh, conn, path, size, status):
    conn.request("POST", path, body=b"x" * size, headers={"Content-Type": "application/json"})
    refused = conn.getresponse()
    refused.read()
    assert refused.status == status
    assert refused.getheader("Connection") == "keep-alive"
    sock = conn.sock

    channel = fresh.channel("keepalive")
    body, headers = signed_join(channel)
    conn.request("POST", "/webhook", body=body, headers=headers)
    answer = conn.getresponse()
    assert conn.sock is sock  # the same connection, not a silent reconnect
    assert answer.status == 200 and json.loads(answer.read())["outcome"] == "call_started"
    wait_until(lambda: fresh.sandbox.agents(channel), message="the join's agent")


def test_a_body_too_large_to_drain_is_answered_with_connection_close_and_closed(fresh):
    with socket.create_connection(("127.0.0.1", port(fresh)), timeout=15) as sock:
        # Declares more than the service drains and sends only a little of it: the answer
        # comes without waiting for the rest, says the connection closes, and it does.
        sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (DRAIN_LIMIT_BYTES + 1) + b"x" * 1024)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head = received.split(b"\r\n\r\n", 1)[0].decode().lower().split("\r\n")
    assert head[0].startswith("http/1.1 413")
    assert "connection: close" in head
