"""The transport both upstream clients stand on: one owned ``requests.Session``, an explicit
timeout on every call, retries decided by one :class:`~upstream.retry.RetryPolicy`, transport
failures mapped once, the JSON-object check, and request logging without secrets.

A client subclasses :class:`UpstreamClient` and says only what differs: how a response maps to
its errors, what "no response" is called, and which (redacted) fields identify a request in logs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Self

import requests

from .errors import UpstreamFailure
from .retry import RetryPolicy

TimeoutSpec = float | tuple[float, float]
#: Told of every request that failed for good (once, however many attempts it took), and of
#: every 2xx whose body could not be used: the services count them (the clients know no metrics).
FailureHook = Callable[[UpstreamFailure], None]

#: What "no response" is: the exceptions requests raises when none came (or it broke off).
TRANSPORT_ERRORS = (
    requests.Timeout,
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
)


def owned_session(url: str) -> requests.Session:
    """A session for one upstream. requests re-reads proxy and CA settings from the environment
    on every request; they are read once here instead."""
    session = requests.Session()
    proxies = requests.utils.get_environ_proxies(url)
    session.trust_env = False
    session.proxies.update(proxies)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get(
        "CURL_CA_BUNDLE") or True
    return session


class UpstreamClient:
    """Base of the ConvoAI and SIP gateway clients: owns (or borrows) a session and sends."""

    #: Logs go to the subclass's logger as ``<log_name>.request`` and ``<log_name>.retry``.
    log_name: ClassVar[str]
    logger: ClassVar[logging.Logger]

    def __init__(
        self,
        url: str,
        *,
        timeout: TimeoutSpec,
        session: requests.Session | None,
        retry: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] | None = None,
        on_failure: FailureHook | None = None,
    ) -> None:
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        # Jitter from a generator of the client's own: the global one is shared state that
        # other code (and property tests) may rely on.
        self._rand = rand or random.Random().random
        self._on_failure = on_failure
        self._owns_session = session is None
        self._session = session if session is not None else owned_session(url)

    def close(self) -> None:
        """Close the session, if this client created it (a session passed in is the caller's)."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what a client says about itself ---------------------------------------------------

    def _error_for(self, resp: requests.Response, sent: Any) -> UpstreamFailure | None:
        """The error ``resp`` means (``sent`` is the JSON body sent), or None for a success."""
        raise NotImplementedError

    def _unavailable(self, exc: Exception, context: Mapping[str, Any]) -> UpstreamFailure:
        """The error for a request that got no response (``exc`` is requests' exception)."""
        raise NotImplementedError

    def _malformed_error(
        self, what: str, problem: str, resp: requests.Response | None
    ) -> UpstreamFailure:
        """The error for a 2xx whose body we cannot use."""
        raise NotImplementedError

    def _log_extra(self, sent: Any, resp: requests.Response | None) -> dict[str, Any]:
        """Fields for ``<log_name>.request`` beyond the context, status, timing and attempt.
        Never a credential, token or full phone number."""
        return {}

    # -- sending ---------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        context: Mapping[str, Any],
        *,
        policy: RetryPolicy | None = None,
        timeout: TimeoutSpec | None = None,
        budget_s: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request, retrying per ``policy`` (the client's by default); return the
        successful response or raise the client's error. ``context`` identifies the request in
        logs; ``budget_s`` overrides the policy's time budget and caps each attempt's timeout;
        ``kwargs`` go to ``Session.request`` (``json``, ``params``, ``headers``)."""
        policy = policy or self._retry
        if budget_s is not None:
            policy = dataclasses.replace(policy, budget_s=budget_s)
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            attempt_timeout = timeout or self._timeout
            if budget_s is not None:
                # Never let one attempt outlast the caller's budget (NCS waits only 10 s).
                remaining = max(0.5, budget_s - (self._clock() - started))
                attempt_timeout = _cap_timeout(attempt_timeout, remaining)
            try:
                resp = self._exchange(method, url, context, attempt_timeout, attempt, kwargs)
            except UpstreamFailure as exc:
                error = exc
            else:
                found = self._error_for(resp, kwargs.get("json"))
                if found is None:
                    return resp
                error = found
            delay = policy.next_delay(attempt, error, self._clock() - started, self._rand())
            if delay is None:
                # Reported once per request, when it fails for good: a retry that then
                # succeeds is not an error anyone must act on (each retry is logged).
                raise self._failed(error)
            self.logger.warning(
                f"{self.log_name}.retry",
                extra={
                    **context,
                    "status": error.status,
                    "error": type(error).__name__,
                    "attempt": attempt,
                    "delay_ms": round(delay * 1000),
                },
            )
            self._sleep(delay)

    def _exchange(
        self,
        method: str,
        url: str,
        context: Mapping[str, Any],
        timeout: TimeoutSpec,
        attempt: int,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        """One HTTP exchange, logged; no response becomes the client's error, chained."""
        t0 = self._clock()
        resp: requests.Response | None = None
        try:
            resp = self._session.request(method, url, timeout=timeout, **kwargs)
            return resp
        except TRANSPORT_ERRORS as exc:
            raise self._unavailable(exc, context) from exc
        finally:
            self.logger.info(
                f"{self.log_name}.request",
                extra={
                    **context,
                    "status": resp.status_code if resp is not None else None,
                    "elapsed_ms": round((self._clock() - t0) * 1000),
                    "attempt": attempt,
                    **self._log_extra(kwargs.get("json"), resp),
                },
            )

    # -- reading answers -------------------------------------------------------------------

    def _failed(self, error: UpstreamFailure) -> UpstreamFailure:
        """Report ``error`` to the failure hook (which must not raise); return it to raise."""
        if self._on_failure is not None:
            self._on_failure(error)
        return error

    def _malformed(
        self, what: str, problem: str, resp: requests.Response | None = None
    ) -> UpstreamFailure:
        """A 2xx whose body we cannot use, reported as a failure; the caller raises it."""
        return self._failed(self._malformed_error(what, problem, resp))

    def _json_object(self, resp: requests.Response, what: str) -> dict[str, Any]:
        """The response body as a JSON object; an empty body counts as ``{}``."""
        if not resp.content:
            return {}
        try:
            body = resp.json()
        except ValueError:
            raise self._malformed(what, "body is not JSON", resp) from None
        if not isinstance(body, dict):
            raise self._malformed(what, "body is not a JSON object", resp)
        return body


def _cap_timeout(timeout: TimeoutSpec, limit: float) -> TimeoutSpec:
    """``timeout`` with each part no longer than ``limit`` seconds."""
    if isinstance(timeout, tuple):
        connect, read = timeout
        return (min(connect, limit), min(read, limit))
    return min(timeout, limit)
