"""A minimal, fast stand-in for ConvoAI's REST API, for benchmarks (not the sandbox: no checks).

    python bench/fake_convoai.py --port 8091 [--latency-ms 0]

Answers ``POST .../join`` with ``{"agent_id", "create_ts", "status": "RUNNING"}``,
``POST .../agents/<id>/leave`` with ``{}``, ``GET .../agents/<id>/history`` of an agent it
started with an empty conversation (a bench call lasts milliseconds: nobody has spoken yet)
and ``GET .../agents`` with an empty list. For each
join it records the channel, the agent id it hands out and the arrival time, ``time.monotonic()``
taken as soon as the request line and headers are read (CLOCK_MONOTONIC is system-wide on Linux,
so a client on the same machine can compare it with its own clock); for each leave, the agent id,
that agent's channel and the arrival time. Bench endpoints:

- ``GET /_bench/joins`` -> ``{"joins": [{"channel", "agent_id", "t"}...], "leaves": [...]}``
- ``GET /_bench/counts`` -> ``{"joins": n, "leaves": n, "history": n}`` (history requests)
- ``GET /_bench/wait?kind=join|leave&channel=C&timeout=S`` -> ``{"t": ...}`` once that join (or
  the leave of that channel's agent) has arrived, 404 after the timeout
- ``POST /_bench/latency?ms=M`` sets the answer delay of joins and leaves
- ``POST /_bench/reset`` forgets everything
- ``GET /_bench/health``
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_WAIT_S = 30.0


class Recorder:
    """Arrivals by kind and channel; waiters are woken when an arrival lands."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.joins: list[dict] = []
        self.leaves: list[dict] = []
        self.by_key: dict[tuple[str, str], float] = {}
        self.agent_channel: dict[str, str | None] = {}
        self.history_requests = 0

    def add(self, kind: str, agent_id: str, t: float, channel: str | None = None) -> None:
        """Record a join (``channel`` given: ``agent_id`` is the agent it starts) or the leave
        of ``agent_id`` (its channel is looked up; an unknown agent's is ``None``)."""
        with self.cond:
            if kind == "join":
                self.agent_channel[agent_id] = channel
            else:
                channel = self.agent_channel.get(agent_id)
            (self.joins if kind == "join" else self.leaves).append(
                {"channel": channel, "agent_id": agent_id, "t": t})
            self.by_key.setdefault((kind, channel), t)
            self.cond.notify_all()

    def wait(self, kind: str, channel: str, timeout: float) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: (kind, channel) in self.by_key,
                               timeout=min(timeout, MAX_WAIT_S))
            return self.by_key.get((kind, channel))

    def reset(self) -> None:
        with self.cond:
            self.joins.clear()
            self.leaves.clear()
            self.by_key.clear()
            self.agent_channel.clear()
            self.history_requests = 0

    def history(self, agent_id: str) -> bool:
        """Count a history request; whether ``agent_id`` is an agent this fake started."""
        with self.cond:
            self.history_requests += 1
            return agent_id in self.agent_channel


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as ConvoAI's HTTPS front end does
    disable_nagle_algorithm = True
    server: FakeServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode()
        head = (f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        # One write: headers and body in a single segment.
        self.wfile.write(head.encode("latin-1") + body)
        self.wfile.flush()

    def do_POST(self) -> None:  # noqa: N802 - stdlib's name
        t = time.monotonic()
        path = urlsplit(self.path).path
        raw = self._body()
        rec = self.server.recorder
        if path.endswith("/join"):
            try:
                channel = json.loads(raw)["properties"]["channel"]
            except (ValueError, KeyError, TypeError):
                self._send(400, {"reason": "InvalidRequest", "detail": "no properties.channel"})
                return
            agent_id = uuid.uuid4().hex
            rec.add("join", agent_id, t, channel)
            self._delay()
            self._send(200, {"agent_id": agent_id, "create_ts": int(time.time()),
                             "status": "RUNNING"})
        elif path.endswith("/leave") and "/agents/" in path:
            rec.add("leave", path.rsplit("/", 2)[-2], t)
            self._delay()
            self._send(200, {})
        elif path == "/_bench/reset":
            rec.reset()
            self._send(200, {"status": "ok"})
        elif path == "/_bench/latency":
            query = parse_qs(urlsplit(self.path).query)
            self.server.latency_s = float(query.get("ms", ["0"])[0]) / 1000
            self._send(200, {"status": "ok", "latency_ms": self.server.latency_s * 1000})
        else:
            self._send(404, {"reason": "NotFound"})

    def do_GET(self) -> None:  # noqa: N802 - stdlib's name
        url = urlsplit(self.path)
        rec = self.server.recorder
        if url.path == "/_bench/health":
            self._send(200, {"status": "ok"})
        elif url.path == "/_bench/counts":
            with rec.cond:
                self._send(200, {"joins": len(rec.joins), "leaves": len(rec.leaves),
                                 "history": rec.history_requests})
        elif url.path == "/_bench/joins":
            with rec.cond:
                self._send(200, {"joins": list(rec.joins), "leaves": list(rec.leaves)})
        elif url.path == "/_bench/wait":
            query = parse_qs(url.query)
            kind = query.get("kind", ["join"])[0]
            channel = query.get("channel", [""])[0]
            timeout = float(query.get("timeout", ["5"])[0])
            t = rec.wait(kind, channel, timeout)
            self._send(200 if t is not None else 404, {"t": t})
        elif url.path.endswith("/history") and "/agents/" in url.path:
            agent_id = url.path.rsplit("/", 2)[-2]
            if rec.history(agent_id):
                self._send(200, {"agent_id": agent_id, "start_ts": int(time.time()),
                                 "status": "RUNNING", "contents": []})
            else:
                self._send(404, {"reason": "NotFound"})
        elif url.path.endswith("/agents"):
            self._send(200, {"data": {"count": 0, "list": []},
                             "meta": {"cursor": "", "total": 0}, "status": "ok"})
        else:
            self._send(404, {"reason": "NotFound"})

    def _delay(self) -> None:
        if self.server.latency_s > 0:
            time.sleep(self.server.latency_s)


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], latency_s: float) -> None:
        super().__init__(address, Handler)
        self.recorder = Recorder()
        self.latency_s = latency_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="fixed delay before answering join and leave")
    args = parser.parse_args()
    server = FakeServer((args.host, args.port), args.latency_ms / 1000)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
