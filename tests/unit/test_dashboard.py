"""The operator's dashboard (Flask test client, a store on a temporary SQLite file), its figures
and charts (stats on SQLite and PostgreSQL), and the CSRF and page protection of pages_security."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient

from calls.records import time_to_agent_ms
from config import Settings
from factory.app import create_app
from pages import charts, display, stats
from pages import login as dashboard_login
from pages import views as dashboard_views
from personas.startup import load_settings
from store import Store
from tests.fakes import FakeClock
from tests.unit.test_config import PRODUCTION
from web import pages_security

ADMIN = "dash-admin-token-Zq61"
SECRETS = {
    "admin_token": ADMIN,
    "cron_secret": "dash-cron-secret-Lp08",
    "sip_lookup_token": "dash-lookup-token-Xc5517",
    "sip_events_token": "dash-events-token-Vb2290",
    "agora_customer_secret": "dash-customer-secret-Mn44",
    "agora_ncs_secret": "dash-ncs-secret-Tr73",
}
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
HISTORY = [{"role": "assistant", "content": "Hello, this is Jack. How can I help?"},
           {"role": "user", "content": "I'd like to move my <appointment> & more."},
           {"role": "assistant", "content": "Of course: which day suits you?"}]


# -- fixtures and drivers ------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app(Settings.for_tests(database_url=f"sqlite:///{tmp_path / 'dash.db'}",
                                         log_level="WARNING", **SECRETS))


@pytest.fixture
def page_clock() -> FakeClock:
    # Two hours ago, so the calls made in a test fall inside the charts' last 24 hours.
    return FakeClock(time.time() - 2 * 3600)


@pytest.fixture
def calls(app: Flask, page_clock: FakeClock) -> Store:
    """The app's database through a store on a clock the test moves."""
    store = Store(app.extensions["store"].engine, clock=page_clock)
    app.extensions["store"] = store
    return store


@pytest.fixture
def web(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def signed_in(web: FlaskClient) -> FlaskClient:
    assert sign_in(web).headers["Location"] == "/dashboard/"
    return web


def make_call(store: Store, clock: FakeClock, call_id: str, *, persona: str = "support",
              caller: str = "+15551230001", agent_after: float = 1.25, length: float = 65.0,
              end: bool = True, history: list[dict[str, str]] | None = None) -> str:
    """An inbound call: the agent runs ``agent_after`` s after it was made; it ends (with its
    transcript when given) ``length`` s after it was made."""
    store.create_call(channel=f"ch_{call_id}", direction="inbound", state="starting",
                      persona=persona, agent_name_prefix="t", new_id=lambda: call_id,
                      caller_uid=111, caller_number=caller, called_number="+15557654321")
    clock.advance(agent_after)
    store.agent_started(call_id, f"agent-{call_id}")
    if end:
        clock.advance(length - agent_after)
        store.end_call(call_id, "caller_hung_up")
        if history:
            store.record_event(call_id, "convoai", "agent_history", {"contents": history})
        store.agent_stopped(call_id)
    clock.advance(1)
    return call_id


def form_token(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def sign_in(web: FlaskClient, token: str = ADMIN, **extra: str):  # type: ignore[no-untyped-def]
    page = web.get("/dashboard/login").get_data(as_text=True)
    return web.post("/dashboard/login",
                    data={"token": token, "csrf_token": form_token(page), **extra})


def section(html: str, section_id: str) -> str:
    start = html.index(f'<section id="{section_id}"')
    return html[start:html.index("</section>", start)]


def row_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-call-id="([^"]+)"', html)


# -- signing in ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/live", "/dashboard/charts",
                                  "/dashboard/calls/abc"])
def test_every_page_sends_a_visitor_without_a_session_to_sign_in(web: FlaskClient,
                                                                 path: str) -> None:
    response = web.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/dashboard/login?next=")
    assert "Live calls" not in response.get_data(as_text=True)


def test_the_admin_token_signs_in_and_returns_to_the_page_asked_for(
        web: FlaskClient, calls: Store, page_clock: FakeClock) -> None:
    call_id = make_call(calls, page_clock, "c_next")
    asked = web.get(f"/dashboard/calls/{call_id}")
    login_page = web.get(asked.headers["Location"]).get_data(as_text=True)
    assert f'name="next" value="/dashboard/calls/{call_id}"' in login_page
    response = web.post("/dashboard/login", data={
        "token": ADMIN, "csrf_token": form_token(login_page),
        "next": f"/dashboard/calls/{call_id}"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/dashboard/calls/{call_id}"
    assert web.get(f"/dashboard/calls/{call_id}").status_code == 200


def test_a_wrong_token_shows_the_form_again_with_401_and_signs_nobody_in(
        web: FlaskClient) -> None:
    response = sign_in(web, "not-the-token-123")
    html = response.get_data(as_text=True)
    assert response.status_code == 401
    assert response.mimetype == "text/html"
    assert "That token is not the admin token." in html
    assert 'name="token"' in html
    assert "not-the-token-123" not in html and ADMIN not in html
    assert web.get("/dashboard/").status_code == 302


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x",
                                    "/\\evil.example", "/api/calls", "/dashboard/login"])
def test_after_signing_in_only_dashboard_paths_are_followed(web: FlaskClient,
                                                            target: str) -> None:
    response = sign_in(web, next=target)
    assert response.headers["Location"] == "/dashboard/"


def test_sign_out_needs_the_csrf_token_then_ends_the_session(signed_in: FlaskClient) -> None:
    assert signed_in.post("/dashboard/logout").status_code == 400
    assert signed_in.get("/dashboard/").status_code == 200
    token = form_token(signed_in.get("/dashboard/").get_data(as_text=True))
    response = signed_in.post("/dashboard/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert signed_in.get("/dashboard/").status_code == 302


def test_a_session_older_than_its_lifetime_must_sign_in_again(signed_in: FlaskClient) -> None:
    with signed_in.session_transaction() as session:
        session[dashboard_login.SIGNED_IN_AT] = time.time() - dashboard_login.SESSION_MAX_AGE_S - 1
    assert signed_in.get("/dashboard/").status_code == 302


def test_signing_in_gives_the_session_a_new_csrf_token(web: FlaskClient) -> None:
    before = form_token(web.get("/dashboard/login").get_data(as_text=True))
    sign_in(web)
    after = form_token(web.get("/dashboard/").get_data(as_text=True))
    assert before != after


def test_the_sandbox_token_hint_shows_in_sandbox_mode_only(web: FlaskClient,
                                                           tmp_path: Path) -> None:
    assert "sandbox-admin-token" in web.get("/dashboard/login").get_data(as_text=True)
    production = load_settings({**PRODUCTION, "LOG_LEVEL": "WARNING", "RUN_SWEEPER": "false",
                                    "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}"},
                                   dotenv=False)
    page = create_app(production).test_client().get("/dashboard/login")
    assert page.status_code == 200
    assert "sandbox-admin-token" not in page.get_data(as_text=True)


# -- CSRF ------------------------------------------------------------------------------------


def test_sign_in_without_the_csrf_token_is_refused_even_with_the_right_token(
        web: FlaskClient) -> None:
    web.get("/dashboard/login")
    response = web.post("/dashboard/login", data={"token": ADMIN},
                        headers={"Accept": "text/html"})
    assert response.status_code == 400
    assert "csrf_failed" in response.get_data(as_text=True)
    assert web.get("/dashboard/").status_code == 302


def test_a_csrf_token_of_another_session_is_refused(app: Flask) -> None:
    theirs, mine = app.test_client(), app.test_client()
    stolen = form_token(theirs.get("/dashboard/login").get_data(as_text=True))
    mine.get("/dashboard/login")
    response = mine.post("/dashboard/login", data={"token": ADMIN, "csrf_token": stolen})
    assert response.status_code == 400
    assert response.get_json()["error"] == "csrf_failed"


@responses.activate
def test_a_json_post_that_carries_the_session_cookie_needs_the_token(web: FlaskClient) -> None:
    sandbox = responses.post("http://127.0.0.1:8090/_sandbox/calls", status=201,
                             json={"channel": "sandbox_abc", "uid": 111, "id": "c1"})
    page = web.get("/").get_data(as_text=True)  # the sandbox page gives the session its token
    refused = web.post("/home/test-call", json={})
    assert refused.status_code == 400 and refused.get_json()["error"] == "csrf_failed"
    assert len(sandbox.calls) == 0
    placed = web.post("/home/test-call", json={},
                      headers={"X-CSRF-Token": CSRF_META.search(page).group(1)})
    assert placed.status_code == 202 and len(sandbox.calls) == 1


def test_a_form_post_is_checked_even_without_a_session(web: FlaskClient) -> None:
    response = web.post("/home/test-call", data={"x": "1"})
    assert response.status_code == 400 and response.get_json()["error"] == "csrf_failed"


@pytest.mark.parametrize(("path", "headers", "status"), [
    ("/api/calls", {"Authorization": "Bearer wrong-token"}, 401),  # the API's own check
    ("/webhook", {}, 401),  # the NCS signature check
    ("/sip/lookup", {}, 401),  # the gateway's token check
])
def test_bearer_requests_and_hooks_are_exempt_but_still_authenticated(
        web: FlaskClient, path: str, headers: dict[str, str], status: int) -> None:
    web.get("/dashboard/login")  # a session cookie that a forged request would carry too
    response = web.post(path, data={"a": "1"}, headers=headers)
    assert response.status_code == status
    assert (response.get_json() or {}).get("error") != "csrf_failed"


@pytest.mark.parametrize(("method", "mimetype", "cookie", "authorization", "checked"), [
    ("GET", "", True, None, False),
    ("HEAD", "application/x-www-form-urlencoded", True, None, False),
    ("POST", "application/x-www-form-urlencoded", False, None, True),
    ("POST", "multipart/form-data", False, None, True),
    ("DELETE", "", True, None, True),
    ("PATCH", "application/json", True, None, True),
    ("PUT", "application/json", False, None, False),
    ("POST", "application/json", True, "Bearer t0k3n", False),
    ("POST", "application/x-www-form-urlencoded", True, "bearer t", False),
    ("POST", "application/x-www-form-urlencoded", True, "Basic dTpw", True),
])
def test_which_page_requests_must_carry_the_csrf_token(method: str, mimetype: str, cookie: bool,
                                                       authorization: str | None,
                                                       checked: bool) -> None:
    assert pages_security.needs_csrf_check(
        method=method, mimetype=mimetype, has_session_cookie=cookie,
        authorization=authorization) is checked


# -- pages -----------------------------------------------------------------------------------


def test_the_overview_shows_live_calls_apart_from_recent_ones(
        signed_in: FlaskClient, calls: Store, page_clock: FakeClock) -> None:
    ended = make_call(calls, page_clock, "c_ended", persona="tarot")
    live = make_call(calls, page_clock, "c_live", caller="+15550009999", end=False)
    html = signed_in.get("/dashboard/").get_data(as_text=True)
    live_part, recent_part = section(html, "live"), section(html, "recent")
    assert row_ids(live_part) == [live]
    assert row_ids(recent_part) == [live, ended]  # every state, newest first
    assert "+15550009999" in live_part and "active" in live_part and "support" in live_part
    assert "so far" in live_part  # a live call's length is its age
    assert "1 min 05 s" in recent_part and "caller_hung_up" in recent_part


def test_in_sandbox_mode_the_overview_has_the_sandbox_panel(signed_in: FlaskClient) -> None:
    html = signed_in.get("/dashboard/").get_data(as_text=True)
    assert 'id="sandbox-panel"' in html and 'data-url="/home/test-call"' in html
    assert "http://127.0.0.1:8090" in html and "/dashboard/static/sandbox.js" in html
    assert 'id="followed-calls"' not in html  # the dashboard's own tables follow the calls


@responses.activate
def test_the_overviews_sandbox_panel_offers_the_sandboxs_scripts(signed_in: FlaskClient) -> None:
    responses.get("http://127.0.0.1:8090/_sandbox/scripts", json={"scripts": [
        {"name": "tarot", "persona": "tarot", "description": "draw_tarot_cards, then end_call"}]})
    html = signed_in.get("/dashboard/").get_data(as_text=True)
    assert '<select id="call-script" name="script">' in html
    assert '<option value="">No script (a short call)</option>' in html
    assert '<option value="tarot">tarot: draw_tarot_cards, then end_call</option>' in html


def test_in_production_the_overview_has_no_sandbox_panel(tmp_path: Path) -> None:
    settings = load_settings({**PRODUCTION, "ADMIN_TOKEN": ADMIN, "LOG_LEVEL": "WARNING",
                                  "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
                                  "RUN_SWEEPER": "false"}, dotenv=False)
    web = create_app(settings).test_client()
    sign_in(web)
    html = web.get("/dashboard/").get_data(as_text=True)
    assert "Live calls" in html
    assert "sandbox" not in html


def test_the_live_fragment_is_the_table_alone(signed_in: FlaskClient, calls: Store,
                                              page_clock: FakeClock) -> None:
    live = make_call(calls, page_clock, "c_live", end=False)
    make_call(calls, page_clock, "c_done")
    response = signed_in.get("/dashboard/live")
    html = response.get_data(as_text=True)
    assert "<html" not in html and 'id="live-calls"' in html
    assert row_ids(html) == [live]


@pytest.mark.parametrize(("query", "expected"), [
    ("state=active", ["c_tarot_live"]),
    ("persona=tarot", ["c_tarot_live", "c_tarot"]),
    ("persona=support&state=ended", ["c_support"]),
    ("state=nonsense", ["c_tarot_live", "c_tarot", "c_support"]),
])
def test_recent_calls_filter_by_state_and_persona(signed_in: FlaskClient, calls: Store,
                                                  page_clock: FakeClock, query: str,
                                                  expected: list[str]) -> None:
    make_call(calls, page_clock, "c_support")
    make_call(calls, page_clock, "c_tarot", persona="tarot")
    make_call(calls, page_clock, "c_tarot_live", persona="tarot", end=False)
    html = signed_in.get(f"/dashboard/?{query}").get_data(as_text=True)
    assert row_ids(section(html, "recent")) == expected


def test_recent_calls_page_through_the_store_cursor(
        signed_in: FlaskClient, calls: Store, page_clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard_views, "PAGE_SIZE", 2)
    made = [make_call(calls, page_clock, f"c{i}") for i in range(5)]
    seen, url = [], "/dashboard/?persona=support"
    while url:
        html = signed_in.get(url).get_data(as_text=True)
        seen.append(row_ids(section(html, "recent")))
        older = re.search(r'<a href="([^"]+)" rel="next">', html)
        url = older.group(1).replace("&amp;", "&") if older else None
        if url:
            assert "persona=support" in url  # the filter is kept
    assert seen == [["c4", "c3"], ["c2", "c1"], ["c0"]]
    assert sorted(sum(seen, [])) == sorted(made)


def test_a_cursor_from_nowhere_shows_the_newest_calls(signed_in: FlaskClient, calls: Store,
                                                      page_clock: FakeClock) -> None:
    make_call(calls, page_clock, "c0")
    html = signed_in.get("/dashboard/?cursor=!!not-ours").get_data(as_text=True)
    assert "That page link is out of date" in html
    assert row_ids(section(html, "recent")) == ["c0"]


def test_the_call_page_shows_fields_timeline_and_transcript(
        signed_in: FlaskClient, calls: Store, page_clock: FakeClock) -> None:
    call_id = make_call(calls, page_clock, "c_full", history=HISTORY)
    response = signed_in.get(f"/dashboard/calls/{call_id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<dd id="time-to-agent">1250 ms</dd>' in html
    assert '<dd id="call-length">1 min 05 s</dd>' in html
    assert '<dd id="end-reason">caller_hung_up</dd>' in html
    assert "+15551230001" in html and "agent-c_full" in html
    timeline = section(html, "timeline")
    kinds = re.findall(r'<tr data-kind="([^"]+)"', timeline)
    assert kinds == ["call_created_inbound", "agent_started", "call_ending", "agent_history",
                     "agent_stopped"]
    assert "+1.250 s" in timeline and "+65.000 s" in timeline
    assert "convoai" in timeline and "contents=3 turns" in timeline
    transcript = section(html, "transcript")
    turns = re.findall(r'<span class="role">(\w+)</span>\s*<p>([^<]*)</p>', transcript)
    assert [role for role, _ in turns] == ["Agent", "Caller", "Agent"]
    assert turns[1][1] == "I&#39;d like to move my &lt;appointment&gt; &amp; more."


def test_a_call_without_history_says_so(signed_in: FlaskClient, calls: Store,
                                        page_clock: FakeClock) -> None:
    call_id = make_call(calls, page_clock, "c_quiet", end=False)
    html = signed_in.get(f"/dashboard/calls/{call_id}").get_data(as_text=True)
    assert "No transcript" in html and "still open" in html


def test_an_unknown_call_is_an_html_404(signed_in: FlaskClient) -> None:
    response = signed_in.get("/dashboard/calls/nope")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "There is no call <code>nope</code>" in response.get_data(as_text=True)


def test_the_charts_are_svg_bars_of_the_last_day(signed_in: FlaskClient, calls: Store,
                                                 page_clock: FakeClock) -> None:
    make_call(calls, page_clock, "c1", agent_after=0.4, length=20)
    make_call(calls, page_clock, "c2", agent_after=1.2, length=200)
    make_call(calls, page_clock, "c3", agent_after=6.0, length=700)
    make_call(calls, page_clock, "c_open", agent_after=0.3, end=False)
    html = signed_in.get("/dashboard/charts").get_data(as_text=True)

    def bars(section_id: str) -> list[float]:
        return [float(v) for v in re.findall(r'class="bar"[^>]*data-value="([^"]+)"',
                                             section(html, section_id))]

    per_hour = bars("chart-per-hour")
    assert len(per_hour) == 24 and sum(per_hour) == 4
    waits = bars("chart-time-to-agent")
    assert len(waits) == len(dashboard_views.TIME_TO_AGENT_EDGES_MS)
    assert waits == [0, 2, 0, 1, 0, 0, 0, 1]  # 300 and 400 ms, 1.2 s, 6 s
    lengths = bars("chart-call-length")
    assert lengths == [0, 1, 0, 0, 1, 0, 1]  # 20 s, 200 s, 700 s; the open call has none
    assert "Calls started in the last 24 hours: 4." in html
    summary = section(html, "chart-time-to-agent")
    assert re.search(r"Median</th><td class=\"num\">400 ms", summary)


# -- protection of every page ----------------------------------------------------------------


def all_pages(web: FlaskClient, store: Store, clock: FakeClock) -> dict[str, str]:
    """Every dashboard page (signed out and in) and the other HTML pages, by name."""
    call_id = make_call(store, clock, "c_secret", history=HISTORY)
    # An upstream error that echoed a credential must not reach a page.
    store.record_event(call_id, "service", "agent_stop_failed",
                       {"error": f"401 for Authorization: Bearer {ADMIN}"})
    pages = {"login": web.get("/dashboard/login"), "wrong token": sign_in(web, "wrong-1234"),
             "refused form": web.post("/dashboard/login", data={"token": ADMIN},
                                      headers={"Accept": "text/html"})}
    sign_in(web)
    pages.update({"overview": web.get("/dashboard/"), "live": web.get("/dashboard/live"),
                  "call": web.get(f"/dashboard/calls/{call_id}"),
                  "missing call": web.get("/dashboard/calls/nope"),
                  "charts": web.get("/dashboard/charts"), "home": web.get("/")})
    return {name: response for name, response in pages.items()}  # type: ignore[misc]


def test_no_page_shows_a_configured_secret(app: Flask, web: FlaskClient, calls: Store,
                                           page_clock: FakeClock) -> None:
    pages = all_pages(web, calls, page_clock)
    secrets = app.extensions["settings"].secret_values()
    assert ADMIN in secrets and len(secrets) >= len(SECRETS)
    for name, response in pages.items():
        html = response.get_data(as_text=True)
        leaked = [s for s in secrets if s in html]
        assert not leaked, f"the {name} page shows {leaked}"
    assert "Bearer ***" in pages["call"].get_data(as_text=True)


def test_every_page_carries_the_security_headers(web: FlaskClient, calls: Store,
                                                 page_clock: FakeClock) -> None:
    for name, response in all_pages(web, calls, page_clock).items():
        assert response.mimetype == "text/html", name
        csp = response.headers.get("Content-Security-Policy", "")
        for directive in ("default-src 'self'", "form-action 'self'", "frame-ancestors 'none'"):
            assert directive in csp, f"{name}: {directive} missing from {csp!r}"
        assert "unsafe-inline" not in csp
        assert response.headers.get("X-Content-Type-Options") == "nosniff", name
        assert response.headers.get("Referrer-Policy") == "no-referrer", name
        assert response.headers.get("X-Frame-Options") == "DENY", name
        if name != "home" and name != "refused form":
            assert response.headers.get("Cache-Control") == "no-store", name


def test_pages_hold_no_inline_script_or_style(app: Flask, web: FlaskClient, calls: Store,
                                              page_clock: FakeClock, tmp_path: Path) -> None:
    """The CSP would block them: every script and style must come from a file."""
    pages = {k: r.get_data(as_text=True) for k, r in all_pages(web, calls, page_clock).items()}
    try_app = create_app(app.extensions["settings"].replace(
        try_page=True, database_url=f"sqlite:///{tmp_path / 'try.db'}"))
    pages["try"] = try_app.test_client().get("/try").get_data(as_text=True)
    for name, html in pages.items():
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), name
        assert "<style" not in html and " style=" not in html, name
        assert not re.search(r"\son[a-z]+=", html), f"{name} has an inline event handler"


def fetch(web: FlaskClient, path: str) -> tuple[int, bytes]:
    """A static file's status and body (the response is closed: it holds the file open)."""
    response = web.get(path)
    try:
        return response.status_code, response.get_data()
    finally:
        response.close()


def test_the_pages_scripts_and_styles_are_served(app: Flask, tmp_path: Path) -> None:
    web = app.test_client()
    assert fetch(web, "/dashboard/static/pages.css")[0] == 200
    assert b"refreshUrl" in fetch(web, "/dashboard/static/dashboard.js")[1]
    assert b"X-CSRF-Token" in fetch(web, "/dashboard/static/sandbox.js")[1]
    try_web = create_app(app.extensions["settings"].replace(
        try_page=True, database_url=f"sqlite:///{tmp_path / 'try.db'}")).test_client()
    assert b"X-CSRF-Token" in fetch(try_web, "/try/static/try.js")[1]
    assert fetch(try_web, "/try/static/try.css")[0] == 200


# -- stats (on SQLite and PostgreSQL through the shared store fixture) ------------------------

HOUR = 3600
H0 = 1_800_000_000.0  # an hour boundary


def times(created: float, agent: float | None = None, ended: float | None = None,
          joined: float | None = None) -> stats.CallTimes:
    return stats.CallTimes(created, agent, ended, joined)


def test_calls_per_hour_counts_each_clock_hour_of_the_last_day() -> None:
    now = H0 + 1800
    sample = [times(H0 + 100), times(H0 + 200), times(H0 - 1), times(H0 - 23 * HOUR),
              times(H0 - 23 * HOUR - 1), times(now + 5000)]
    buckets = stats.calls_per_hour(sample, now=now)
    assert len(buckets) == 24
    assert buckets[0].start == H0 - 23 * HOUR and buckets[-1].start == H0
    assert [b.count for b in buckets] == [1] + [0] * 21 + [1, 2]


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([5, 1, 4, 2, 3, 10, 9, 8, 7, 6], 50, 5), ([5, 1, 4, 2, 3, 10, 9, 8, 7, 6], 90, 9),
    ([5, 1, 4, 2, 3, 10, 9, 8, 7, 6], 99, 10), ([5, 1, 4, 2, 3, 10, 9, 8, 7, 6], 100, 10),
    ([7.5], 50, 7.5), ([], 50, None), ([1, 2], 1, 1),
])
def test_percentile_is_the_nearest_rank(values: list[float], q: float,
                                        expected: float | None) -> None:
    assert stats.percentile(values, q) == expected


def test_percentile_refuses_a_rank_outside_0_to_100() -> None:
    with pytest.raises(ValueError):
        stats.percentile([1], 0)


def test_summary_and_histogram_of_known_values() -> None:
    summary = stats.summarize([100, 300, 200, 900])
    assert (summary.count, summary.p50, summary.p90, summary.max) == (4, 200, 900, 900)
    assert stats.summarize([]) == stats.Summary(0, None, None, None, None)
    bins = stats.histogram([0, 9.99, 10, 29, 30, 500, -1], (0, 10, 30))
    assert [(b.low, b.high, b.count) for b in bins] == [(0, 10, 3), (10, 30, 2), (30, None, 2)]
    with pytest.raises(ValueError):
        stats.histogram([1], (10, 0))


def test_times_to_agent_and_lengths_skip_calls_without_them() -> None:
    sample = [times(H0, H0 + 0.5, H0 + 30), times(H0, None, H0 + 2),
              times(H0, H0 + 3, None, joined=H0 + 1), times(H0 + 5, H0 + 1, None, joined=H0 + 5)]
    assert stats.times_to_agent_ms(sample) == [500, 2000, 0]
    assert stats.call_lengths_s(sample) == [30, 2]


def test_the_window_is_read_newest_first_and_bounded(store: Store, clock: FakeClock) -> None:
    made = []
    for i in range(5):
        made.append(make_call(store, clock, f"s{i}", agent_after=0.5 + i, length=10))
    newest = stats.recent_calls(store.engine, since=clock.now - 3600, limit=3)
    assert newest.truncated and len(newest.calls) == 3
    assert [round(c.agent_started_at - c.created_at, 3) for c in newest.calls] == [4.5, 3.5, 2.5]
    everything = stats.recent_calls(store.engine, since=clock.now - 3600)
    assert not everything.truncated and len(everything.calls) == 5
    assert stats.recent_calls(store.engine, since=clock.now).calls == []


def test_time_to_agent_is_the_apis_figure(store: Store, clock: FakeClock) -> None:
    from calls.lifecycle import CallerJoined

    make_call(store, clock, "made_at_ring", agent_after=0.75)
    joined = store.apply_caller_event(CallerJoined("ch_joined", 111, 1, "n-1"), grace_s=30,
                                      agent_name_prefix="t", new_id=lambda: "joined")
    clock.advance(1.5)
    store.agent_started(joined.call_id, "agent-joined")
    api = sorted(time_to_agent_ms(r) for r in store.list_calls())
    sample = stats.recent_calls(store.engine, since=0).calls
    assert sorted(round(ms) for ms in stats.times_to_agent_ms(sample)) == api == [750, 1500]


# -- charts and display -----------------------------------------------------------------------


def test_bar_heights_are_proportional_to_the_values() -> None:
    svg = str(charts.bar_chart([charts.Bar("a", 0), charts.Bar("b", 5), charts.Bar("c", 10)],
                               title="T", height=240))
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([^"]+)"', svg)]
    plot = 240 - charts.TOP - charts.BOTTOM
    assert heights == [0, pytest.approx(plot / 2, abs=0.1), pytest.approx(plot, abs=0.1)]
    assert svg.startswith("<svg") and svg.endswith("</svg>")


def test_chart_labels_and_titles_are_escaped() -> None:
    svg = str(charts.bar_chart([charts.Bar("<b>&", 1, hint='"x"<y>')], title="<T>"))
    assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg
    assert "&lt;T&gt;" in svg and "&lt;y&gt;" in svg


def test_every_nth_label_is_drawn_and_no_data_says_so() -> None:
    svg = str(charts.bar_chart([charts.Bar(str(i), i) for i in range(24)], title="T",
                               label_every=3))
    assert len(re.findall(r'<text class="label"', svg)) == 8
    empty = str(charts.bar_chart([], title="T"))
    assert "No data yet" in empty and "<rect" not in empty
    with pytest.raises(ValueError):
        charts.bar_chart([charts.Bar("a", -1)], title="T")


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "—"), (4.24, "4.2 s"), (65, "1 min 05 s"), (3725, "1 h 02 min")])
def test_durations_read_naturally(seconds: float | None, text: str) -> None:
    assert display.duration(seconds) == text


def test_event_details_count_turns_mask_secrets_and_stay_short() -> None:
    detail = {"contents": HISTORY, "error": "token s3cr3t-value", "extra": {"b": 1}}
    text = display.describe(detail, ["s3cr3t-value"])
    assert text == 'contents=3 turns error=token *** extra={"b":1}'
    finished = display.describe({"is_truncated": False, "turns": [{"turn_id": 1}] * 200})
    assert finished == "is_truncated=false turns=200 turns"
    long = display.describe({"x": "y" * 1000})
    assert len(long) == display.DETAIL_CHARS and long.endswith("…")
    assert display.milliseconds(850) == "850 ms" and display.milliseconds(2350) == "2.35 s"
