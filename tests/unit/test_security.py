"""security.py: failed-authentication limits shared through the store, CORS closed unless
configured, and the headers of JSON answers."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa
from flask import Flask, request
from flask.testing import FlaskClient

from config import Settings
from factory.app import create_app
from observability import logs
from personas.startup import load_settings
from store import Store
from store.schema import rate_limits
from tests.fakes import FakeClock, FakeConvoAI
from tests.unit.test_config import PRODUCTION
from web.cors import parse_origins
from web.security import (
    AUTH,
    TRY_PAGE,
    RateLimiter,
    client_address,
    trust_proxies,
)

ATTACKER = "198.51.100.7"
NEIGHBOUR = "198.51.100.8"
ADMIN = {"Authorization": "Bearer sandbox-admin-token"}
WRONG = {"Authorization": "Bearer not-the-token"}
EVENTS_TOKEN = "events-token-0123456789"
LOOKUP_TOKEN = "lookup-token-0123456789"
ORIGIN = "https://admin.example.com"
#: 10:00:15 into a minute-aligned window: 45 s are left in it.
START = 1_800_000_015.0


# -- the address a client is counted under -----------------------------------------------------


@pytest.mark.parametrize(("remote", "forwarded", "hops", "expected"), [
    ("10.0.0.1", [], 0, "10.0.0.1"),
    ("10.0.0.1", ["203.0.113.5"], 0, "10.0.0.1"),  # no proxy configured: the header is a lie
    ("10.0.0.1", ["6.6.6.6, 203.0.113.5"], 1, "203.0.113.5"),
    ("10.0.0.1", ["6.6.6.6, 203.0.113.5, 10.0.0.2"], 2, "203.0.113.5"),
    ("10.0.0.1", ["6.6.6.6", "203.0.113.5"], 1, "203.0.113.5"),  # two headers are one list
    ("10.0.0.1", ["203.0.113.5"], 2, "10.0.0.1"),  # fewer entries than proxies: not trusted
    ("10.0.0.1", ["203.0.113.5:51234"], 1, "203.0.113.5"),
    ("10.0.0.1", ["[2001:db8:1:2::5]:443"], 1, "2001:db8:1:2::/64"),
    ("2001:db8:1:2:aaaa::1", [], 0, "2001:db8:1:2::/64"),  # IPv6 counts per /64
    ("::ffff:203.0.113.5", [], 0, "203.0.113.5"),
    (None, [], 0, "unknown"),
])
def test_the_client_address_trusts_only_the_configured_proxies(remote, forwarded, hops,
                                                               expected):
    seen: list[str] = []
    app = Flask(__name__)

    @app.get("/")
    def _address():  # type: ignore[no-untyped-def]
        seen.append(client_address(request.remote_addr))
        return ""

    trust_proxies(app, hops)
    client = app.test_client()
    if remote is not None:
        client.environ_base["REMOTE_ADDR"] = remote
    else:
        client.environ_base.pop("REMOTE_ADDR", None)
    client.get("/", headers=[("X-Forwarded-For", entry) for entry in forwarded])
    assert seen == [expected]


def test_cors_origins_are_parsed_into_exact_origins():
    assert parse_origins("") == frozenset()
    assert parse_origins(f" {ORIGIN}/ ,http://localhost:3000") == {ORIGIN,
                                                                  "http://localhost:3000"}


# -- the limiter on the store ------------------------------------------------------------------


@pytest.fixture
def limiter(store: Store) -> RateLimiter:
    return RateLimiter(store, limit=3, key_salt=b"salt", clock=FakeClock(START))


def rows(engine: sa.Engine) -> list[tuple[str, float, int]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(rate_limits))]


def test_the_hit_after_the_limit_is_refused_until_the_window_ends(limiter):
    assert [limiter.hit(AUTH, ATTACKER).allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.hit(AUTH, ATTACKER)
    assert not refused.allowed and refused.retry_after_s == 45
    assert not limiter.check(AUTH, ATTACKER).allowed
    limiter.clock.advance(45)  # the next window
    assert limiter.check(AUTH, ATTACKER).allowed
    assert limiter.hit(AUTH, ATTACKER).allowed


def test_addresses_and_purposes_have_separate_counts(limiter):
    for _ in range(4):
        limiter.hit(AUTH, ATTACKER)
    assert not limiter.check(AUTH, ATTACKER).allowed
    assert limiter.check(AUTH, NEIGHBOUR).allowed
    assert limiter.check(TRY_PAGE, ATTACKER).allowed


def test_check_counts_nothing(limiter):
    for _ in range(10):
        assert limiter.check(AUTH, ATTACKER).allowed
    assert rows(limiter.store.engine) == []


def test_the_table_holds_no_address_and_one_counter_per_key(limiter):
    for _ in range(5):
        limiter.hit(AUTH, ATTACKER)
    [(key, window_start, hits)] = rows(limiter.store.engine)
    assert ATTACKER not in key and len(key) == 64
    assert key == limiter.key(AUTH, ATTACKER) != limiter.key(AUTH, NEIGHBOUR)
    assert (window_start, hits) == (START - 15, 5)


def test_a_lagging_clock_adds_to_the_current_window_instead_of_restarting_it(store, limiter):
    behind = RateLimiter(store, limit=3, key_salt=b"salt",
                         clock=FakeClock(START - 60))
    for _ in range(3):
        limiter.hit(AUTH, ATTACKER)
    assert not behind.hit(AUTH, ATTACKER).allowed
    [(_, window_start, hits)] = rows(limiter.store.engine)
    assert (window_start, hits) == (START - 15, 4)


def test_finished_windows_are_pruned(limiter):
    limiter.hit(AUTH, ATTACKER)
    limiter.clock.advance(120)
    limiter.hit(AUTH, NEIGHBOUR)  # a key starting a window sweeps out the finished ones
    assert [hits for _, _, hits in rows(limiter.store.engine)] == [1]
    assert rows(limiter.store.engine)[0][0] == limiter.key(AUTH, NEIGHBOUR)


def test_a_limit_of_zero_is_off_and_touches_nothing(store):
    off = RateLimiter(store, limit=0, key_salt=b"salt", clock=FakeClock(START))
    assert all(off.hit(AUTH, ATTACKER).allowed for _ in range(50))
    assert rows(store.engine) == []


def test_an_unreachable_store_lets_everything_through_and_says_so(tmp_path, caplog):
    store = Store.from_url(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    down = RateLimiter(store, limit=1, key_salt=b"salt", clock=FakeClock(START))
    with caplog.at_level(logging.WARNING, logger="web.security"):
        assert all(down.hit(AUTH, ATTACKER).allowed for _ in range(3))
        assert down.check(AUTH, ATTACKER).allowed
    events = [r for r in caplog.records if r.getMessage() == "rate_limit.store_unavailable"]
    assert len(events) == 4 and {r.outcome for r in events} == {"allowed"}


# -- the service -------------------------------------------------------------------------------


MakeApp = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path) -> MakeApp:
    """Apps on one SQLite file (so several of them share their counters), their limiters on one
    fake clock. Unless told otherwise: 3 failures a minute."""
    clock = FakeClock(START)

    def build(**changes: object) -> Flask:
        values: dict[str, object] = {
            "database_url": f"sqlite:///{tmp_path / 'shared.db'}", "log_level": "WARNING",
            "rate_limit_per_minute": 3, "sip_events_token": EVENTS_TOKEN,
            "sip_lookup_token": LOOKUP_TOKEN}
        values.update(changes)
        app = create_app(Settings.for_tests(**values))
        app.extensions["rate_limiter"].clock = clock
        app.extensions["calls"].convoai = FakeConvoAI()
        return app

    return build


def client_at(app: Flask, address: str = ATTACKER) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def fail_auth(client: FlaskClient, times: int) -> list[int]:
    return [client.get("/api/calls", headers=WRONG).status_code for _ in range(times)]


def test_failed_authentication_becomes_429_with_retry_after_past_the_limit(make_app):
    web = client_at(make_app())
    assert fail_auth(web, 3) == [401, 401, 401]
    refused = web.get("/api/calls", headers=WRONG)
    assert refused.status_code == 429
    assert refused.get_json()["error"] == "rate_limited" and "retry" in refused.get_json()[
        "message"]
    assert refused.headers["Retry-After"] == "45"


def test_an_address_over_the_limit_is_refused_before_its_token_is_checked(make_app):
    app = make_app()
    attacker = client_at(app)
    fail_auth(attacker, 3)
    # The right token from that address is refused too: guessing gets no answer at all.
    assert attacker.get("/api/calls", headers=ADMIN).status_code == 429
    assert client_at(app, NEIGHBOUR).get("/api/calls", headers=ADMIN).status_code == 200


def test_failures_on_two_instances_share_one_count(make_app):
    first, second = make_app(), make_app()
    assert fail_auth(client_at(first), 2) == [401, 401]
    assert fail_auth(client_at(second), 1) == [401]
    assert client_at(first).get("/api/calls", headers=ADMIN).status_code == 429
    assert client_at(second).get("/api/calls", headers=ADMIN).status_code == 429


def test_behind_a_proxy_the_forwarded_client_is_counted_not_the_proxy(make_app):
    app = make_app(proxy_hops=1)
    proxy = client_at(app, "10.0.0.2")
    for _ in range(3):
        proxy.get("/api/calls", headers={**WRONG, "X-Forwarded-For": f"1.2.3.4, {ATTACKER}"})
    over = proxy.get("/api/calls", headers={**ADMIN, "X-Forwarded-For": ATTACKER})
    other = proxy.get("/api/calls", headers={**ADMIN, "X-Forwarded-For": NEIGHBOUR})
    assert (over.status_code, other.status_code) == (429, 200)


def test_bad_signatures_count_but_signed_events_are_never_throttled(make_app, signed_post):
    web = client_at(make_app())
    body, headers = signed_post(event_type=103, channelName="ch-throttle", uid=111, clientSeq=1)
    forged = {**headers, "Agora-Signature-V2": "0" * 64}
    del forged["Agora-Signature"]
    statuses = [web.post("/webhook", data=body, headers=forged).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    signed = web.post("/webhook", data=body, headers=headers)
    assert signed.status_code == 200 and signed.get_json()["outcome"] == "call_started"


def test_the_gateway_hooks_are_verified_first_and_only_failures_throttled(make_app):
    web = client_at(make_app())
    wrong = {"Authorization": "Bearer wrong-token-000000000"}
    assert [web.post("/sip/lookup", json={}, headers=wrong).status_code
            for _ in range(4)] == [401, 401, 401, 429]
    good = web.post("/sip/lookup", json={"did": "+18005550100"},
                    headers={"Authorization": f"Bearer {LOOKUP_TOKEN}"})
    assert good.status_code == 404 and good.get_json()["error"] == "refused"  # no such line
    event = web.post(f"/sip/events/{EVENTS_TOKEN}", json={"event": "call_ringing"})
    assert event.status_code == 200


def test_a_wrong_events_path_counts_as_a_failed_credential(make_app):
    web = client_at(make_app())
    statuses = [web.post("/sip/events/not-the-token-000000", json={}).status_code
                for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    assert web.post(f"/sip/events/{EVENTS_TOKEN}", json={"event": "call_ringing"}
                    ).status_code == 200


def test_a_401_not_raised_as_unauthorized_counts_too(make_app):
    app = make_app()

    @app.post("/test-login")
    def _login():  # type: ignore[no-untyped-def]
        return "<p>wrong token</p>", 401

    web = client_at(app)
    assert [web.post("/test-login").status_code for _ in range(4)] == [401, 401, 401, 429]
    assert web.post("/test-login").get_json()["error"] == "rate_limited"


@pytest.mark.parametrize(("method", "path", "changes"), [
    ("POST", "/dashboard/login", {}),
    ("GET", "/metrics", {"metrics_token": "metrics-token-0123456789"}),
    ("POST", "/api/reconcile", {}),
])
def test_token_guarded_routes_refuse_an_address_over_the_limit(make_app, method, path,
                                                              changes):
    web = client_at(make_app(**changes))
    fail_auth(web, 3)
    response = web.open(path, method=method, json={})
    assert response.status_code == 429 and response.headers["Retry-After"] == "45"


def test_an_open_metrics_endpoint_is_not_throttled(make_app):
    web = client_at(make_app())
    fail_auth(web, 3)
    assert web.get("/metrics").status_code != 429


def test_the_try_page_counts_every_request_when_it_is_on(make_app):
    web = client_at(make_app(try_page=True))
    assert [web.get("/try").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert client_at(make_app(try_page=True), NEIGHBOUR).get("/try").status_code == 200


def test_the_try_page_when_off_is_a_plain_404(make_app):
    web = client_at(make_app())
    assert {web.get("/try").status_code for _ in range(5)} == {404}


def test_a_limit_of_zero_never_refuses(make_app):
    web = client_at(make_app(rate_limit_per_minute=0))
    assert set(fail_auth(web, 10)) == {401}


def test_a_store_without_its_counters_fails_open(make_app, signed_post, caplog):
    app = make_app()
    with app.extensions["store"].engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE rate_limits"))
    web = client_at(app)
    with caplog.at_level(logging.WARNING, logger="web.security"):
        assert set(fail_auth(web, 5)) == {401}
        assert web.get("/api/calls", headers=ADMIN).status_code == 200
    body, headers = signed_post(event_type=103, channelName="ch-open", uid=111, clientSeq=1)
    assert web.post("/webhook", data=body, headers=headers).status_code == 200
    assert any(r.getMessage() == "rate_limit.store_unavailable" for r in caplog.records)


# -- CORS --------------------------------------------------------------------------------------


def preflight(client: FlaskClient, path: str, origin: str = ORIGIN):
    return client.options(path, headers={"Origin": origin,
                                         "Access-Control-Request-Method": "GET",
                                         "Access-Control-Request-Headers": "authorization"})


def test_cors_is_closed_by_default(make_app):
    web = client_at(make_app())
    refused = preflight(web, "/api/calls")
    assert refused.status_code == 403 and refused.get_json()["error"] == "cors_refused"
    answer = web.get("/api/calls", headers={**ADMIN, "Origin": ORIGIN})
    assert answer.status_code == 200
    for response in (refused, answer, web.get("/healthz", headers={"Origin": ORIGIN})):
        assert not [h for h in response.headers.keys() if h.startswith("Access-Control-")]


def test_an_allowed_origin_gets_its_own_origin_back_on_api_routes_only(make_app):
    web = client_at(make_app(cors_origins=f"{ORIGIN},http://localhost:3000"))
    allowed = preflight(web, "/api/calls")
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert allowed.headers["Access-Control-Allow-Methods"] == "GET, POST, DELETE"
    # flask-cors names the requested headers it allows (header names are case-insensitive).
    assert allowed.headers["Access-Control-Allow-Headers"].lower() == "authorization"
    assert allowed.headers["Access-Control-Max-Age"] == "600"
    both = web.options("/api/calls", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type, X-Other"})
    assert both.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert "Origin" in allowed.headers["Vary"]
    answer = web.get("/api/calls", headers={**ADMIN, "Origin": ORIGIN})
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in answer.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in answer.headers

    evil = "https://evil.example.net"
    assert preflight(web, "/api/calls", evil).status_code == 403
    assert "Access-Control-Allow-Origin" not in web.get(
        "/api/calls", headers={**ADMIN, "Origin": evil}).headers
    # Only the admin API is ever shared with another origin.
    assert preflight(web, "/webhook").status_code == 403
    assert "Access-Control-Allow-Origin" not in web.get(
        "/healthz", headers={"Origin": ORIGIN}).headers


# -- headers -----------------------------------------------------------------------------------


def test_json_answers_are_not_sniffed_and_api_answers_not_stored(make_app):
    web = client_at(make_app())
    for response in (web.get("/healthz"), web.get("/api/calls", headers=ADMIN),
                     web.get("/api/calls", headers=WRONG)):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in response.headers  # sandbox: plain HTTP
    assert web.get("/api/calls", headers=ADMIN).headers["Cache-Control"] == "no-store"
    assert web.get("/api/calls", headers=WRONG).headers["Cache-Control"] == "no-store"
    assert "no-store" not in web.get("/healthz").headers.get("Cache-Control", "")


def test_production_answers_carry_hsts_once(tmp_path):
    settings = load_settings({**PRODUCTION, "DATABASE_URL": f"sqlite:///{tmp_path}/p.db",
                                  "LOG_LEVEL": "WARNING", "ADMIN_TOKEN": "admin-0123456789",
                                  "RUN_SWEEPER": "false"},
                                 dotenv=False)
    response = create_app(settings).test_client().get("/healthz")
    assert response.headers.getlist("Strict-Transport-Security") == ["max-age=31536000"]
    assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"]


# -- secrets in logs ---------------------------------------------------------------------------

CUSTOMER_ID = "cust-4e1"
SECRET = "s3cr/et+value=Zq7?"  # characters that URL-encoding and base64 both change
CERTIFICATE = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"


def leaked_forms(text: str) -> list[str]:
    """The encodings of SECRET and CERTIFICATE found in ``text``, worked out independently of
    logs.secret_forms: a base64 text is searched for the middle of the secret's encoding at each
    of the three alignments (the ends depend on the bytes around it)."""
    found = []
    for secret in (SECRET, CERTIFICATE):
        raw = secret.encode()
        forms = {secret, quote(secret, safe=""), quote_plus(secret), raw.hex(),
                 raw.hex().upper(), secret.lower()}
        for prefix in (b"", b"a", b"ab"):
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                forms.add(encode(prefix + raw).decode()[4:-4])
        found += [form for form in forms if form in text]
    return found


@pytest.mark.parametrize("leak", [
    SECRET,
    quote(SECRET, safe=""),
    quote_plus(SECRET),
    SECRET.encode().hex(),
    base64.b64encode(SECRET.encode()).decode(),
    base64.urlsafe_b64encode(SECRET.encode()).decode(),
    "Basic " + base64.b64encode(f"{CUSTOMER_ID}:{SECRET}".encode()).decode(),
    # The secret inside longer base64 texts, at each alignment.
    base64.b64encode(f"x:{SECRET}".encode()).decode(),
    base64.b64encode(f"xy:{SECRET}!".encode()).decode(),
    base64.b64encode(f"{SECRET}tail".encode()).decode(),
    CERTIFICATE,
    CERTIFICATE.lower(),
    CERTIFICATE.encode().hex(),
])
def test_log_redaction_covers_every_form_of_a_secret(leak):
    formatter = logs.JsonFormatter(logs.secret_forms(
        [SECRET, CERTIFICATE], basic_pairs=[(CUSTOMER_ID, SECRET)]))
    assert leaked_forms(leak), "the test's own detector must see the leak"
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "upstream said %s", (leak,),
                               None)
    record.header = leak
    line = formatter.format(record)
    assert leaked_forms(line) == [] and logs.REDACTED in line


def test_short_derived_forms_are_not_redacted():
    # Redacting a four-character piece of base64 would mangle ordinary text.
    forms = logs.secret_forms(["abcd"])
    assert "abcd" in forms and "61626364" in forms  # the secret itself, and its hex
    assert not [form for form in forms if form.startswith("YWJj")]  # base64: too short
    assert "YWJjZGVmZ2" in logs.secret_forms(["abcdefgh"])
