"""Keep-alive connections stay in step after an early refusal.

A request refused before its body is read (413 over MAX_CONTENT_LENGTH, 401 or 429 before any
view, 404 or 405 with a body) leaves that body on the connection. A proxy or load balancer that
reuses the connection would have its next request lost behind it. So, before the answer leaves,
whatever the app did not read is read and discarded, up to DRAIN_LIMIT_BYTES; a body larger
than that is not read, and the answer says `Connection: close`. The drain waits at most
DRAIN_TIMEOUT_S for the body; a client that announced a body it does not send gets its answer
then, and its connection is closed.

Servers, as they are: gunicorn 27's gthread worker drains at most 64 KiB of a body itself, after
an answer it has already sent as keep-alive, then closes (older releases read the whole body,
however large); and it drops an application's Connection header as hop-by-hop. So the drain is
done here, before the answer, and gunicorn.conf.py's pre_request hook marks a request that
declares a body too large to drain, so that gunicorn answers `Connection: close` and closes. A
chunked body found too large only while draining is closed by gunicorn, its answer still saying
keep-alive. Werkzeug's development server (`flask run`) closes every connection after one
answer, so nothing falls out of step there.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

#: Bytes of an unread body read and discarded to keep its connection; beyond, it closes.
DRAIN_LIMIT_BYTES = 4 * 1024 * 1024
#: How long the rest of a body may take to arrive. A client that announces a body and waits
#: for the answer before sending it (or sends it slowly) must not hold a worker thread.
DRAIN_TIMEOUT_S = 2.0
_CHUNK = 64 * 1024


def too_large_to_drain(content_length: str | None, limit: int = DRAIN_LIMIT_BYTES) -> bool:
    """Whether a declared body is too large to drain (or its length unreadable)."""
    if not content_length:
        return False
    try:
        return int(content_length) > limit
    except ValueError:
        return True


class DrainUnreadBody:
    """WSGI middleware: reads what the app left of the request body before the answer goes out,
    and says `Connection: close` when it cannot (see the module's docstring)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], *,
                 limit: int = DRAIN_LIMIT_BYTES, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        self.app = app
        self.limit = limit
        self.timeout_s = timeout_s

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # The app has built its answer (it calls start_response last), so it will read no
            # more of the body.
            if not self._drained(environ):
                headers = [(k, v) for k, v in headers if k.lower() != "connection"]
                headers.append(("Connection", "close"))
            return start_response(status, headers, exc_info)

        return self.app(environ, start)

    def _drained(self, environ: dict[str, Any]) -> bool:
        """Read and discard the rest of the body; False when some of it is left."""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        length = environ.get("CONTENT_LENGTH")
        if not chunked:
            if too_large_to_drain(length, self.limit):
                return False
            if not length or int(length) == 0:
                return True  # no body
        if not environ.get("wsgi.input_terminated"):
            # Reading past the body could wait for the client's next request: a server that
            # does not end the stream at the body's end (gunicorn does) frames it itself.
            return True
        stream = environ["wsgi.input"]
        # gunicorn hands the connection's socket over (gunicorn.socket): the drain's reads are
        # bounded in time through it. Without one, the server's own socket timeout applies.
        sock = environ.get("gunicorn.socket")
        deadline = time.monotonic() + self.timeout_s
        previous = sock.gettimeout() if sock is not None else None
        drained = 0
        try:
            while drained <= self.limit:
                if sock is not None:
                    sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = stream.read(min(_CHUNK, self.limit + 1 - drained))
                if not chunk:
                    return True
                drained += len(chunk)
        except OSError:  # TimeoutError included: the body did not come in time
            if sock is not None:
                # The rest of the body is still owed: nothing more is read from this
                # connection, so the server sees its end and closes it after the answer.
                try:
                    sock.shutdown(socket.SHUT_RD)
                except OSError:
                    pass
            return False
        finally:
            if sock is not None:
                try:
                    sock.settimeout(previous)
                except OSError:
                    pass
        return False
