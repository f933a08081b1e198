"""Deliver NCS notifications to the service: envelope, signature, faults and transport.

Deliveries leave through a Transport. The real one posts from background threads (one queue per
channel shard, so the events of one channel keep their order); tests inject RecordingTransport
and read what would have been sent. A failed delivery is logged and dropped, never retried
(real NCS retries up to three times; the ``duplicates`` knobs simulate that instead).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import requests

from ncs.signature import sign
from sandbox.clock import Clock

logger = logging.getLogger("sandbox.ncs")

Status = int | str  # an HTTP status, or a word: "pending", "dropped", "held", "error: ..."
Done = Callable[["Delivery", Status], None]


@dataclass
class Delivery:
    """One webhook POST to make (a copy of an event is its own Delivery)."""

    notice_id: str
    product_id: int
    event_type: int
    sid: str
    channel: str
    payload: dict[str, Any]
    secret: str = field(repr=False)
    copy: str = "original"  # original | duplicate | redundant | late_join | fault_duplicate
    seq: int = 0
    status: Status = "pending"
    notify_ms: int | None = None

    def public(self) -> dict[str, Any]:
        """What the control API shows (everything but the signing secret)."""
        return {
            "seq": self.seq, "noticeId": self.notice_id, "productId": self.product_id,
            "eventType": self.event_type, "sid": self.sid, "channel": self.channel,
            "copy": self.copy, "status": self.status, "notifyMs": self.notify_ms,
            "payload": self.payload,
        }

    def copy_as(self, copy: str, notice_id: str | None = None) -> Delivery:
        """Another delivery of the same event (same payload; new noticeId if given)."""
        return replace(self, copy=copy, notice_id=notice_id or self.notice_id, seq=0,
                       status="pending", notify_ms=None, payload=dict(self.payload))


def encode(delivery: Delivery, notify_ms: int) -> tuple[bytes, dict[str, str]]:
    """The exact body bytes and headers NCS would send, signed with the delivery's secret."""
    body = {
        "noticeId": delivery.notice_id,
        "productId": delivery.product_id,
        "eventType": delivery.event_type,
        "notifyMs": notify_ms,
        "sid": delivery.sid,
        "payload": delivery.payload,
    }
    raw = json.dumps(body, separators=(",", ":")).encode("utf-8")
    return raw, {"Content-Type": "application/json", **sign(delivery.secret, raw)}


class Transport(Protocol):
    """Sends deliveries; calls ``done`` with the outcome, possibly from another thread."""

    def submit(self, delivery: Delivery, url: str, done: Done) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Sent:
    """A delivery as RecordingTransport saw it."""

    url: str
    raw: bytes
    headers: dict[str, str]

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.raw)


class RecordingTransport:
    """Captures deliveries instead of posting them; answers ``status`` (default 200)."""

    def __init__(self, clock: Clock, status: int = 200) -> None:
        self.clock = clock
        self.status = status
        self.sent: list[Sent] = []

    def submit(self, delivery: Delivery, url: str, done: Done) -> None:
        notify_ms = int(self.clock.now() * 1000)
        raw, headers = encode(delivery, notify_ms)
        delivery.notify_ms = notify_ms
        self.sent.append(Sent(url, raw, headers))
        done(delivery, self.status)

    def bodies(self, product_id: int | None = None) -> list[dict[str, Any]]:
        """Parsed bodies in sending order, optionally of one product."""
        out = [s.body for s in self.sent]
        return [b for b in out if product_id is None or b["productId"] == product_id]

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> None:
        """Nothing to stop."""


class HttpTransport:
    """Posts deliveries from worker threads, one queue per channel shard."""

    def __init__(self, clock: Clock, *, timeout_s: float = 10.0, workers: int = 4) -> None:
        self.clock = clock
        self.timeout = (2.0, timeout_s)
        self._queues: list[queue.Queue[tuple[Delivery, str, Done] | None]] = [
            queue.Queue() for _ in range(workers)
        ]
        self._threads: list[threading.Thread] = []

    def submit(self, delivery: Delivery, url: str, done: Done) -> None:
        shard = zlib.crc32(delivery.channel.encode("utf-8")) % len(self._queues)
        self._queues[shard].put((delivery, url, done))

    def start(self) -> None:
        if self._threads:
            return
        for number, q in enumerate(self._queues):
            thread = threading.Thread(
                target=self._work, args=(q,), name=f"sandbox-ncs-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        for q in self._queues:
            q.put(None)
        for thread in self._threads:
            thread.join(timeout=1.0)
        self._threads = []

    def _work(self, q: queue.Queue[tuple[Delivery, str, Done] | None]) -> None:
        with requests.Session() as session:
            while (item := q.get()) is not None:
                delivery, url, done = item
                done(delivery, self._post(session, delivery, url))

    def _post(self, session: requests.Session, delivery: Delivery, url: str) -> Status:
        notify_ms = int(self.clock.now() * 1000)
        delivery.notify_ms = notify_ms
        raw, headers = encode(delivery, notify_ms)
        try:
            response = session.post(url, data=raw, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            status: Status = f"error: {type(exc).__name__}"
        else:
            status = response.status_code
        if status != 200:
            logger.warning(
                "ncs.delivery_failed notice_id=%s product=%s event=%s status=%s",
                delivery.notice_id, delivery.product_id, delivery.event_type, status,
            )
        return status
