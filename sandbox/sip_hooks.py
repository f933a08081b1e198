"""Gateway lifecycle webhooks (reference B.3): unsigned JSON POSTs, fire-and-forget.

Like the real gateway, the sender never retries: a non-200 answer, a timeout or a connection
error is logged and the hook dropped. Once started it posts from one background thread (so a
call's events keep their order and no API request waits on the service); before ``start()``
(unit tests build the app with ``start_background=False``) it posts inline.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from sandbox.ncs_sender import Status

logger = logging.getLogger("sandbox.sip")

#: The gateway's documented delivery limits: 2 s to connect, 5 s in all.
HOOK_TIMEOUT = (2.0, 5.0)


class HttpPoster(Protocol):
    """What the gateway needs from HTTP: ``requests`` itself, or a test double."""

    def post(self, url: str, *, json: Any = None, headers: dict[str, str] | None = None,
             timeout: Any = None) -> Any: ...


@dataclass
class Hook:
    """One webhook to post, and what became of it."""

    url: str
    body: dict[str, Any]
    status: Status = "pending"

    def public(self) -> dict[str, Any]:
        return {"event": self.body["event"], "timestamp": self.body["timestamp"],
                "url": self.url, "status": self.status, "body": self.body}


Done = Callable[[Hook, Status], None]


class HookSender:
    """Posts hooks in submission order; see the module docstring for threading."""

    def __init__(self, http: HttpPoster) -> None:
        self.http = http
        self._queue: queue.Queue[tuple[Hook, Done] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def submit(self, hook: Hook, done: Done) -> None:
        if self._thread is None:
            done(hook, self._post(hook))
        else:
            self._queue.put((hook, done))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="sandbox-sip-hooks",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=1.0)
            self._thread = None

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            hook, done = item
            done(hook, self._post(hook))

    def _post(self, hook: Hook) -> Status:
        try:
            response = self.http.post(hook.url, json=hook.body, timeout=HOOK_TIMEOUT)
        except requests.RequestException as exc:
            status: Status = f"error: {type(exc).__name__}"
        else:
            status = response.status_code
        if status != 200:
            logger.warning("sip.hook_failed event=%s callid=%s status=%s",
                           hook.body.get("event"), hook.body.get("callid"), status)
        return status
