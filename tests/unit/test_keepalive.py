"""keepalive.py: a body refused unread is drained before the answer, or the answer says the
connection closes; and gunicorn.conf.py closes what is too large to drain."""

from __future__ import annotations

import io
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask
from werkzeug.test import Client
from werkzeug.wrappers import Response

from factory.app import MAX_BODY_BYTES
from web.keepalive import DRAIN_LIMIT_BYTES, DrainUnreadBody

ROOT = Path(__file__).resolve().parents[2]
#: What gunicorn promises: wsgi.input ends where the body ends.
GUNICORN = {"wsgi.input_terminated": True}


def post(app: Flask, path: str, body: io.BytesIO, *, length: int | None = None,
         environ: dict | None = None) -> Response:
    """POST ``body``, declared as ``length`` bytes (default: its size)."""
    overrides = dict(GUNICORN if environ is None else environ)
    if length is not None:
        overrides["CONTENT_LENGTH"] = str(length)  # werkzeug would measure the stream
    return app.test_client().post(path, input_stream=body, content_type="application/json",
                                  environ_overrides=overrides)


def test_an_oversized_body_is_read_before_its_413_so_the_connection_stays_usable(app):
    body = io.BytesIO(b"x" * (2 * 1024 * 1024))
    answer = post(app, "/webhook", body)
    assert answer.status_code == 413
    assert body.tell() == len(body.getvalue())
    assert "Connection" not in answer.headers


@pytest.mark.parametrize(("path", "status"), [
    ("/no/such/path", 404),
    ("/healthz", 405),
    ("/api/calls", 401),  # the token is refused before the body is read
])
def test_other_refusals_before_the_body_is_read_drain_it_too(app, path, status):
    body = io.BytesIO(b"y" * (MAX_BODY_BYTES - 1))
    answer = post(app, path, body)
    assert answer.status_code == status
    assert body.tell() == len(body.getvalue())
    assert "Connection" not in answer.headers


def test_a_body_too_large_to_drain_is_left_unread_and_the_413_says_connection_close(app):
    body = io.BytesIO(b"z" * 1024)
    answer = post(app, "/webhook", body, length=DRAIN_LIMIT_BYTES + 1)
    assert answer.status_code == 413
    assert answer.headers["Connection"] == "close"
    assert body.tell() == 0


def test_a_server_that_does_not_end_the_stream_at_the_body_is_left_to_frame_it(app):
    # Reading on could wait for the client's next request (Werkzeug's development server for
    # a Content-Length body; it closes every connection itself).
    body = io.BytesIO(b"x" * (2 * 1024 * 1024))
    answer = post(app, "/webhook", body, environ={})
    assert answer.status_code == 413
    assert body.tell() == 0
    assert "Connection" not in answer.headers


def never_reads(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("401 UNAUTHORIZED", [("Connection", "keep-alive")])
    return [b"no"]


@pytest.mark.parametrize(("size", "closes"), [(10, False), (200, True)])
def test_a_chunked_body_is_drained_up_to_the_limit_and_beyond_it_the_connection_closes(
        size, closes):
    client = Client(DrainUnreadBody(never_reads, limit=100))
    body = io.BytesIO(b"c" * size)
    answer = client.post("/", input_stream=body, headers={"Transfer-Encoding": "chunked"},
                         environ_overrides=GUNICORN)
    assert answer.headers.getlist("Connection") == (["close"] if closes else ["keep-alive"])
    assert body.tell() == (101 if closes else size)  # past the limit, it stops reading


def test_a_request_without_a_body_reads_nothing():
    class Unreadable(io.BytesIO):
        def read(self, *args):  # type: ignore[no-untyped-def]
            raise AssertionError("read a request that has no body")

    answer = Client(DrainUnreadBody(never_reads)).get(
        "/", input_stream=Unreadable(), environ_overrides=GUNICORN)
    assert answer.headers["Connection"] == "keep-alive"


@pytest.mark.parametrize(("length", "closes"), [
    (None, False), ("0", False), (str(DRAIN_LIMIT_BYTES), False),
    (str(DRAIN_LIMIT_BYTES + 1), True), ("not a number", True),
])
def test_gunicorn_closes_the_connection_of_a_body_too_large_to_drain(length, closes):
    hooks = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    closed = []
    headers = [("HOST", "x")] + ([("CONTENT-LENGTH", length)] if length is not None else [])
    hooks["pre_request"](None, SimpleNamespace(headers=headers,
                                               force_close=lambda: closed.append(True)))
    assert bool(closed) is closes


class _StalledSocket:
    """What gunicorn.socket offers the drain: a timeout, and a shutdown."""

    def __init__(self) -> None:
        self.timeout: float | None = None
        self.shut: list[int] = []

    def gettimeout(self) -> float | None:
        return self.timeout

    def settimeout(self, value: float | None) -> None:
        self.timeout = value

    def shutdown(self, how: int) -> None:
        self.shut.append(how)


class _StalledBody:
    """A body announced and never sent: a read waits for the socket's timeout, then fails."""

    def __init__(self, sock: _StalledSocket) -> None:
        self.sock = sock

    def read(self, size: int) -> bytes:
        assert self.sock.timeout is not None, "the drain read with no time limit"
        raise TimeoutError("timed out")


def test_a_body_that_never_comes_is_waited_for_a_bounded_time_then_the_connection_ends():
    import socket

    sock = _StalledSocket()
    started: list[list[tuple[str, str]]] = []
    middleware = DrainUnreadBody(lambda environ, start: (start("413 X", []), [b""])[1],
                                 timeout_s=0.5)
    environ = {"CONTENT_LENGTH": "300000", "wsgi.input_terminated": True,
               "wsgi.input": _StalledBody(sock), "gunicorn.socket": sock}
    middleware(environ, lambda status, headers, exc_info=None: started.append(headers))
    assert ("Connection", "close") in started[0]
    assert sock.shut == [socket.SHUT_RD]
    assert sock.timeout is None  # put back as it was
