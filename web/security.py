"""Limits on failed authentication (and on the public /try page) per client address, the
client address itself (werkzeug's ProxyFix behind PROXY_HOPS proxies), and the headers every
JSON answer carries.

Views declare their limits: ``@rate_limit_failed_auth()`` on a view locked by a guessable token,
``@rate_limit(purpose)`` on one whose every request counts. Every failed authentication (a
raised Unauthorized, any other 401, a view's ``refuse_failed_credential()``) is counted here.

The counters live in the store's ``rate_limits`` table, so every worker and every instance sees
the same count. A limiter that cannot reach the store lets the request through: an outage must
never become a 5xx, nor block a correctly signed NCS event. cors.py owns CORS, pages_security.py
CSRF and the HTML pages' own headers (CSP and friends); nothing here repeats them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from config import Settings
from store import Store, StoreUnavailable
from web import cors
from web.cors import API_PREFIX
from web.errors import TooManyRequests, Unauthorized, api_error_response

logger = logging.getLogger(__name__)

WINDOW_S = 60
#: Counter purposes: failed authentication anywhere, and every request to the public /try page.
AUTH = "auth"
TRY_PAGE = "try"
HSTS = "max-age=31536000"
_COUNTED = "_security_auth_failure_counted"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Verdict:
    """Whether a client may go on, and if not, in how many seconds it may try again."""

    allowed: bool
    retry_after_s: int = 0


ALLOWED = Verdict(True)


class RateLimiter:
    """Fixed one-minute windows per (purpose, client address), counted in the store.

    ``limit`` hits are allowed in a window; the next one is refused until the window ends. A
    limit of 0 turns the limiter off. Keys are an HMAC of purpose and address under ``key_salt``
    (a server secret), so the table holds no address that could be read back.
    """

    def __init__(self, store: Store, *, limit: int, key_salt: bytes,
                 clock: Callable[[], float] = time.time, window_s: int = WINDOW_S) -> None:
        self.store = store
        self.limit = limit
        self.clock = clock
        self.window_s = window_s
        self._salt = key_salt

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def key(self, purpose: str, address: str) -> str:
        return hmac.new(self._salt, f"{purpose}\0{address}".encode(), hashlib.sha256).hexdigest()

    def hit(self, purpose: str, address: str) -> Verdict:
        """Count one hit, atomically, and say whether the client is still within its limit."""
        if not self.enabled:
            return ALLOWED
        now = self.clock()
        try:
            hits, started = self.store.count_hit(self.key(purpose, address),
                                                 self._window_start(now))
        except StoreUnavailable as exc:
            return self._fail_open("hit", purpose, exc)
        if hits == 1:
            self._prune(now)
        return self._verdict(hits > self.limit, started, now)

    def check(self, purpose: str, address: str) -> Verdict:
        """Whether the client has used up its limit in this window, without counting a hit."""
        if not self.enabled:
            return ALLOWED
        now = self.clock()
        try:
            counted = self.store.counted_hits(self.key(purpose, address))
        except StoreUnavailable as exc:
            return self._fail_open("check", purpose, exc)
        if counted is None or counted[1] < self._window_start(now):
            return ALLOWED
        hits, started = counted
        return self._verdict(hits >= self.limit, started, now)

    def _window_start(self, now: float) -> float:
        return float(math.floor(now / self.window_s) * self.window_s)

    def _verdict(self, over: bool, window_start: float, now: float) -> Verdict:
        if not over:
            return ALLOWED
        return Verdict(False, max(1, math.ceil(window_start + self.window_s - now)))

    def _prune(self, now: float) -> None:
        """Drop counters of finished windows. Run when a key starts a new window, in its own
        short transaction (so it never holds a counter's row while waiting for another)."""
        try:
            self.store.prune_rate_counters(self._window_start(now) - self.window_s)
        except StoreUnavailable as exc:
            logger.info("rate_limit.prune_skipped", extra={"error": type(exc).__name__})

    def _fail_open(self, operation: str, purpose: str, exc: Exception) -> Verdict:
        logger.warning("rate_limit.store_unavailable", extra={
            "operation": operation, "purpose": purpose, "error": type(exc).__name__,
            "outcome": "allowed"})
        return ALLOWED


def client_address(remote_addr: str | None) -> str:
    """The address to count a client under: the request's ``remote_addr``, which werkzeug's
    ProxyFix (installed by init_app with PROXY_HOPS) has already set to the client's address as
    our outermost proxy saw it. IPv6 clients are counted per /64, the block one subscriber
    usually holds, so rotating addresses inside it gains nothing."""
    return _normalise(remote_addr or "") or "unknown"


def trust_proxies(app: Flask, hops: int) -> None:
    """With ``hops`` = n proxies in front of the service, take the client address from the n-th
    X-Forwarded-For entry from the right (the one our outermost proxy wrote; anything further
    left came from the client and is not trusted). Only X-Forwarded-For: the scheme, host and
    prefix headers are left alone, as before."""
    if hops > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=0, x_host=0, x_port=0, x_prefix=0)


def _normalise(text: str) -> str:
    candidate = text.strip()
    if candidate.startswith("[") and "]" in candidate:  # [v6]:port
        candidate = candidate[1:candidate.index("]")]
    elif candidate.count(":") == 1:  # v4:port
        candidate = candidate.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return candidate
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def key_salt(settings: Settings) -> bytes:
    """The same in every worker and instance of one deployment; changes with its secrets."""
    material = f"{settings.agora_ncs_secret}\0{settings.agora_app_certificate}".encode()
    return hmac.new(material, b"phone-agent rate limit keys", hashlib.sha256).digest()


# -- Flask wiring -----------------------------------------------------------------------------


def init_app(app: Flask, *, clock: Callable[[], float] = time.time) -> None:
    """Install the limiter (app.extensions["rate_limiter"]), the client address behind
    PROXY_HOPS proxies, the count of failed authentication, CORS and the JSON answers' headers.
    Which views are limited is declared on the views (rate_limit_failed_auth, rate_limit)."""
    settings: Settings = app.extensions["settings"]
    app.extensions["rate_limiter"] = RateLimiter(
        app.extensions["store"], limit=settings.rate_limit_per_minute,
        key_salt=key_salt(settings), clock=clock, window_s=settings.rate_limit_window_s)
    trust_proxies(app, settings.proxy_hops)
    app.register_error_handler(Unauthorized, _unauthorized)
    app.after_request(_after_request)
    cors.init_app(app, cors.parse_origins(settings.cors_origins))


def rate_limit_failed_auth(when: Callable[[Settings], bool] | None = None) -> Callable[[F], F]:
    """For a view whose only lock is a token a brute force could guess: an address over its
    failed-authentication limit is refused (429) before the token is even compared, so guessing
    gets nothing to learn from. ``when`` (given the settings) says whether the lock is on."""
    return _limited(AUTH, when, count=False)


def rate_limit(purpose: str, when: Callable[[Settings], bool] | None = None) -> Callable[[F], F]:
    """Count every request to the view against the client's address under ``purpose``; past
    the limit, 429. ``when`` (given the settings) says whether the limit applies."""
    return _limited(purpose, when, count=True)


def _limited(purpose: str, when: Callable[[Settings], bool] | None, *,
             count: bool) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if when is None or when(current_app.extensions["settings"]):
                limiter: RateLimiter = current_app.extensions["rate_limiter"]
                address = request_address()
                verdict = limiter.hit(purpose, address) if count else limiter.check(purpose,
                                                                                    address)
                if not verdict.allowed:
                    raise _refusal(verdict, purpose)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def note_failed_authentication() -> TooManyRequests | None:
    """Count the current request's failed authentication against its client address (once per
    request). Returns the error to answer instead when the address is over its limit."""
    limiter: RateLimiter | None = current_app.extensions.get("rate_limiter")
    if limiter is None or g.get(_COUNTED):
        return None
    setattr(g, _COUNTED, True)
    verdict = limiter.hit(AUTH, request_address())
    return None if verdict.allowed else _refusal(verdict, AUTH)


def refuse_failed_credential() -> None:
    """For a view that answers a wrong credential with something other than 401 (a 404 that
    hides the path): count it like a 401, and raise the 429 past the limit."""
    refusal = note_failed_authentication()
    if refusal is not None:
        raise refusal


def _unauthorized(exc: Unauthorized) -> Response:
    # Every failed authentication counts against the client's address; past the limit, the
    # answer is 429 instead of 401.
    return api_error_response(note_failed_authentication() or exc)


def _after_request(response: Response) -> Response:
    if response.status_code == 401 and not g.get(_COUNTED):
        # A 401 that was not raised as Unauthorized (an HTML login page's, a werkzeug abort):
        # counted all the same.
        refusal = note_failed_authentication()
        if refusal is not None:
            response = api_error_response(refusal)
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if _is_api():
        # Call records, numbers and transcripts: never kept by a browser or a shared cache.
        headers.setdefault("Cache-Control", "no-store")
    if not current_app.extensions["settings"].sandbox:
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def _is_api() -> bool:
    return request.path.startswith(API_PREFIX)


def request_address() -> str:
    """The current request's client address, as the limits count it (see client_address)."""
    return client_address(request.remote_addr)


def _refusal(verdict: Verdict, purpose: str) -> TooManyRequests:
    logger.warning("rate_limit.refused", extra={"purpose": purpose, "path": request.path,
                                                "retry_after_s": verdict.retry_after_s})
    what = ("too many failed authentication attempts" if purpose == AUTH
            else "too many requests")
    return TooManyRequests(f"{what} from your address; retry in {verdict.retry_after_s} s",
                           retry_after_s=verdict.retry_after_s)


