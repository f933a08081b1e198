"""A load generator light enough not to be the bottleneck on a small machine.

Requests are signed and serialised to bytes before the clock starts; during the run each
connection is a thread that writes pre-built bytes to a raw keep-alive socket and reads the
answer (status line, Content-Length, body), so a request costs the client some tens of
microseconds. Connections are spread over several client processes (fork), so no one
interpreter lock serialises them.

A *stream* is a list of :class:`Send`: sent one after another on one connection, each after the
previous one's answer, at the earliest at its ``at`` offset from the common start.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import queue
import signal
import socket
import threading
import time
from dataclasses import dataclass, field

from bench.common import BenchError, signed_headers

RECV_TIMEOUT_S = 15.0
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Send:
    key: int  # the caller's index for this delivery
    data: bytes  # the whole HTTP request
    at: float = 0.0  # earliest send time, seconds after the common start


@dataclass
class Result:
    key: int
    status: int  # 0: no answer (connection error or timeout)
    t_send: float  # CLOCK_MONOTONIC just before the request's first byte is written
    t_answer: float  # CLOCK_MONOTONIC once the whole answer has been read
    body: bytes = b""
    error: str = ""


@dataclass
class RunResult:
    results: dict[int, Result] = field(default_factory=dict)
    t_start: float = 0.0
    client_cpu_s: float = 0.0  # user + system CPU of all client processes


def http_post(host: str, port: int, path: str, body: bytes, *, close: bool = False) -> bytes:
    """A signed NCS webhook POST as bytes."""
    headers = {"Host": f"{host}:{port}", "Content-Length": str(len(body)),
               **signed_headers(body)}
    if close:
        headers["Connection"] = "close"
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + body


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.addr = (host, port)
        self.sock: socket.socket | None = None
        self.buf = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.addr, timeout=RECV_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, data: bytes) -> tuple[int, bytes, float]:
        """Send ``data``; return (status, body, t_send). A kept-alive connection the server
        closed meanwhile is reopened once, before anything of the answer was read."""
        for attempt in (0, 1):
            fresh = self.sock is None
            if fresh:
                self.sock = self._connect()
            t_send = time.monotonic()
            try:
                self.sock.sendall(data)
                return (*self._read_answer(), t_send)
            except (ConnectionError, _Closed):
                self.close()
                if fresh or attempt:
                    raise
        raise AssertionError("unreachable")

    def _read_answer(self) -> tuple[int, bytes]:
        assert self.sock is not None
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        if close:
            self.close()
        return status, body

    def _fill(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Closed()
        self.buf += chunk


class _Closed(Exception):
    """The server closed the connection before answering."""


def _run_stream(host: str, port: int, stream: list[Send], t_start: float, deadline: float,
                out: list[Result]) -> None:
    conn = Connection(host, port)
    try:
        for send in stream:
            if time.monotonic() > deadline:
                break
            wait = t_start + send.at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                status, body, t_send = conn.request(send.data)
                out.append(Result(send.key, status, t_send, time.monotonic(), body[:200]))
            except (OSError, _Closed, ValueError, IndexError) as exc:
                now = time.monotonic()
                out.append(Result(send.key, 0, now, now, error=f"{type(exc).__name__}: {exc}"))
                conn.close()
    finally:
        conn.close()


def _client(host: str, port: int, streams: list[list[Send]], ready: mp.Event, go: mp.Event,
            start_at: mp.Value, timeout_s: float, results: mp.Queue) -> None:
    """One client process: a thread per stream, all released together."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: just go
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    out: list[Result] = []
    ready.set()
    go.wait(timeout_s)
    t_start = start_at.value
    deadline = t_start + timeout_s
    threads = [threading.Thread(target=_run_stream, args=(host, port, s, t_start, deadline, out),
                                daemon=True) for s in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline + 1 - time.monotonic()))
    cpu = os.times()
    results.put((list(out), cpu.user + cpu.system))


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def run(host: str, port: int, streams: list[list[Send]], *, processes: int,
        timeout_s: float) -> RunResult:
    """Send every stream, spread round-robin over ``processes`` client processes, all starting
    at the same moment; return each delivery's result by key."""
    ctx = mp.get_context("fork")
    go, start_at, results = ctx.Event(), ctx.Value("d", 0.0), ctx.Queue()
    shares = [streams[i::processes] for i in range(processes)]
    shares = [s for s in shares if s]
    readies = [ctx.Event() for _ in shares]
    procs = [ctx.Process(target=_client, args=(host, port, share, ready, go, start_at,
                                              timeout_s, results), daemon=True)
             for share, ready in zip(shares, readies, strict=True)]
    out = RunResult()
    try:
        for proc in procs:
            proc.start()
        for ready in readies:
            if not ready.wait(30):
                raise BenchError("a client process did not start within 30 s")
        # A little ahead, so every process is waiting on `go` when the start passes.
        out.t_start = time.monotonic() + 0.05
        start_at.value = out.t_start
        go.set()
        deadline = out.t_start + timeout_s + 10
        for _ in procs:
            try:
                part, cpu = results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchError(f"the clients did not finish within {timeout_s:.0f} s") \
                    from None
            out.client_cpu_s += cpu
            for res in part:
                out.results[res.key] = res
        for proc in procs:
            proc.join(5)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5)
    return out
