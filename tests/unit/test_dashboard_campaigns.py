"""The dashboard's campaigns through Flask's test client: the list, a campaign's page and its
live progress fragment, pause/resume/cancel, the results CSV and the new-campaign form, on
the app's store with an injected clock and the sandbox's phone network (as
tests/unit/test_outbound_dialer.py drives the dialer)."""

from __future__ import annotations

import csv
import io
import itertools
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from calls.service import CallService
from config import Settings
from factory.app import create_app
from outbound.dialer import Dialer
from outbound.service import OutboundService
from pages import campaigns as dashboard_campaigns
from sandbox.phone_network import example
from sip.service import SipService
from store import Store
from tests.fakes import FakeClock, FakeConvoAI
from tests.unit.test_dashboard import ADMIN, SECRETS, form_token, section, sign_in
from tests.unit.test_outbound_dialer import THURSDAY_10, PhoneNetwork, answer_and_hang_up

CALLER_ID = "+12025550100"
ANSWERS = [example("answered", n) for n in range(2)]
BUSY = example("busy")
CSV = "number,timezone,first_name\n" + "".join(
    f"{n},,Ann{i}\n" for i, n in enumerate([*ANSWERS, BUSY]))
FORM = {"persona": "appointments", "from": CALLER_ID, "name": "December reminders",
        "timezone": "UTC", "window_start": "00:00", "window_end": "23:59",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "max_concurrent": "2",
        "per_minute": "30", "max_attempts": "2"}


@dataclass
class World:
    app: Flask
    store: Store
    clock: FakeClock
    outbound: OutboundService
    dialer: Dialer
    calls: CallService
    network: PhoneNetwork

    def run(self, rounds: int = 1) -> None:
        """Dial what is due, let every answered call talk and hang up, settle."""
        for _ in range(rounds):
            self.dialer.run_due()
            answer_and_hang_up(self.calls, self.store)
            self.clock.advance(20)
            self.dialer.settle()


@pytest.fixture
def world(tmp_path: Path) -> World:
    """The app, its outbound service on a clock the test moves and a phone network that
    answers by the number (sandbox/phone_network.py)."""
    settings = Settings.for_tests(database_url=f"sqlite:///{tmp_path / 'dash.db'}",
                                  log_level="WARNING", outbound_caller_id=CALLER_ID, **SECRETS)
    app = create_app(settings)
    clock = FakeClock(THURSDAY_10)
    store = Store(app.extensions["store"].engine, clock=clock)
    ids = (f"call{n:04d}" for n in itertools.count(1))
    calls = CallService(settings, store, FakeConvoAI(), new_id=lambda: next(ids))
    network = PhoneNetwork()
    sip = SipService(settings, store, calls, calls.personas, network, run_async=False)
    outbound = OutboundService(settings, store, sip, calls.personas)
    app.extensions.update(store=store, outbound=outbound)
    return World(app, store, clock, outbound, Dialer(settings, store, sip), calls, network)


@pytest.fixture
def web(world: World) -> FlaskClient:
    client = world.app.test_client()
    assert sign_in(client).status_code == 302
    return client


def create(web: FlaskClient, form: dict[str, Any] | None = None, csv_text: str = CSV,
           **changes: Any) -> Any:
    """Post the new-campaign form with the page's CSRF token and a CSV upload."""
    token = form_token(web.get("/dashboard/campaigns/new").get_data(as_text=True))
    data: dict[str, Any] = {**(form or FORM), **changes, "csrf_token": token}
    if csv_text is not None:
        data["contacts"] = (io.BytesIO(csv_text.encode()), "contacts.csv")
    return web.post("/dashboard/campaigns/new", data=data, content_type="multipart/form-data")


def created_id(web: FlaskClient) -> str:
    answer = create(web)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    found = re.fullmatch(r"/dashboard/campaigns/(cmp_[0-9a-f]+)", answer.headers["Location"])
    assert found
    return found.group(1)


def counts(html: str) -> dict[str, int]:
    return {state: int(n) for state, n in re.findall(
        r'<li data-count="(\w+)"[^>]*>.*?<span class="num">(\d+)</span>', html)}


def progress(html: str) -> tuple[int, int]:
    found = re.search(r'<progress class="campaign-bar" max="(\d+)" value="(\d+)"', html)
    assert found, "no progress bar"
    return int(found.group(2)), int(found.group(1))


# -- the sign-in and CSRF rules ----------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/dashboard/campaigns", "/dashboard/campaigns/new", "/dashboard/campaigns/cmp_1",
    "/dashboard/campaigns/cmp_1/progress", "/dashboard/campaigns/cmp_1/contacts",
    "/dashboard/campaigns/cmp_1/results.csv"])
def test_every_campaign_page_needs_the_sign_in(world: World, path: str) -> None:
    answer = world.app.test_client().get(path)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/dashboard/login?next=")


def test_a_post_without_a_session_never_reaches_the_service(world: World, web: FlaskClient) -> None:
    campaign_id = created_id(web)
    stranger = world.app.test_client()
    answer = stranger.post(f"/dashboard/campaigns/{campaign_id}/pause", data={"x": "1"})
    assert answer.status_code == 400  # a form post is checked before the sign-in guard
    token = form_token(stranger.get("/dashboard/login").get_data(as_text=True))
    answer = stranger.post(f"/dashboard/campaigns/{campaign_id}/pause",
                           data={"csrf_token": token})
    assert answer.status_code == 302 and "/dashboard/login" in answer.headers["Location"]
    assert world.outbound.summary(campaign_id)["state"] == "active"


def test_pause_without_the_csrf_token_is_refused(world: World, web: FlaskClient) -> None:
    campaign_id = created_id(web)
    answer = web.post(f"/dashboard/campaigns/{campaign_id}/pause")
    assert answer.status_code == 400
    assert world.outbound.summary(campaign_id)["state"] == "active"


def test_a_campaign_form_without_the_csrf_token_creates_nothing(world: World,
                                                               web: FlaskClient) -> None:
    answer = web.post("/dashboard/campaigns/new", content_type="multipart/form-data",
                      data={**FORM, "contacts": (io.BytesIO(CSV.encode()), "c.csv")})
    assert answer.status_code == 400
    assert world.outbound.summaries() == []


# -- creating a campaign -------------------------------------------------------------------------


def test_the_form_offers_the_personas_and_the_services_defaults(web: FlaskClient) -> None:
    html = web.get("/dashboard/campaigns/new").get_data(as_text=True)
    # Only personas with an [outbound] section (an AI disclosure, on whose behalf) may call.
    assert '<option value="appointments"' in html and '<option value="support"' not in html
    assert f'name="from" value="{CALLER_ID}"' in html  # OUTBOUND_CALLER_ID
    assert 'name="window_start" type="time" value="09:00"' in html
    assert 'value="sun">' in html and 'value="sat" checked>' in html
    assert 'enctype="multipart/form-data"' in html


def test_a_csv_upload_creates_a_campaign_and_opens_its_page(world: World,
                                                           web: FlaskClient) -> None:
    campaign_id = created_id(web)
    status = world.outbound.status(campaign_id)
    assert status["name"] == "December reminders"
    assert status["window"] == {"start": "00:00", "end": "23:59",
                                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
    assert status["pacing"] == {"max_concurrent": 2, "per_minute": 30}
    assert status["retry"]["max_attempts"] == 2
    assert [c["variables"] for c in status["contacts"]] == [
        {"first_name": f"Ann{i}"} for i in range(3)]
    html = web.get(f"/dashboard/campaigns/{campaign_id}").get_data(as_text=True)
    assert "Campaign created with 3 contacts." in html
    assert progress(html) == (0, 3)
    assert counts(html)["pending"] == 3
    # The numbers as the call pages show them: in full, to the signed-in operator only.
    for number in [*ANSWERS, BUSY]:
        assert f'<td class="mono">{number}</td>' in html
    assert "00:00–23:59" in section(html, "campaign")
    # The flash is shown once.
    assert "Campaign created" not in web.get(f"/dashboard/campaigns/{campaign_id}").get_data(
        as_text=True)


def test_duplicate_numbers_are_counted_in_the_notice(web: FlaskClient) -> None:
    answer = create(web, csv_text=CSV + f"{BUSY},,Again\n")
    html = web.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Campaign created with 3 contacts (1 duplicate left out)." in html


@pytest.mark.parametrize(("changes", "csv_text", "message"), [
    ({}, "phone\n+12025550100\n", "the CSV needs a header row with a number column"),
    ({}, "number\nnot-a-number\n", "CSV line 2: number:"),
    ({}, "number,timezone\n+12025550100,Mars/Olympus\n", "is not an IANA time zone name"),
    ({}, None, "choose a CSV file of contacts"),
    ({"persona": "nobody"}, CSV, "persona must be one with an [outbound] section"),
    ({"timezone": "Nowhere/Else"}, CSV, "timezone &#39;Nowhere/Else&#39; is not an IANA"),
    ({"window_start": "18:00", "window_end": "09:00"}, CSV,
     "window.start must be before window.end"),
    ({"days": []}, CSV, "window.days: choose at least one day"),
    ({"max_concurrent": "two"}, CSV, "pacing.max_concurrent must be a whole number"),
    ({"max_attempts": "²"}, CSV, "retry.max_attempts must be a whole number"),  # isdigit()
    ({"per_minute": "0"}, CSV, "pacing.per_minute must be a whole number from 1 to 600"),
    ({"max_attempts": "11"}, CSV, "retry.max_attempts must be a whole number from 1 to 10"),
    ({"from": "12"}, CSV, "from is required"),
])
def test_the_services_objections_show_on_the_form(world: World, web: FlaskClient,
                                                 changes: dict[str, Any], csv_text: str | None,
                                                 message: str) -> None:
    answer = create(web, csv_text=csv_text, **changes)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert message in section(html, "new-campaign")
    assert 'id="campaign-error"' in html and "Traceback" not in html
    assert 'name="name" value="December reminders"' in html  # what was entered stays
    assert world.outbound.summaries() == []


def test_no_callees_number_is_logged(world: World, web: FlaskClient,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    campaign_id = created_id(web)
    world.run(rounds=3)
    web.get(f"/dashboard/campaigns/{campaign_id}")
    assert "outbound.campaign_created" in caplog.text and "outbound.dial" in caplog.text
    # Every field of every record, the extras the JSON log lines carry included.
    logged = "\n".join(str(vars(record)) for record in caplog.records)
    assert "'to': '*******" in logged  # the dialer's line, masked
    for number in [*ANSWERS, BUSY]:
        assert number.lstrip("+") not in logged


# -- a campaign's page, live progress and controls ---------------------------------------------


def test_the_progress_fragment_follows_the_campaign(world: World, web: FlaskClient) -> None:
    campaign_id = created_id(web)
    page = web.get(f"/dashboard/campaigns/{campaign_id}").get_data(as_text=True)
    assert (f'data-refresh-url="/dashboard/campaigns/{campaign_id}/progress"' in page
            and 'data-refresh-ms="2000"' in page)
    world.run(rounds=3)
    fragment = web.get(f"/dashboard/campaigns/{campaign_id}/progress")
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in html
    # Both answered; the busy line waits ten minutes for its retry (still pending).
    assert progress(html) == (2, 3)
    assert counts(html)["completed"] == 2 and counts(html)["pending"] == 1
    assert 'data-state="active"' in html


def test_the_contacts_show_their_attempts_with_links_to_their_calls(world: World,
                                                                   web: FlaskClient) -> None:
    campaign_id = created_id(web)
    page = web.get(f"/dashboard/campaigns/{campaign_id}").get_data(as_text=True)
    assert f'data-refresh-url="/dashboard/campaigns/{campaign_id}/contacts"' in page
    world.run(rounds=3)
    rows = web.get(f"/dashboard/campaigns/{campaign_id}/contacts").get_data(as_text=True)
    assert "<html" not in rows and rows.count("<tr data-number=") == 3
    for contact in world.outbound.status(campaign_id)["contacts"]:
        for attempt in contact["attempts"]:
            assert f'href="/dashboard/calls/{attempt["call_id"]}"' in rows
    assert rows.count('data-disposition="answered"') == 2
    assert rows.count('data-disposition="busy"') == 1


def test_a_finished_campaigns_page_stops_refreshing(world: World, web: FlaskClient) -> None:
    answer = create(web, csv_text="number\n" + "".join(f"{n}\n" for n in ANSWERS))
    campaign_id = answer.headers["Location"].rsplit("/", 1)[1]
    world.run(rounds=3)
    assert world.outbound.summary(campaign_id)["state"] == "completed"
    html = web.get(f"/dashboard/campaigns/{campaign_id}").get_data(as_text=True)
    assert progress(html) == (2, 2)
    assert "data-refresh-url" not in html
    assert "Reload for the latest attempts" in html
    assert ">Pause</button>" not in html and ">Cancel</button>" not in html


def test_a_long_contact_list_is_not_reloaded_live(world: World, web: FlaskClient,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard_campaigns, "LIVE_CONTACTS_MAX", 2)
    campaign_id = created_id(web)
    html = web.get(f"/dashboard/campaigns/{campaign_id}").get_data(as_text=True)
    assert f"/dashboard/campaigns/{campaign_id}/progress" in html  # the progress still is
    assert "data-refresh-url" not in section(html, "contacts")
    assert "Reload for the latest attempts" in html


def test_pause_resume_and_cancel_flash_what_they_did(world: World, web: FlaskClient) -> None:
    campaign_id = created_id(web)
    page = web.get(f"/dashboard/campaigns/{campaign_id}").get_data(as_text=True)
    token = form_token(page)
    assert ">Pause</button>" in page and ">Resume</button>" not in page

    def post(verb: str) -> str:
        answer = web.post(f"/dashboard/campaigns/{campaign_id}/{verb}",
                          data={"csrf_token": token})
        assert answer.status_code == 302
        return web.get(answer.headers["Location"]).get_data(as_text=True)

    html = post("pause")
    assert "Campaign paused." in html and ">Resume</button>" in html
    assert world.outbound.summary(campaign_id)["state"] == "paused"
    world.run()
    assert world.network.dialled == []  # a paused campaign dials nobody
    html = post("pause")
    assert f"Not paused: campaign {campaign_id} is paused: it cannot pause." in html
    assert "Campaign resumed." in post("resume")
    html = post("cancel")
    assert "Campaign cancelled." in html and ">Pause</button>" not in html
    assert world.outbound.summary(campaign_id)["state"] == "cancelled"


def test_the_results_csv_downloads_with_the_session(world: World, web: FlaskClient) -> None:
    campaign_id = created_id(web)
    world.run(rounds=3)
    answer = web.get(f"/dashboard/campaigns/{campaign_id}/results.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert f'filename="campaign-{campaign_id}.csv"' in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert sorted((r["number"], r["disposition"]) for r in rows) == sorted(
        [(ANSWERS[0], "answered"), (ANSWERS[1], "answered"), (BUSY, "busy")])
    assert all(r["call_id"] for r in rows)
    # The same rows the admin API gives with the bearer token.
    api = web.get(f"/api/campaigns/{campaign_id}/results.csv",
                  headers={"Authorization": f"Bearer {ADMIN}"})
    assert api.get_data() == answer.get_data()


def test_the_list_shows_each_campaigns_progress_and_links_to_it(world: World,
                                                               web: FlaskClient) -> None:
    assert "No campaigns yet." in web.get("/dashboard/campaigns").get_data(as_text=True)
    campaign_id = created_id(web)
    world.run(rounds=3)
    html = web.get("/dashboard/campaigns").get_data(as_text=True)
    row = html[html.index(f'data-campaign-id="{campaign_id}"'):]
    row = row[:row.index("</tr>")]
    assert f'href="/dashboard/campaigns/{campaign_id}">December reminders</a>' in row
    assert "appointments" in row and 'data-state="active"' in html
    assert progress(row) == (2, 3)
    assert counts(row)["completed"] == 2
    assert 'href="/dashboard/campaigns">Campaigns</a>' in html  # in the nav


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/dashboard/campaigns/cmp_nope"), ("get", "/dashboard/campaigns/cmp_nope/progress"),
    ("get", "/dashboard/campaigns/cmp_nope/contacts"),
    ("get", "/dashboard/campaigns/cmp_nope/results.csv"),
    ("post", "/dashboard/campaigns/cmp_nope/pause")])
def test_an_unknown_campaign_is_an_html_404(web: FlaskClient, method: str, path: str) -> None:
    token = form_token(web.get("/dashboard/campaigns/new").get_data(as_text=True))
    answer = getattr(web, method)(path, data={"csrf_token": token} if method == "post" else None)
    assert answer.status_code == 404
    assert "No such campaign" in answer.get_data(as_text=True)


def test_campaign_pages_are_protected_like_every_page(web: FlaskClient) -> None:
    campaign_id = created_id(web)
    for path in ("/dashboard/campaigns", f"/dashboard/campaigns/{campaign_id}",
                 "/dashboard/campaigns/new"):
        answer = web.get(path)
        assert answer.headers["Cache-Control"] == "no-store"
        assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
        html = answer.get_data(as_text=True)
        assert "<script>" not in html and " style=" not in html
        assert not [s for s in SECRETS.values() if s in html]
