"""What stands in front of every view: limits on failed authentication (and on the public /try
page) per client address, CORS for the admin API (closed unless CORS_ORIGINS names origins), and
the headers every JSON answer carries.

The counters live in the store's ``rate_limits`` table, so every worker and every instance sees
the same count. A limiter that cannot reach the store lets the request through: an outage must
never become a 5xx, nor block a correctly signed NCS event. pages_security.py owns CSRF and the
HTML pages' own headers (CSP and friends); nothing here repeats them.
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

import sqlalchemy as sa
from flask import Flask, Response, current_app, g, jsonify, request
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from config import Settings
from store.schema import rate_limits
from web.errors import TooManyRequests, api_error_response

logger = logging.getLogger(__name__)

WINDOW_S = 60
#: Counter purposes: failed authentication anywhere, and every request to the public /try page.
AUTH = "auth"
TRY_PAGE = "try"
CORS_METHODS = "GET, POST, DELETE"
CORS_HEADERS = "Authorization, Content-Type"
#: How long a browser may cache an allowed preflight.
CORS_MAX_AGE_S = "600"
HSTS = "max-age=31536000"
_COUNTED = "_security_auth_failure_counted"
#: The NCS webhook's endpoint (ncs/views.py).
NCS_ENDPOINT = "ncs.webhook"


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

    def __init__(self, engine: Engine, *, limit: int, key_salt: bytes,
                 clock: Callable[[], float] = time.time, window_s: int = WINDOW_S) -> None:
        self.engine = engine
        self.limit = limit
        self.clock = clock
        self.window_s = window_s
        self._salt = key_salt
        dialects = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
        self._insert = dialects.get(engine.dialect.name)
        if self._insert is None and limit:
            logger.warning("rate_limit.unsupported_database",
                           extra={"dialect": engine.dialect.name})

    @property
    def enabled(self) -> bool:
        return self.limit > 0 and self._insert is not None

    def key(self, purpose: str, address: str) -> str:
        return hmac.new(self._salt, f"{purpose}\0{address}".encode(), hashlib.sha256).hexdigest()

    def hit(self, purpose: str, address: str) -> Verdict:
        """Count one hit, atomically, and say whether the client is still within its limit."""
        if not self.enabled:
            return ALLOWED
        now = self.clock()
        window = self._window_start(now)
        statement = self._insert(rate_limits).values(  # type: ignore[misc]
            key=self.key(purpose, address), window_start=window, hits=1)
        # A newer window restarts the count; an older one (an instance whose clock lags) only
        # adds to the current count instead of winding the window back.
        newer = statement.excluded.window_start > rate_limits.c.window_start
        statement = statement.on_conflict_do_update(
            index_elements=[rate_limits.c.key],
            set_={"hits": sa.case((newer, 1), else_=rate_limits.c.hits + 1),
                  "window_start": sa.case((newer, statement.excluded.window_start),
                                          else_=rate_limits.c.window_start)},
        ).returning(rate_limits.c.hits, rate_limits.c.window_start)
        try:
            with self.engine.begin() as conn:
                hits, started = conn.execute(statement).one()
        except sa.exc.SQLAlchemyError as exc:
            return self._fail_open("hit", purpose, exc)
        if hits == 1:
            self._prune(now)
        return self._verdict(hits > self.limit, started, now)

    def check(self, purpose: str, address: str) -> Verdict:
        """Whether the client has used up its limit in this window, without counting a hit."""
        if not self.enabled:
            return ALLOWED
        now = self.clock()
        query = sa.select(rate_limits.c.hits, rate_limits.c.window_start).where(
            rate_limits.c.key == self.key(purpose, address))
        try:
            with self.engine.connect().execution_options(readonly=True) as conn, conn.begin():
                row = conn.execute(query).first()
        except sa.exc.SQLAlchemyError as exc:
            return self._fail_open("check", purpose, exc)
        if row is None or row.window_start < self._window_start(now):
            return ALLOWED
        return self._verdict(row.hits >= self.limit, row.window_start, now)

    def _window_start(self, now: float) -> float:
        return float(math.floor(now / self.window_s) * self.window_s)

    def _verdict(self, over: bool, window_start: float, now: float) -> Verdict:
        if not over:
            return ALLOWED
        return Verdict(False, max(1, math.ceil(window_start + self.window_s - now)))

    def _prune(self, now: float) -> None:
        """Drop counters of finished windows. Run when a key starts a new window, in its own
        short transaction (so it never holds a counter's row while waiting for another)."""
        cutoff = self._window_start(now) - self.window_s
        try:
            with self.engine.begin() as conn:
                conn.execute(rate_limits.delete().where(rate_limits.c.window_start < cutoff))
        except sa.exc.SQLAlchemyError as exc:
            logger.info("rate_limit.prune_skipped", extra={"error": type(exc).__name__})

    def _fail_open(self, operation: str, purpose: str, exc: Exception) -> Verdict:
        logger.warning("rate_limit.store_unavailable", extra={
            "operation": operation, "purpose": purpose, "error": type(exc).__name__,
            "outcome": "allowed"})
        return ALLOWED


def client_address(remote_addr: str | None, forwarded_for: list[str], proxy_hops: int) -> str:
    """The address to count a client under.

    With ``proxy_hops`` = n, the n-th X-Forwarded-For entry from the right: each of our n proxies
    appends the address it received the request from, so that entry was written by our outermost
    proxy and everything left of it came from the client (and is not trusted). Without enough
    entries, or with 0 hops, the socket's address. IPv6 clients are counted per /64, the block one
    subscriber usually holds, so rotating addresses inside it gains nothing.
    """
    chosen = remote_addr or ""
    if proxy_hops > 0:
        entries = [e.strip() for header in forwarded_for for e in header.split(",")]
        if len(entries) >= proxy_hops and entries[-proxy_hops]:
            chosen = entries[-proxy_hops]
    return _normalise(chosen) or "unknown"


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


def parse_origins(text: str) -> frozenset[str]:
    """CORS_ORIGINS as a set of origins (config.py has already checked their form)."""
    return frozenset(o.strip().rstrip("/") for o in text.split(",") if o.strip())


def key_salt(settings: Settings) -> bytes:
    """The same in every worker and instance of one deployment; changes with its secrets."""
    material = f"{settings.agora_ncs_secret}\0{settings.agora_app_certificate}".encode()
    return hmac.new(material, b"phone-agent rate limit keys", hashlib.sha256).digest()


# -- Flask wiring -----------------------------------------------------------------------------


def init_app(app: Flask, *, clock: Callable[[], float] = time.time) -> None:
    """Install the limiter (app.extensions["rate_limiter"]), CORS and the API headers."""
    settings: Settings = app.extensions["settings"]
    app.extensions["rate_limiter"] = RateLimiter(
        app.extensions["store"].engine, limit=settings.rate_limit_per_minute,
        key_salt=key_salt(settings), clock=clock)
    app.extensions["cors_origins"] = parse_origins(settings.cors_origins)
    app.before_request(_before_request)
    app.after_request(_after_request)


def note_failed_authentication() -> TooManyRequests | None:
    """Count the current request's failed authentication against its client address. Returns
    the error to answer instead of the 401 when the address is over its limit."""
    limiter: RateLimiter | None = current_app.extensions.get("rate_limiter")
    if limiter is None or g.get(_COUNTED):
        return None
    setattr(g, _COUNTED, True)
    verdict = limiter.hit(AUTH, request_address())
    return None if verdict.allowed else _refusal(verdict, AUTH)


def _before_request() -> Response | None:
    if _is_preflight():
        return _preflight()
    if request.endpoint == NCS_ENDPOINT:
        # Authenticated by its signature, and a signed delivery is never throttled (a refused
        # one is a caller left waiting; a bad signature still counts as a failed credential,
        # in errors.py). Nothing below applies, and every call's first webhook comes this way.
        return None
    limiter: RateLimiter = current_app.extensions["rate_limiter"]
    settings: Settings = current_app.extensions["settings"]
    if _checks_a_token_we_throttle(settings):
        # Refused before the token is even compared: brute force gets nothing to learn from.
        verdict = limiter.check(AUTH, request_address())
        if not verdict.allowed:
            raise _refusal(verdict, AUTH)
    elif _is_try_page() and settings.try_page:
        verdict = limiter.hit(TRY_PAGE, request_address())
        if not verdict.allowed:
            raise _refusal(verdict, TRY_PAGE)
    elif request.endpoint == "sip.gateway_event" and _wrong_events_token(settings):
        # The view answers a wrong path token with 404 (as if the path did not exist); it is
        # still a failed credential, so it counts like any 401.
        refusal = note_failed_authentication()
        if refusal is not None:
            raise refusal
    return None


def _after_request(response: Response) -> Response:
    if response.status_code == 401 and not g.get(_COUNTED):
        # A 401 that did not come through errors.py's Unauthorized handler (an HTML login
        # page's, a werkzeug abort): counted all the same.
        refusal = note_failed_authentication()
        if refusal is not None:
            response = api_error_response(refusal)
    _add_cors_headers(response)
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if _is_api():
        # Call records, numbers and transcripts: never kept by a browser or a shared cache.
        headers.setdefault("Cache-Control", "no-store")
    if not current_app.extensions["settings"].sandbox:
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def _checks_a_token_we_throttle(settings: Settings) -> bool:
    """Admin-type routes: those whose only lock is a token a brute force could guess."""
    if _is_api():
        return True
    if request.path == "/dashboard/login" and request.method == "POST":
        return True
    return request.path == "/metrics" and bool(settings.metrics_token)


def _wrong_events_token(settings: Settings) -> bool:
    given = str((request.view_args or {}).get("token", ""))
    expected = settings.sip_events_token
    return not expected or not hmac.compare_digest(given.encode(), expected.encode())


def _is_try_page() -> bool:
    # Its page and its API; not its stylesheet and script, which come with every page view.
    endpoint = request.endpoint or ""
    return request.blueprint == "try_page" and not endpoint.endswith(".static")


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _is_preflight() -> bool:
    return (request.method == "OPTIONS" and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers)


def _allowed_origin() -> str | None:
    origin = request.headers.get("Origin", "")
    if _is_api() and origin in current_app.extensions["cors_origins"]:
        return origin
    return None


def _preflight() -> Response:
    origin = _allowed_origin()
    if origin is None:
        logger.info("cors.refused", extra={"path": request.path})
        response = jsonify(error="cors_refused", message="cross-origin requests are not "
                           "allowed from this origin")
        response.status_code = 403
        return response
    response = current_app.response_class(status=204)
    response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
    response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
    response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE_S
    return response


def _add_cors_headers(response: Response) -> None:
    if not _is_api() or not current_app.extensions["cors_origins"]:
        return
    # The answer depends on Origin whenever any origin may be allowed: caches must key on it.
    response.vary.add("Origin")
    origin = _allowed_origin()
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin


def request_address() -> str:
    """The current request's client address, as the limits count it (see client_address)."""
    return client_address(request.remote_addr, request.headers.getlist("X-Forwarded-For"),
                          current_app.extensions["settings"].proxy_hops)


def _refusal(verdict: Verdict, purpose: str) -> TooManyRequests:
    logger.warning("rate_limit.refused", extra={"purpose": purpose, "path": request.path,
                                                "retry_after_s": verdict.retry_after_s})
    what = ("too many failed authentication attempts" if purpose == AUTH
            else "too many requests")
    return TooManyRequests(f"{what} from your address; retry in {verdict.retry_after_s} s",
                           retry_after_s=verdict.retry_after_s)


