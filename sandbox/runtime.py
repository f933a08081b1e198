"""The running sandbox: world state, agents, callers, SIP gateway and NCS outbox, plus the
ticker thread.

One Sandbox per Flask app, kept in ``app.extensions["sandbox"]``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import random
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sandbox.agent_tools import AgentTools, Spawn, in_thread
from sandbox.agents import AgentBook
from sandbox.callers import CallSimulator
from sandbox.clock import Clock, SystemClock
from sandbox.config import SandboxConfig
from sandbox.errors import AgoraError
from sandbox.ncs_sender import HttpTransport, Transport
from sandbox.outbox import Outbox
from sandbox.redact import fingerprint, redact
from sandbox.scripted_calls import ScriptedCalls
from sandbox.sip_gateway import Gateway
from sandbox.sip_hooks import HttpPoster
from sandbox.state import World
from sandbox.telephony import Telephony
from sandbox.tokens import TokenInvalid, verify_rest_token
from sandbox.voicemail import Voicemail

logger = logging.getLogger("sandbox")
#: ``Authorization: agora token=<token>``, ConvoAI's token scheme (reference 1.3).
REST_TOKEN_PREFIX = "agora token="
T = TypeVar("T")


class Sandbox:
    """Facade the blueprints call; owns the background threads."""

    def __init__(self, config: SandboxConfig, *, clock: Clock | None = None,
                 transport: Transport | None = None, rng: random.Random | None = None,
                 sip_http: HttpPoster | None = None, spawn: Spawn = in_thread) -> None:
        clock = clock or SystemClock()
        self.config = config
        self.clock = clock
        self.world = World(config, clock, rng or random.Random())
        self.transport = transport or HttpTransport(clock, timeout_s=config.ncs_timeout_s)
        self.outbox = Outbox(self.world, self.transport)
        self.agents = AgentBook(self.world)
        self.tools = AgentTools(self.world, self.outbox, spawn=spawn)
        self.calls = CallSimulator(self.world)
        self.gateway = Gateway(self.world, self.calls, self.outbox, sip_http)
        self.telephony = Telephony(self.world, self.agents, self.calls)
        self.scripts = ScriptedCalls(self.world, self.tools, self.hang_up, spawn=spawn)
        self.voicemail = Voicemail(self.world, self.tools, spawn=spawn)
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the NCS transport and the ~50 ms ticker that drives timed transitions."""
        self.transport.start()
        self.gateway.start()
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._run_ticker, name="sandbox-ticker",
                                            daemon=True)
            self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1.0)
            self._ticker = None
        self.transport.stop()
        self.gateway.stop()

    def _run_ticker(self) -> None:
        while not self._stop.wait(self.config.tick_interval_s):
            try:
                self.tick()
            except Exception:  # keep the simulation alive; the traceback is logged
                logger.exception("sandbox.tick_failed")

    def tick(self) -> None:
        """Apply every transition due by now and send the events they produced."""
        now = self.clock.now()
        # Callers (and gateway calls) first, so an agent sees a caller who has just left.
        self.outbox.publish(self.calls.tick(now) + self.gateway.tick(now)
                            + self.telephony.tick(now) + self.agents.tick(now))
        self.outbox.release_held(now)
        self.tools.connect_due()
        self.scripts.tick(now)
        self.voicemail.tick()

    def reset(self) -> None:
        self.world.clear()

    # -- request plumbing -------------------------------------------------------------------

    def check_auth(self, header: str | None) -> None:
        """Either of Agora's two schemes (reference 1.3), else 401 like Agora (v2.7): Basic
        with the configured customer id/secret, or ``agora token=<token>`` with an AccessToken2
        for the App ID (sandbox/tokens.py ``verify_rest_token``)."""
        text = (header or "").strip()
        if text.startswith(REST_TOKEN_PREFIX):  # the literal prefix, as Agora writes it
            self._check_rest_token(text.removeprefix(REST_TOKEN_PREFIX).strip())
            return
        expected = f"{self.config.customer_id}:{self.config.customer_secret}".encode()
        scheme, _, encoded = text.partition(" ")
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            given = b""
        if scheme.lower() != "basic" or not hmac.compare_digest(given, expected):
            raise AgoraError(401, "InvalidPermission",
                             "authentication failed: expected Basic auth with the customer id "
                             "and secret, or agora token=<token>")

    def _check_rest_token(self, token: str) -> None:
        try:
            verify_rest_token(token, app_id=self.config.app_id,
                              certificate=self.config.app_certificate, now=self.clock.now())
        except TokenInvalid as exc:
            raise AgoraError(401, "InvalidPermission",
                             f"authentication failed: {exc}") from exc

    def check_app_id(self, app_id: str) -> None:
        if app_id != self.config.app_id:
            raise AgoraError(403, "InvalidPermission",
                             f"App ID {app_id} is not enabled for these credentials")

    def with_faults(self, kind: str, operation: Callable[[], T]) -> T:
        """Run a join/leave under the injected latency and queued errors."""
        with self.world.lock:
            latency = getattr(self.world.faults, f"{kind}_latency_s")
            injected = self.world.faults.take(kind)
        if latency:
            self.clock.sleep(latency)
        if injected is not None:
            if injected.sleep_s:
                self.clock.sleep(injected.sleep_s)
            if injected.apply:
                try:
                    operation()
                except AgoraError:
                    pass  # the injected error is the answer either way
            raise injected.error()
        return operation()

    def record_request(self, *, method: str, path: str, kind: str, status: int,
                       body: Any, query: dict[str, str], authorization: str | None) -> None:
        """Log a ConvoAI request with every secret value replaced by its fingerprint."""
        entry = {
            "at": self.clock.now(), "method": method, "path": path, "kind": kind,
            "status": status, "query": query, "body": redact(body),
            "authorization": fingerprint(authorization) if authorization else None,
        }
        with self.world.lock:
            self.world.requests.append(entry)

    def requests(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self.world.lock:
            return [r for r in self.world.requests if kind is None or r["kind"] == kind]

    def deliveries(self, **filters: Any) -> list[dict[str, Any]]:
        """NCS deliveries so far, optionally filtered on productId/eventType/channel."""
        with self.world.lock:
            items = [d.public() for d in self.world.deliveries]
        return [d for d in items if all(d[k] == v for k, v in filters.items() if v is not None)]

    # -- control actions that send NCS events at once ---------------------------------------

    def start_call(self, spec: Any) -> dict[str, Any]:
        """A simulated caller; with ``"script": "<name>"`` one who plays that ready script
        (sandbox/scripted_calls.py)."""
        script, spec = self.scripts.prepare(spec)
        call, events = self.calls.start(spec)
        answer: dict[str, Any] = {"channel": call.channel, "uid": call.uid, "id": call.id}
        if script is not None:
            self.scripts.attach(call, script)
            answer["script"] = script
        self.outbox.publish(events)
        return answer

    def hang_up(self, call_id: str) -> None:
        self.outbox.publish(self.calls.hang_up(call_id))

    def place_phone_call(self, body: Any) -> dict[str, Any]:
        """ConvoAI telephony's /call (sandbox/telephony.py): its START/CALLING go out now."""
        answer, events = self.telephony.place(body)
        self.outbox.publish(events)
        return answer

    def hang_up_phone_call(self, agent_id: str) -> None:
        self.outbox.publish(self.telephony.hang_up(agent_id))

    def fail_agent(self, agent_id: str, message: str) -> None:
        self.outbox.publish(self.agents.fail(agent_id, message))

    def expire_agent(self, agent_id: str) -> None:
        self.outbox.publish(self.agents.expire(agent_id))
