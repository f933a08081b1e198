"""Issue 9, item 2: the service keeps working and loses nothing when what it depends on fails.

Every test runs on SQLite and on PostgreSQL (the session ``stack`` is parametrised). Faults are
injected from outside only: the sandbox's fault queues, a lock held on the database from this
process, a gunicorn worker killed with SIGKILL, and, for the faults a second configuration needs
(ConvoAI refusing connections or answering 429 with Retry-After, the database out of reach, the
SIP gateway hanging for a short while), a second sandbox and service built here. Outcomes are
read from outside too: HTTP answers, the admin API's records, the sandbox's agents and requests.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from ncs.signature import sign
from tests.conftest import fresh_database, postgres_url_or_skip
from tests.integration.conftest import SECRETS
from tests.integration.harness import (
    ROOT,
    Running,
    Sandbox,
    Service,
    base_env,
    free_port,
    running_stack,
    stack_database,
    wait_until,
)

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": "Bearer sandbox-admin-token"}
RUNNING = ("STARTING", "RUNNING")
#: NCS gives up on an answer after 10 s and delivers the event again.
NCS_WAIT_S = 10.0
#: How long the second stack's gateway holds an ``outbound`` marked "hang" before its 503.
GATEWAY_HANG_S = 6


# -- reading the outcome ------------------------------------------------------------------------

def records(service: Service, channel: str) -> list[dict[str, Any]]:
    """The channel's calls in the admin API, newest first."""
    response = requests.get(f"{service.url}/api/calls", params={"channel": channel},
                            headers=ADMIN, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["calls"]


def record(service: Service, call_id: str) -> dict[str, Any]:
    """One call in detail, with its timeline."""
    response = requests.get(f"{service.url}/api/calls/{call_id}", headers=ADMIN, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def the_call(service: Service, channel: str, states: tuple[str, ...], *,
             timeout: float = 15.0) -> dict[str, Any]:
    """Wait until the channel has exactly one call and it is in one of ``states``."""
    def settled() -> dict[str, Any] | None:
        found = records(service, channel)
        assert len(found) <= 1, found
        return found[0] if found and found[0]["state"] in states else None

    return wait_until(settled, timeout=timeout, interval=0.2,
                      message=f"the call in {channel} to be {'/'.join(states)}")


def running(sandbox: Sandbox, channel: str) -> list[dict[str, Any]]:
    return [a for a in sandbox.agents(channel) if a["state"] in RUNNING]


def nothing_running(sandbox: Sandbox, channel: str) -> None:
    wait_until(lambda: not running(sandbox, channel), timeout=15,
               message=f"no agent running in {channel}")


def joins_for(sandbox: Sandbox, channel: str) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests("join")
            if (r.get("body") or {}).get("properties", {}).get("channel") == channel]


# -- NCS deliveries -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Delivery:
    """One NCS delivery, byte for byte, so that a retry is exactly what NCS would send again."""

    body: bytes
    headers: dict[str, str]

    @classmethod
    def of(cls, event_type: int, channel: str, seq: int, *, reason: int | None = None
           ) -> Delivery:
        payload: dict[str, Any] = {"channelName": channel, "uid": 111, "platform": 6,
                                   "clientSeq": seq, "ts": int(time.time())}
        if reason is not None:
            payload.update(reason=reason, duration=5)
        body = json.dumps({"noticeId": uuid.uuid4().hex, "productId": 1,
                           "eventType": event_type, "notifyMs": int(time.time() * 1000),
                           "sid": uuid.uuid4().hex, "payload": payload}).encode()
        return cls(body, {"Content-Type": "application/json",
                          **sign(SECRETS["ncs_secret"], body)})

    def post(self, service: Service) -> tuple[requests.Response, float]:
        """Send it; return the answer and how long it took."""
        started = time.monotonic()
        response = requests.post(f"{service.url}/webhook", data=self.body, headers=self.headers,
                                 timeout=30)
        return response, time.monotonic() - started


def answered_in_time(delivery: Delivery, service: Service, status: int) -> requests.Response:
    response, took = delivery.post(service)
    assert response.status_code == status, response.text
    assert took < NCS_WAIT_S, f"answered after {took:.1f}s; NCS gives up at {NCS_WAIT_S}s"
    return response


def hang_up(service: Service, channel: str, seq: int) -> None:
    response = service.event(104, channel=channel, seq=seq, reason=1)
    assert response.status_code == 200, response.text


# -- processes ----------------------------------------------------------------------------------

def flask_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    flask = str(Path(sys.executable).parent / "flask")
    return subprocess.run([flask, "--app", "app", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**env, "LOG_LEVEL": "WARNING"})


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (gunicorn's workers, for its master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue  # exited meanwhile
        if f"\nPPid:\t{pid}\n" in status:
            found.append(int(entry.name))
    return found


def worker_serving(master_pid: int, service_port: int, client_port: int) -> int | None:
    """The gunicorn worker holding our client's connection: the socket whose local port is the
    service's and remote port is ours, looked up in /proc/net/tcp and the workers' fds."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if (local_port, remote_port) == (service_port, client_port):
            inodes.add(f"socket:[{fields[9]}]")
    for pid in children(master_pid):
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    if os.readlink(fd) in inodes:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


# -- stand-ins between the second service and what it depends on --------------------------------

class ConvoAIFront:
    """The sandbox's ConvoAI behind a small HTTP front in this process, for the second service.

    The sandbox cannot send a Retry-After header, so the front answers the next ``throttle``
    joins itself with 429 and one; and ``close()`` stops it listening, so that connecting is
    refused. Everything else is passed to the sandbox unchanged. Each join is noted with the
    time it arrived and the status it got."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.throttled = 0
        self.retry_after = "1"
        self.joins: list[tuple[float, int]] = []
        self.server: ThreadingHTTPServer | None = None
        self.open()

    def throttle(self, count: int, retry_after_s: int) -> None:
        with self.lock:
            self.throttled, self.retry_after = count, str(retry_after_s)
            self.joins.clear()

    def open(self) -> None:
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self.forward()

            def do_POST(self) -> None:  # noqa: N802
                self.forward()

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                is_join = self.command == "POST" and self.path.endswith("/join")
                with front.lock:
                    refuse = is_join and front.throttled > 0
                    if refuse:
                        front.throttled -= 1
                if refuse:
                    status, headers = 429, {"Retry-After": front.retry_after}
                    content = json.dumps({"detail": "too many requests",
                                          "reason": "ResourceQuotaLimitExceeded"}).encode()
                else:
                    answer = requests.request(
                        self.command, front.upstream + self.path, data=body or None, timeout=60,
                        headers={k: v for k, v in self.headers.items()
                                 if k.lower() in ("authorization", "content-type", "accept")})
                    status, headers, content = answer.status_code, {}, answer.content
                if is_join:
                    with front.lock:
                        front.joins.append((time.time(), status))
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: Any) -> None:
                pass  # the sandbox and the service log the exchange already

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class TcpProxy:
    """A TCP relay to the database that can be cut (every connection closed, new ones refused)
    and restored on the same port: the database going out of reach and coming back."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()
        with self.lock:
            doomed, self.sockets = self.sockets, []
        for sock in doomed:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        listener.settimeout(0.2)
        while self.listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@dataclass
class SecondStack:
    """A sandbox and a service of their own: ConvoAI reached through a ConvoAIFront, the
    database (PostgreSQL) through a TcpProxy, and a gateway whose "hang" lasts GATEWAY_HANG_S."""

    sandbox: Sandbox
    service: Service
    front: ConvoAIFront
    proxy: TcpProxy | None
    backend: str

    def reset(self) -> None:
        self.sandbox.reset(concurrency_limit=200)
        self.front.throttle(0, 1)
        if self.front.server is None:
            self.front.open()
        if self.proxy is not None and self.proxy.listener is None:
            self.proxy.restore()


@pytest.fixture(scope="module")
def second_stacks(tmp_path_factory) -> Iterator[Callable[[str], SecondStack]]:
    """The second stack of a backend, started on first use, stopped when the module ends."""
    started: dict[str, SecondStack] = {}
    with ExitStack() as running:

        def second_stack_of(backend: str) -> SecondStack:
            if backend not in started:
                started[backend] = running.enter_context(
                    second_stack(backend, tmp_path_factory))
            return started[backend]

        yield second_stack_of


@contextmanager
def second_stack(backend: str, tmp_path_factory) -> Iterator[SecondStack]:
    log_dir = tmp_path_factory.mktemp(f"faults-{backend}")
    # Each part is stopped on the way out, the last started first, and so are those started
    # before one that failed to.
    with ExitStack() as started:
        proxy = None
        if backend == "sqlite":
            database_url = f"sqlite:///{log_dir / 'second.db'}"
        else:
            direct = sa.make_url(fresh_database(postgres_url_or_skip(), "phone_agent_faults"))
            proxy = TcpProxy(direct.host or "127.0.0.1", direct.port or 5432)
            started.callback(proxy.cut)
            database_url = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(
                hide_password=False)
        sandbox_port, service_port = free_port(), free_port()
        env = base_env(database_url, sandbox_port, SECRETS)
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        front = ConvoAIFront(sandbox_url)
        started.callback(front.close)
        # A join budget of 4 s rather than 7: a throttled or refused join gives up sooner, and a
        # 429's 2 s Retry-After still fits in it.
        env.update(SANDBOX_WEBHOOK_URL=f"http://127.0.0.1:{service_port}/webhook",
                   SANDBOX_OUTBOUND_HANG_S=str(GATEWAY_HANG_S), JOIN_BUDGET_S="4",
                   CONVOAI_API_URL=f"{front.url}/convoai")
        # Started together; the service is first asked for its health once the sandbox answers.
        sandbox = Sandbox(log_dir, env, sandbox_port, wait=False)
        started.callback(sandbox.process.stop)
        service = Service(log_dir, env, service_port, name="second", wait=False)
        started.callback(service.process.stop)
        sandbox.process.wait_healthy()
        service.process.wait_healthy()
        yield SecondStack(sandbox, service, front, proxy, backend)


@pytest.fixture
def second(stack, second_stacks: Callable[[str], SecondStack]) -> SecondStack:
    """The second stack of the test's backend (the ``stack`` parameter), reset."""
    second_stack = second_stacks(stack.backend)
    second_stack.reset()
    return second_stack


# -- 1. a ConvoAI join that times out -----------------------------------------------------------

def test_a_join_that_times_out_fails_the_call_inside_ncs_wait_and_leaves_no_agent(fresh):
    # Every attempt outlasts the client's read timeout; JOIN_BUDGET_S (7 s) bounds them all.
    fresh.sandbox.faults(timeout_s=8, join_errors=["timeout"] * 4)
    channel = fresh.channel("jointimeout")
    delivery = Delivery.of(103, channel, 1)
    answered_in_time(delivery, fresh.service, 200)
    call = the_call(fresh.service, channel, ("failed",))
    assert "unavailable" in call["last_error"].lower(), call
    assert call["agent_id"] is None
    assert fresh.sandbox.agents(channel) == []
    # The webhook is answered, so NCS does not send it again; a copy changes nothing.
    again = answered_in_time(delivery, fresh.service, 200)
    assert again.json()["outcome"] == "duplicate_notice"


def test_a_timed_out_join_that_did_start_an_agent_ends_with_that_one_agent_stopped(fresh):
    # ConvoAI started the agent but the answer never came in time (apply: true, after the
    # client's 5 s read timeout); the retry times out too, so the call fails with the agent
    # running under the call's name. The reconciler finds it by name and stops it.
    fresh.sandbox.faults(timeout_s=8, join_errors=[
        {"status": 504, "sleep_s": 6, "apply": True}, "timeout", "timeout", "timeout"])
    channel = fresh.channel("joinapplied")
    answered_in_time(Delivery.of(103, channel, 1), fresh.service, 200)
    call = the_call(fresh.service, channel, ("failed", "active"))
    wait_until(lambda: fresh.sandbox.agents(channel), message="the late agent")
    if call["state"] == "active":
        # A slow machine let one more attempt through after the agent existed: it got 409
        # and adopted the agent instead of starting another.
        assert call["agent_id"] == fresh.sandbox.agents(channel)[0]["agent_id"]
        hang_up(fresh.service, channel, 2)
    else:
        result = flask_cli(fresh.env, "calls", "reconcile", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.strip().splitlines()[-1])["orphans_stopped"] >= 1
        kinds = [e["kind"] for e in record(fresh.service, call["id"])["timeline"]]
        assert "orphan_agent_stopped" in kinds, kinds
    nothing_running(fresh.sandbox, channel)
    assert len(fresh.sandbox.agents(channel)) == 1


def test_a_slow_join_keeps_no_lock_so_other_calls_are_decided_while_it_is_in_flight(fresh):
    # A call's decision commits before its join is sent, not once ConvoAI answers: were
    # the store's lock held for the round trip, every other webhook would wait behind it.
    fresh.sandbox.faults(join_latency_s=4)
    first, second = fresh.channel("slowjoin"), fresh.channel("meanwhile")
    answers: dict[str, requests.Response] = {}
    senders = {channel: threading.Thread(target=lambda channel=channel: answers.update(
        {channel: Delivery.of(103, channel, 1).post(fresh.service)[0]})) for channel in
        (first, second)}
    senders[first].start()
    the_call(fresh.service, first, ("starting",))
    senders[second].start()
    the_call(fresh.service, second, ("starting",))
    # Decided and recorded while the first join is still waiting for its answer.
    assert records(fresh.service, first)[0]["state"] == "starting"
    for channel in (first, second):
        senders[channel].join(timeout=30)
        assert answers[channel].status_code == 200, answers[channel].text
        the_call(fresh.service, channel, ("active",))
        hang_up(fresh.service, channel, 2)
        nothing_running(fresh.sandbox, channel)
        assert len(fresh.sandbox.agents(channel)) == 1


# -- 2. ConvoAI refusing connections ------------------------------------------------------------

def test_convoai_refusing_connections_fails_the_call_once_and_the_service_carries_on(second):
    second.front.close()  # nothing listens where CONVOAI_API_URL points
    channel = f"refused_{uuid.uuid4().hex[:10]}"
    log_before = len(second.service.process.output())
    answered_in_time(Delivery.of(103, channel, 1), second.service, 200)
    call = the_call(second.service, channel, ("failed",))
    assert "unavailable" in call["last_error"].lower(), call

    def join_attempts() -> int:
        tail = second.service.process.output()[log_before:]
        return sum(1 for line in tail.splitlines()
                   if "convoai.request" in line and '"/join"' in line)

    attempts = join_attempts()
    assert 1 <= attempts <= 4, attempts  # the client's policy: at most 4 attempts
    # A failed call is final: sweeps that come after (every 0.5 s here) never try it again.
    time.sleep(2)
    assert join_attempts() == attempts
    assert records(second.service, channel)[0]["state"] == "failed"
    assert requests.get(f"{second.service.url}/healthz", timeout=5).status_code == 200

    second.front.open()
    later = f"refused_{uuid.uuid4().hex[:10]}"
    answered_in_time(Delivery.of(103, later, 1), second.service, 200)
    wait_until(lambda: running(second.sandbox, later), message="an agent once ConvoAI is back")
    hang_up(second.service, later, 2)
    nothing_running(second.sandbox, later)


# -- 3. ConvoAI failing with 5xx, then answering ------------------------------------------------

def test_a_5xx_after_the_agent_started_is_retried_and_the_agent_adopted_not_doubled(fresh):
    # The plain 503-503-200 case is in test_call_lifecycle; here the second failure is a 502
    # that ConvoAI answered after starting the agent anyway, so the retry meets a 409.
    fresh.sandbox.faults(join_errors=[500, {"status": 502, "apply": True}])
    channel = fresh.channel("fivexx")
    answered_in_time(Delivery.of(103, channel, 1), fresh.service, 200)
    call = the_call(fresh.service, channel, ("active",))
    assert [r["status"] for r in joins_for(fresh.sandbox, channel)] == [500, 502, 409]
    (agent,) = fresh.sandbox.agents(channel)
    assert agent["state"] in RUNNING and call["agent_id"] == agent["agent_id"]
    hang_up(fresh.service, channel, 2)
    the_call(fresh.service, channel, ("ended",))
    nothing_running(fresh.sandbox, channel)
    assert len(fresh.sandbox.agents(channel)) == 1


# -- 4. ConvoAI throttling with 429 and Retry-After ---------------------------------------------

def test_a_429_with_retry_after_is_waited_out_and_gives_one_agent(second):
    second.front.throttle(1, retry_after_s=2)
    channel = f"throttled_{uuid.uuid4().hex[:10]}"
    answered_in_time(Delivery.of(103, channel, 1), second.service, 200)
    call = the_call(second.service, channel, ("active",))
    (first, first_status), (retry, retry_status) = second.front.joins
    assert (first_status, retry_status) == (429, 200)
    # Most of the 2 s it was told to wait (never a tight bound: clocks and schedulers jitter).
    assert retry - first >= 1.5, retry - first
    (agent,) = second.sandbox.agents(channel)
    assert call["agent_id"] == agent["agent_id"]
    hang_up(second.service, channel, 2)
    nothing_running(second.sandbox, channel)


def test_a_429_that_outlasts_the_join_budget_fails_the_call_with_the_reason(second):
    second.front.throttle(100, retry_after_s=2)
    channel = f"throttled_{uuid.uuid4().hex[:10]}"
    answered_in_time(Delivery.of(103, channel, 1), second.service, 200)
    call = the_call(second.service, channel, ("failed", "refused"))
    assert "429" in call["last_error"], call
    statuses = [status for _, status in second.front.joins]
    assert statuses and set(statuses) == {429} and len(statuses) <= 4, statuses
    assert second.sandbox.agents(channel) == []


# -- 5. the store locked, or out of reach -------------------------------------------------------

class StoreLock:
    """A write lock on the service's database, held from this process: SQLite's
    BEGIN EXCLUSIVE on the file, or PostgreSQL's ACCESS EXCLUSIVE lock on ``notices`` (the first
    table every webhook writes)."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.release_ = lambda: None

    def hold(self) -> None:
        if self.url.startswith("sqlite"):
            conn = sqlite3.connect(sa.make_url(self.url).database, timeout=10,
                                   isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")

            def release_sqlite() -> None:
                conn.execute("ROLLBACK")
                conn.close()

            self.release_ = release_sqlite
            return
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        conn = engine.connect()
        conn.begin()
        conn.execute(sa.text("LOCK TABLE notices IN ACCESS EXCLUSIVE MODE"))

        def release_postgres() -> None:
            conn.rollback()
            conn.close()
            engine.dispose()

        self.release_ = release_postgres

    def release(self) -> None:
        self.release_()
        self.release_ = lambda: None


def test_a_locked_store_answers_503_in_time_records_nothing_and_the_retry_starts_one_agent(
        fresh):
    lock = StoreLock(fresh.env["DATABASE_URL"])
    channel, waiting = fresh.channel("locked"), fresh.channel("waiting")
    delivery = Delivery.of(103, channel, 1)
    lock.hold()
    try:
        refused = answered_in_time(delivery, fresh.service, 503)  # STORE_TIMEOUT_S, not a hang
        assert refused.json()["error"] == "unavailable"
        assert records(fresh.service, channel) == []
        assert fresh.sandbox.agents(channel) == []
        # A delivery that waits on the lock and gets it in time is answered 200, and recorded.
        in_flight: dict[str, requests.Response] = {}
        sender = threading.Thread(target=lambda: in_flight.update(
            answer=Delivery.of(103, waiting, 1).post(fresh.service)[0]))
        sender.start()
        time.sleep(1)
    finally:
        lock.release()
    sender.join(timeout=30)
    assert in_flight["answer"].status_code == 200, in_flight["answer"].text
    assert len(records(fresh.service, waiting)) == 1

    # NCS delivers the refused event again, unchanged: now it starts the call, exactly once.
    retried = answered_in_time(delivery, fresh.service, 200)
    assert retried.json()["outcome"] == "call_started"
    assert len(records(fresh.service, channel)) == 1
    wait_until(lambda: running(fresh.sandbox, channel), message="the agent after the retry")
    assert len(fresh.sandbox.agents(channel)) == 1
    for name in (channel, waiting):
        hang_up(fresh.service, name, 2)
        nothing_running(fresh.sandbox, name)
    assert [len(fresh.sandbox.agents(name)) for name in (channel, waiting)] == [1, 1]


def test_a_store_out_of_reach_answers_503_and_the_service_recovers_when_it_is_back(second):
    """PostgreSQL only: the database is a server that can go out of reach. A SQLite database is
    a local file; it cannot be unreachable, only locked, which the test above covers."""
    if second.proxy is None:
        pytest.skip("SQLite is a local file: never out of reach (the lock test covers it)")
    channel = f"unreachable_{uuid.uuid4().hex[:10]}"
    delivery = Delivery.of(103, channel, 1)
    second.proxy.cut()
    try:
        refused = answered_in_time(delivery, second.service, 503)
        assert refused.json()["error"] == "unavailable"
        assert requests.get(f"{second.service.url}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{second.service.url}/readyz", timeout=15).status_code == 503
    finally:
        second.proxy.restore()
    # Pooled connections died with the cut; pre-ping replaces them on the next checkout.
    retried = answered_in_time(delivery, second.service, 200)
    assert retried.json()["outcome"] == "call_started"
    wait_until(lambda: running(second.sandbox, channel), message="the agent after recovery")
    assert len(records(second.service, channel)) == 1
    hang_up(second.service, channel, 2)
    nothing_running(second.sandbox, channel)
    assert len(second.sandbox.agents(channel)) == 1


# -- 6. a worker killed in the middle of a start ------------------------------------------------

@pytest.fixture
def short_lease(stack, tmp_path_factory) -> Iterator[Running]:
    """A stack of its own whose work lease (WORK_LEASE_S) is 6 s rather than 30, and so its join
    budget (JOIN_BUDGET_S, less than the lease) 5 s rather than 7: the shared stacks keep the
    defaults, which their storms of slow joins rely on."""
    log_dir = tmp_path_factory.mktemp(f"short-lease-{stack.backend}")
    database_url = stack_database(stack.backend, log_dir, "phone_agent_short_lease")
    with running_stack(log_dir, database_url, SECRETS,
                       env={"WORK_LEASE_S": "6", "JOIN_BUDGET_S": "5"}) as running:
        running.sandbox.reset(concurrency_limit=200)
        yield running


def test_a_worker_killed_during_a_join_leaves_a_start_the_sweeper_finishes_with_one_agent(
        short_lease):
    # The simplest honest way: really kill the worker and wait out the store's work lease
    # (WORK_LEASE_S, 6 s in this stack of its own) until a surviving worker's sweeper takes the
    # start over.
    fresh = short_lease
    fresh.sandbox.faults(join_latency_s=3)
    channel = f"killed_{uuid.uuid4().hex[:10]}"
    delivery = Delivery.of(103, channel, 1)
    port = int(fresh.service.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    client_port = conn.sock.getsockname()[1]
    conn.request("POST", "/webhook", body=delivery.body, headers=delivery.headers)
    master = fresh.service.process.proc.pid
    worker = wait_until(lambda: worker_serving(master, port, client_port),
                        message="the worker serving the join")
    the_call(fresh.service, channel, ("starting",))  # recorded; the join is in flight
    os.kill(worker, signal.SIGKILL)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        conn.getresponse()  # the answer is lost with the worker
    conn.close()
    fresh.sandbox.faults(join_latency_s=0)
    wait_until(lambda: worker not in children(master) and len(children(master)) == 2,
               message="gunicorn to replace the killed worker")

    # One agent either way. The call commits before its join is sent, so the worker may die
    # after the join reached ConvoAI (its agent is adopted: 200, then the sweeper's 409) or
    # before it left (the sweeper's join starts the only agent: 200).
    call = the_call(fresh.service, channel, ("active",), timeout=60)
    (agent,) = fresh.sandbox.agents(channel)
    assert call["agent_id"] == agent["agent_id"] and agent["state"] in RUNNING
    assert [r["status"] for r in joins_for(fresh.sandbox, channel)] in ([200, 409], [200])
    kinds = [e["kind"] for e in record(fresh.service, call["id"])["timeline"]]
    assert "claimed_starting" in kinds, kinds

    hang_up(fresh.service, channel, 2)
    the_call(fresh.service, channel, ("ended",))
    nothing_running(fresh.sandbox, channel)
    assert len(fresh.sandbox.agents(channel)) == 1


# -- 7. the SIP gateway's outbound hanging ------------------------------------------------------

def place_outbound(service: Service, to: str) -> dict[str, Any]:
    placed = requests.post(f"{service.url}/api/calls", headers=ADMIN, timeout=10,
                           json={"to": to})
    assert placed.status_code == 202, placed.text
    return placed.json()


def test_a_hanging_outbound_dial_fails_its_call_stops_its_agent_and_blocks_nothing(second):
    # The second stack's gateway holds a "hang" for GATEWAY_HANG_S, then answers 503. (Were it to
    # hold on for ever, GatewayClient's outbound read timeout, 90 s, would end the dial.)
    second.sandbox.faults(outbound_results=["hang"])
    hung = place_outbound(second.service, "+15557650001")
    # 202 before the dial is over: the call is still open when the answer arrives.
    assert record(second.service, hung["id"])["state"] in ("starting", "active")
    # The gateway hands out its faults in the order dials arrive: the first call's dial follows
    # the start of its agent, so the second call is placed only once that has happened (and a
    # moment more), or the second dial could take the "hang" meant for the first.
    wait_until(lambda: record(second.service, hung["id"])["agent_id"], timeout=15,
               message="the first call's agent")
    time.sleep(0.5)
    other = place_outbound(second.service, "+15557650002")

    def ended(call_id: str) -> dict[str, Any] | None:
        found = record(second.service, call_id)
        return found if found["state"] in ("ended", "failed") else None

    answered = wait_until(lambda: ended(other["id"]), timeout=30, message="the other call")
    failed = wait_until(lambda: ended(hung["id"]), timeout=30, message="the hung dial to end")
    assert failed["end_reason"] == "outbound_failed", failed
    assert failed["agent_id"], "the agent is started before the dial"

    def at(call: dict[str, Any], kind: str) -> str:
        return next(e["at"] for e in call["timeline"] if e["kind"] == kind)

    # The other call was answered while the first dial still hung.
    assert at(answered, "outbound_answered") < at(failed, "outbound_failed")
    for call in (failed, answered):
        nothing_running(second.sandbox, call["channel"])
        assert len(second.sandbox.agents(call["channel"])) == 1
