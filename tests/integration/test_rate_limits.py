"""The failed-authentication limit from outside: two instances of the service (gunicorn, 2
workers each) on one database, so each failure may land on any of four processes. The count is
in the store, so it trips all the same, and signed NCS events still go through.

Each test is a client of its own: the instances trust one proxy (PROXY_HOPS=1), so the
X-Forwarded-For header names the client address to count."""

from __future__ import annotations

import fcntl
import http.client
import itertools
import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from ncs.signature import sign
from personas.startup import load_settings
from store import Store
from store.schema import rate_limits
from tests.integration.conftest import SECRETS
from tests.integration.harness import (
    RATE_LIMIT_WINDOW_S,
    Sandbox,
    Service,
    running_stack,
    stack_database,
    wait_until,
    whole_window,
)
from web.security import AUTH, RateLimiter, key_salt

pytestmark = pytest.mark.integration
LIMIT = 8
ADMIN_TOKEN = "rl-admin-token-Ne36"
RUNNING = ("STARTING", "RUNNING")


@dataclass
class Cluster:
    sandbox: Sandbox
    instances: list[Service]
    database_url: str
    env: dict[str, str]


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Cluster]:
    log_dir = tmp_path_factory.mktemp(f"rate-limits-{request.param}")
    database_url = stack_database(request.param, log_dir, "phone_agent_rate_limits")
    with running_stack(log_dir, database_url, SECRETS, instances=2, env={
            "RATE_LIMIT_PER_MINUTE": str(LIMIT), "PROXY_HOPS": "1",
            "ADMIN_TOKEN": ADMIN_TOKEN}) as running:
        yield Cluster(running.sandbox, running.services, database_url, running.env)


#: The hosts handed out so far in this process (see client_ip).
_HOSTS = itertools.count(1)


@pytest.fixture
def client_ip() -> str:
    """A client address of this test's own (documentation range). Never one an earlier test
    had: windows last a day here, so a reused address would start with its count spent (a
    random host did collide in a full run)."""
    return f"203.0.113.{next(_HOSTS)}"


@pytest.fixture(autouse=True)
def one_window() -> None:
    """No test's hits straddle two windows (a boundary in the middle would restart the count)."""
    whole_window()


def send(service: Service, method: str, path: str, client_ip: str, *,
         headers: dict[str, str] | None = None, body: bytes = b""
         ) -> tuple[int, dict[str, str], bytes, int | None]:
    """One request on a connection of its own. Returns the status, headers, body, and the pid
    of the gunicorn worker that answered (None where /proc cannot tell)."""
    connection = http.client.HTTPConnection("127.0.0.1", int(service.url.rsplit(":", 1)[1]),
                                            timeout=15)
    try:
        connection.request(method, path, body=body, headers={
            "X-Forwarded-For": client_ip, "Content-Type": "application/json",
            **(headers or {})})
        response = connection.getresponse()
        data = response.read()
        # The connection is still open (keep-alive): find the worker holding its other end.
        worker = worker_serving(service, connection.sock.getsockname()[1])
        return response.status, dict(response.getheaders()), data, worker
    finally:
        connection.close()


def worker_serving(service: Service, client_port: int) -> int | None:
    """The pid of the service's worker that holds the server side of the loopback connection
    from ``client_port``, found through /proc (Linux)."""
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    server_port = int(service.url.rsplit(":", 1)[1])
    inode = next((fields[9] for fields in (line.split() for line in table)
                  if int(fields[1].split(":")[1], 16) == server_port
                  and int(fields[2].split(":")[1], 16) == client_port), None)
    if inode is None:
        return None
    for pid in workers(service):
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        if f"socket:[{inode}]" in links:
            return pid
    return None


def workers(service: Service) -> list[int]:
    arbiter = service.process.proc.pid
    children = Path(f"/proc/{arbiter}/task/{arbiter}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def fail_auth(service: Service, client_ip: str) -> tuple[int, dict[str, str], int | None]:
    status, headers, _, worker = send(service, "GET", "/api/calls", client_ip,
                                      headers={"Authorization": "Bearer wrong-token"})
    return status, headers, worker


def counters(cluster: Cluster) -> dict[str, int]:
    engine = sa.create_engine(cluster.database_url)
    try:
        with engine.connect() as conn:
            return {r.key: r.hits for r in conn.execute(sa.select(rate_limits))}
    finally:
        engine.dispose()


def key_of(cluster: Cluster, client_ip: str) -> str:
    """The store key the service counts ``client_ip``'s failures under."""
    settings = load_settings(cluster.env, dotenv=False)
    # Deriving a key reads nothing: the store is never opened.
    return RateLimiter(Store.from_url(cluster.database_url), limit=LIMIT,
                       key_salt=key_salt(settings)).key(AUTH, client_ip)


def test_failures_spread_over_both_workers_trip_one_shared_limit(cluster, client_ip):
    service = cluster.instances[0]
    pids = workers(service)
    assert len(pids) == 2, pids
    served = Counter()
    for attempt in range(LIMIT):
        # The other worker is paused, so this one must take the connection: the failures
        # alternate between the two processes whatever the kernel would have preferred.
        status, _, worker = only_one_worker_listening(cluster, service, pids[attempt % 2],
                                                      client_ip)
        assert status == 401
        served[worker] += 1
    assert served == {pids[0]: LIMIT // 2, pids[1]: LIMIT // 2}
    status, headers, _ = fail_auth(service, client_ip)
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= RATE_LIMIT_WINDOW_S
    # The count is the store's (the refusal came before the token check, so it did not count),
    # under a key that is not the address.
    stored = counters(cluster)
    assert stored[key_of(cluster, client_ip)] == LIMIT
    assert not [key for key in stored if client_ip in key]


def only_one_worker_listening(cluster: Cluster, service: Service, pid: int, client_ip: str
                              ) -> tuple[int, dict[str, str], int | None]:
    others = [other for other in workers(service) if other != pid]
    # Paused outside any store write: SIGSTOP reaches a worker's threads a moment after kill()
    # returns, so the gate is held until every thread of theirs has stopped. The served
    # worker then finds the gate (which the limiter's count takes) free.
    with store_writes_held(cluster):
        for other in others:
            os.kill(other, signal.SIGSTOP)
        wait_until(lambda: all(stopped(other) for other in others), timeout=10,
                   message="the other workers to stop")
    try:
        return fail_auth(service, client_ip)
    finally:
        for other in others:
            os.kill(other, signal.SIGCONT)


def stopped(pid: int) -> bool:
    """Whether every thread of process ``pid`` is stopped (state T in /proc)."""
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            state = stat.read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            continue  # the thread has ended
        if state not in ("T", "t"):
            return False
    return True


@contextmanager
def store_writes_held(cluster: Cluster, timeout_s: float = 10.0) -> Iterator[None]:
    """SQLite: hold the store's write gate, the side file a worker locks for the whole of each
    of the store's write transactions (store/engine.py), the rate limiter's counts included. A
    worker paused meanwhile is then not paused inside one (its sweeper runs every half second),
    where it would keep the gate and SQLite's write lock, and the served worker's count would
    give up after the timeout (and let the failure through). PostgreSQL locks rows, and no
    other transaction touches this test's counter."""
    url = sa.engine.make_url(cluster.database_url)
    if url.get_backend_name() != "sqlite":
        yield
        return
    assert url.database
    fd = os.open(Path(url.database).with_suffix(".write.lock"),
                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "a worker kept the store's write gate"
                time.sleep(0.001)
        yield
    finally:
        os.close(fd)  # releases the lock


def test_two_instances_count_together_and_the_right_token_waits_too(cluster, client_ip):
    first, second = cluster.instances
    statuses = [fail_auth((first, second)[i % 2], client_ip)[0] for i in range(LIMIT)]
    assert statuses == [401] * LIMIT
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for instance in (first, second):
        status, headers, body, _ = send(instance, "GET", "/api/calls", client_ip,
                                        headers=admin)
        assert status == 429 and json.loads(body)["error"] == "rate_limited"
        assert headers["Cache-Control"] == "no-store"
    # Another client is not held back by this one.
    assert send(second, "GET", "/api/calls", "198.51.100.20", headers=admin)[0] == 200


def test_signed_events_from_a_throttled_address_still_start_and_stop_a_call(cluster, client_ip):
    first, second = cluster.instances
    channel = f"throttled_{uuid.uuid4().hex[:10]}"

    def event(event_type: int, seq: int, secret: str = SECRETS["ncs_secret"], **extra: int
              ) -> bytes:
        payload = {"channelName": channel, "uid": 111, "platform": 6, "clientSeq": seq,
                   "ts": int(time.time()), **extra}
        return json.dumps({"noticeId": uuid.uuid4().hex, "productId": 1,
                           "eventType": event_type, "notifyMs": int(time.time() * 1000),
                           "payload": payload}).encode()

    forged = event(103, 1)
    statuses = [send((first, second)[i % 2], "POST", "/webhook", client_ip, body=forged,
                     headers=sign("not-our-secret", forged))[0] for i in range(LIMIT + 2)]
    assert statuses == [401] * LIMIT + [429, 429]

    join = event(103, 1)
    status, _, body, _ = send(second, "POST", "/webhook", client_ip, body=join,
                              headers=sign(SECRETS["ncs_secret"], join))
    assert status == 200 and json.loads(body)["outcome"] == "call_started"
    wait_until(lambda: [a for a in cluster.sandbox.agents(channel) if a["state"] in RUNNING],
               message="the agent of the throttled address's call")
    leave = event(104, 2, reason=1, duration=3)
    status, _, _, _ = send(first, "POST", "/webhook", client_ip, body=leave,
                           headers=sign(SECRETS["ncs_secret"], leave))
    assert status == 200
    wait_until(lambda: not [a for a in cluster.sandbox.agents(channel)
                            if a["state"] in RUNNING], message="the agent stopped")
