"""The sandbox's in-memory world: one lock guarding every agent, call, log and fault.

It all lives in one process (the server is threaded, never multi-process), so one RLock is
enough. Nothing here does I/O; callers release the lock before sleeping or sending.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from sandbox.clock import Clock
from sandbox.config import SandboxConfig
from sandbox.faults import Faults

LOG_LIMIT = 10_000  # entries kept in each introspection log


@dataclass
class Presence:
    """Whether a simulated caller is in a channel, and since when (Unix seconds)."""

    present: bool
    since: float
    #: The caller follows a script (``flask simulate call --script``): no automatic turns.
    scripted: bool = False


class World:
    """Shared mutable state of one sandbox instance (see module docstring for the locking)."""

    def __init__(self, config: SandboxConfig, clock: Clock, rng: random.Random) -> None:
        self.lock = threading.RLock()
        self.config = config
        self.clock = clock
        self.rng = rng
        self.webhook_url = config.webhook_url
        self.clear()

    def clear(self) -> None:
        """Forget every agent, call, gateway record, log entry and fault (/_sandbox/reset)."""
        with self.lock:
            self.faults = Faults()
            self.agents: dict[str, Any] = {}  # agent_id -> agents.Agent, in creation order
            self.names_used: set[str] = set()
            self.presence: dict[tuple[str, str], Presence] = {}
            self.calls: dict[str, Any] = {}  # call id -> callers.Call
            self.sip_calls: dict[str, Any] = {}  # gateway callid -> sip_models.GatewayCall
            self.sip_reservations: dict[str, Any] = {}  # id -> sip_models.Reservation
            self.phone_calls: dict[str, Any] = {}  # agent_id -> telephony.PhoneCall (/call)
            self.requests: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
            self.deliveries: deque[Any] = deque(maxlen=LOG_LIMIT)  # ncs_sender.Delivery
            self.shop_requests: list[dict[str, Any]] = []  # sandbox/shop.py
            self.llm_requests: list[Any] = []  # sandbox/llm.py
            self.llm_failures = 0  # the next N chat completions answer 503
            self.held: dict[str, list[Any]] = {}  # channel -> deliveries held back (reorder)
            self.held_since: dict[str, float] = {}
            self._last_client_seq = 0
            self._delivery_seq = 0

    @property
    def concurrency_limit(self) -> int:
        """Agora's per-App-ID limit, unless a fault overrides it."""
        override = self.faults.concurrency_limit
        return self.config.concurrency_limit if override is None else override

    def new_id(self, length: int = 24, alphabet: str = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789") -> str:
        """A random id from the injected RNG (deterministic in tests)."""
        with self.lock:
            return "".join(self.rng.choice(alphabet) for _ in range(length))

    def new_notice_id(self) -> str:
        """A noticeId in the shape of Agora's examples ("2000001428:4330:107", three numbers),
        unique per event (copies of one event share it). What the numbers mean is not
        documented: here they are random, 10, 4 and 3 digits long like the example's."""
        with self.lock:
            parts = (self.rng.randrange(10**9, 10**10), self.rng.randrange(10**3, 10**4),
                     self.rng.randrange(10**2, 10**3))
        return ":".join(map(str, parts))

    def new_call_id(self) -> str:
        """A UUID-shaped id for a gateway call (its ``callid``)."""
        with self.lock:
            bits = f"{self.rng.getrandbits(128):032x}"
        return f"{bits[:8]}-{bits[8:12]}-{bits[12:16]}-{bits[16:20]}-{bits[20:]}"

    def next_client_seq(self, now: float) -> int:
        """RTC clientSeq: millisecond time, but strictly increasing across the sandbox."""
        with self.lock:
            self._last_client_seq = max(int(now * 1000), self._last_client_seq + 1)
            return self._last_client_seq

    def next_delivery_seq(self) -> int:
        with self.lock:
            self._delivery_seq += 1
            return self._delivery_seq
