"""Real processes on loopback: the sandbox, and the service under gunicorn, with their output
kept so tests can read (and search) everything the service printed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from ncs.signature import sign
from tests.conftest import fresh_database, postgres_url_or_skip

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


LOOKUP_TOKEN = "it-lookup-token-0123456789"
#: The whole Authorization header of the lookup, as provisioned with Agora (beside the token,
#: which the sandbox's gateway sends as Bearer).
LOOKUP_AUTH = "Basic aXQ6bG9va3VwLWF1dGgtMDEyMzQ1"
EVENTS_TOKEN = "it-events-token-9876543210"
#: The stacks' rate-limit window (RATE_LIMIT_WINDOW_S).
RATE_LIMIT_WINDOW_S = 86400


def whole_window(needed_s: float = 30.0) -> None:
    """Make sure ``needed_s`` seconds are left in the current rate-limit window, so a test's
    hits are counted in one window. Windows last a day here: this waits only in the last
    ``needed_s`` seconds before midnight UTC."""
    into = time.time() % RATE_LIMIT_WINDOW_S
    if into > RATE_LIMIT_WINDOW_S - needed_s:
        time.sleep(RATE_LIMIT_WINDOW_S - into + 0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.05,
               message: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; fail with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class Process:
    """A server subprocess whose stdout and stderr go to one log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path,
                 health_url: str, *, wait: bool = True) -> None:
        """Start the process; with ``wait``, return once it answers ``health_url`` (else call
        :meth:`wait_healthy` before using it)."""
        self.name = name
        self.health_url = health_url
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_healthy()

    def wait_healthy(self) -> None:
        """Wait until the process answers its health URL; stop it and fail if it does not."""
        try:
            wait_until(lambda: self._healthy(self.health_url), timeout=30,
                       message=f"{self.name} to answer {self.health_url}")
        except AssertionError as exc:
            self.stop()
            raise AssertionError(f"{self.name} did not start ({exc}):\n"
                                 f"{self.output()[-3000:]}") from None

    def _healthy(self, url: str) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited:\n{self.output()[-3000:]}")
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


class Sandbox:
    """The sandbox server and its control API."""

    def __init__(self, log_dir: Path, env: dict[str, str], port: int, *,
                 wait: bool = True) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.process = Process("sandbox", [str(VENV_BIN / "python"), "-m", "sandbox",
                                           "--host", "127.0.0.1", "--port", str(port)],
                               env, log_dir, f"{self.url}/_sandbox/health", wait=wait)

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, f"{self.url}/_sandbox/{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def reset(self, **faults: Any) -> None:
        self.control("POST", "reset")
        if faults:
            self.faults(**faults)

    def faults(self, **faults: Any) -> Any:
        return self.control("POST", "faults", json=faults)

    def agents(self, channel: str | None = None) -> list[dict[str, Any]]:
        data = self.control("GET", "agents")
        agents = data["agents"] if isinstance(data, dict) else data
        return [a for a in agents if channel is None or a["channel"] == channel]

    def requests(self, kind: str | None = None) -> list[dict[str, Any]]:
        data = self.control("GET", "requests", params={"kind": kind} if kind else None)
        return data["requests"] if isinstance(data, dict) else data


class Service:
    """The service under its production gunicorn configuration (app:app, gthread)."""

    def __init__(self, log_dir: Path, env: dict[str, str], port: int, *, workers: int = 2,
                 name: str = "service", wait: bool = True) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.secret = env["AGORA_NCS_SECRET"]
        # PORT as a platform sets it: in sandbox mode without PUBLIC_URL it is where agents
        # reach this instance's tools endpoint.
        self.process = Process(name, [str(VENV_BIN / "gunicorn"), "app:app", "--bind",
                                      f"127.0.0.1:{port}", "--workers", str(workers)],
                               {**env, "PORT": str(port)}, log_dir, f"{self.url}/healthz",
                               wait=wait)
        self.session = requests.Session()

    def post_raw(self, body: bytes, headers: dict[str, str]) -> requests.Response:
        return self.session.post(f"{self.url}/webhook", data=body, timeout=15,
                                 headers={"Content-Type": "application/json", **headers})

    def event(self, event_type: int, *, channel: str, seq: int, uid: Any = 111,
              product_id: int = 1, notice_id: str | None = None, reason: int | None = None,
              secret: str | None = None, session: requests.Session | None = None,
              ) -> requests.Response:
        payload: dict[str, Any] = {"channelName": channel, "uid": uid, "platform": 6,
                                   "clientSeq": seq, "ts": int(time.time())}
        if reason is not None:
            payload.update(reason=reason, duration=5)
        body = json.dumps({"noticeId": notice_id or uuid.uuid4().hex, "productId": product_id,
                           "eventType": event_type, "notifyMs": int(time.time() * 1000),
                           "sid": uuid.uuid4().hex, "payload": payload}).encode()
        return (session or self.session).post(
            f"{self.url}/webhook", data=body, timeout=15,
            headers={"Content-Type": "application/json", **sign(secret or self.secret, body)})


def base_env(database_url: str, sandbox_port: int, secrets: dict[str, str]) -> dict[str, str]:
    """The environment shared by the service and the sandbox: sandbox mode (no app id), with
    distinctive secrets so tests can look for them in the output."""
    # Nor this process's metrics folder (a unit test may have run gunicorn.conf.py's hook
    # here): each service's arbiter makes its own.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AGORA_", "SANDBOX_", "CONVOAI_", "SIP_", "PROMETHEUS_"))}
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env.update({
        "AGORA_APP_ID": "", "APP_ID": "", "DATABASE_URL": database_url,
        "SANDBOX_URL": sandbox_url, "LOG_LEVEL": "INFO",
        "AGORA_CUSTOMER_SECRET": secrets["customer_secret"],
        "AGORA_NCS_SECRET": secrets["ncs_secret"],
        "OPENAI_API_KEY": secrets["openai_api_key"],
        "ELEVENLABS_API_KEY": secrets["elevenlabs_api_key"],
        "SANDBOX_CUSTOMER_SECRET": secrets["customer_secret"],
        "SANDBOX_NCS_SECRET": secrets["ncs_secret"],
        "PYTHONUNBUFFERED": "1",
        # A short grace window; the join's idle_timeout is never below it.
        "REJOIN_GRACE_S": "2",
        # The hang-up follows a persona's goodbye after about the time it takes to say, kept
        # within these bounds (production: 3 to 20 s; the brief persona's takes about 5.6 s).
        "GOODBYE_WAIT_MIN_S": "0.5", "GOODBYE_WAIT_MAX_S": "1",
        # Each worker's sweeper and dialer look for due work every half second (production: 2 s),
        # so what a test waits for (a grace window's end, a settled attempt, the next dial) is
        # picked up soon after it is due.
        "SWEEP_INTERVAL_S": "0.5",
        # The background listing of agents (orphans, calls whose agent is gone) runs once, at
        # start, and then not for a day: a stack lives the whole session, and a test that plants
        # an orphan and runs `flask calls reconcile` (which always lists) must not find it
        # already stopped by a worker's periodic run.
        "RECONCILE_INTERVAL_S": "86400",
        # Post-call analyses are queued at once (no wait for a late history notification).
        "ANALYSIS_DELAY_S": "0",
        # A user persona (PERSONAS_DIR) with a short idle timeout, and routes to built-ins.
        "PERSONAS_DIR": str(ROOT / "tests" / "integration" / "personas"),
        "PERSONA_ROUTES": "idle_*=quick,brief_*=brief,tarot_*=tarot,orders_*=orders",
        # The SIP gateway's hooks, shared with the sandbox's gateway.
        "SIP_LOOKUP_AUTH": LOOKUP_AUTH,
        "SIP_LOOKUP_TOKEN": LOOKUP_TOKEN, "SANDBOX_LOOKUP_TOKEN": LOOKUP_TOKEN,
        "SIP_EVENTS_TOKEN": EVENTS_TOKEN, "SANDBOX_OUTBOUND_ANSWER_DELAY_S": "0.5",
        "SANDBOX_OUTBOUND_CALL_DURATION_S": "2",
        # A number that does not answer rings 1 s (the sandbox's default: 2 s), still longer
        # than one that answers takes.
        "SANDBOX_OUTBOUND_RING_TIMEOUT_S": "1",
        # Every test client is 127.0.0.1 and the suite fails authentication on purpose many
        # times a minute; tests/integration/test_rate_limits.py runs with a low limit of its own.
        "RATE_LIMIT_PER_MINUTE": "10000",
        # Day-long windows: a test that counts hits (and expects a refusal) never sees its count
        # restart at a window boundary mid-test, so it need not wait for a fresh minute.
        "RATE_LIMIT_WINDOW_S": str(RATE_LIMIT_WINDOW_S),
        # Storms of 40 simultaneous calls; the cost guards' own test sets a low cap.
        "MAX_CONCURRENT_CALLS": "1000",
    })
    return env


def stack_database(backend: str, log_dir: Path, name: str) -> str:
    """A database of a stack's own: a SQLite file in ``log_dir``, or the PostgreSQL database
    ``name`` made anew (servers that outlive a test need a database nobody else drops)."""
    if backend == "sqlite":
        return f"sqlite:///{Path(log_dir) / 'service.db'}"
    return fresh_database(postgres_url_or_skip(), name)


@dataclass
class Running:
    """A running sandbox and the service instances in front of it."""

    sandbox: Sandbox
    services: list[Service]
    env: dict[str, str]
    database_url: str

    @property
    def service(self) -> Service:
        return self.services[0]


@contextmanager
def running_stack(log_dir: Path, database_url: str, secrets: dict[str, str], *,
                  env: Mapping[str, str] | Callable[[list[str]], Mapping[str, str]] = (),
                  instances: int = 1, workers: int = 2, name: str = "service",
                  notify: int | None = 0) -> Iterator[Running]:
    """The one way the suite starts the sandbox and the service under gunicorn: ``instances``
    services (started together, on one database) behind one sandbox, stopped on exit.

    ``env`` is added to :func:`base_env`'s, or is a function of the services' URLs returning
    what to add. The sandbox's ConvoAI notifications go to instance ``notify`` (None: not set).
    """
    sandbox_port, ports = free_port(), [free_port() for _ in range(instances)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    full_env = base_env(database_url, sandbox_port, secrets)
    if notify is not None:
        full_env["SANDBOX_WEBHOOK_URL"] = f"{urls[notify]}/webhook"
    full_env.update(env(urls) if callable(env) else env)
    names = [name] if instances == 1 else [f"{name}-{n}" for n in range(instances)]
    # The sandbox and the services start together (the services migrate the fresh database at
    # once, under the migration lock); each service is first asked for its health, the request
    # that starts its workers' periodic runners, only once the sandbox answers.
    sandbox = Sandbox(log_dir, full_env, sandbox_port, wait=False)
    services: list[Service] = []
    try:
        for port, label in zip(ports, names, strict=True):
            services.append(Service(log_dir, full_env, port, workers=workers, name=label,
                                    wait=False))
        sandbox.process.wait_healthy()
        with ThreadPoolExecutor(instances) as pool:
            futures = [pool.submit(service.process.wait_healthy) for service in services]
        for future in futures:
            if (error := future.exception()) is not None:
                raise error
        yield Running(sandbox, services, full_env, database_url)
    finally:
        # Each instance's graceful shutdown takes a moment: they are stopped together, then the
        # sandbox (which they may still be talking to while they stop).
        with ThreadPoolExecutor(max(1, len(services))) as pool:
            stopped = [pool.submit(service.process.stop) for service in services]
        sandbox.process.stop()
        for future in stopped:
            future.result()
