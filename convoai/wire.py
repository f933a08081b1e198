"""Run a callback the moment a request is on the wire, before its answer is awaited.

The webhook decides a new call under the store's write lock and must not let the agent's join
wait for that decision's commit (a commit's tail on a busy disk is the largest part of what the
service adds before ConvoAI hears of a call), nor commit only once ConvoAI has answered (the lock
would be held for a whole round trip). So the commit runs in between: right after the join's bytes
are handed to the operating system, while ConvoAI is still reading them.

``requests`` has no hook between sending and receiving, but urllib3 lets a pool choose its
connection class. :class:`WireHookAdapter` mounts connections that fire the calling thread's
pending callback (set with :func:`on_wire`) once the request has been written, or before a new
connection is opened, so a TCP or TLS handshake with a far-away host never runs under the lock.
A callback fires at most once; :func:`on_wire` fires it on leaving the block if no connection
did (a mocked transport, an error before any connection), so the caller can rely on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_pending = threading.local()


def fire() -> None:
    """Run this thread's pending callback, if any, and forget it."""
    callback = getattr(_pending, "callback", None)
    if callback is not None:
        _pending.callback = None
        callback()


@contextmanager
def on_wire(callback: Callable[[], None] | None) -> Iterator[None]:
    """Within the block, ``callback`` runs once, as soon as a request of this thread is written
    (or is about to open a connection); at the latest when the block ends. It must not raise:
    it runs inside urllib3, where an exception would abandon the request."""
    if callback is None:
        yield
        return
    _pending.callback = callback
    try:
        yield
    finally:
        fire()


class _Hooked:
    """Mixed into urllib3's connections: fire before connecting and after sending."""

    def connect(self) -> None:
        fire()
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)  # type: ignore[misc]
        fire()


class _HookedHTTPConnection(_Hooked, HTTPConnection):
    pass


class _HookedHTTPSConnection(_Hooked, HTTPSConnection):
    pass


class _HookedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _HookedHTTPConnection


class _HookedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HookedHTTPSConnection


class WireHookAdapter(HTTPAdapter):
    """requests' adapter, with connections that honour :func:`on_wire`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HookedHTTPPool,
                                                   "https": _HookedHTTPSPool}
