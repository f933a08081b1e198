"""Issue 19 in a real browser: an operator signs in, starts a campaign from a CSV upload, and
watches its page follow the campaign live (the service's dialer calls the sandbox's phone
network, whose fictional numbers answer or are busy by their last digits), then pauses it."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from sandbox.phone_network import example
from tests.e2e.conftest import Stack
from tests.e2e.test_dashboard import assert_no_secret, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SCREENSHOT = "/tmp/dashboard-campaign.png"
#: Two people who answer and a busy line: the busy one's retry waits ten minutes (the default
#: delay), so the campaign stays active at 2 of 3 done, and can be paused. A number ending in
#: 0000 is busy for every sandbox dialer (sandbox/phone_network.py, sandbox/sip_outbound.py).
ANSWERS = [example("answered", 10 + n, area="312") for n in range(2)]
BUSY = "+13125550000"
ALL_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def test_a_campaign_from_a_csv_progresses_live_and_pauses(page: Page, stack: Stack,
                                                          tmp_path: Path,
                                                          watched: list[str]) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("number,first_name\n" + "".join(
        f"{number},Ann{n}\n" for n, number in enumerate([*ANSWERS, BUSY])))

    page.goto("/dashboard/")
    sign_in(page)
    page.get_by_role("link", name="Campaigns", exact=True).click()
    expect(page).to_have_url(re.compile(r"/dashboard/campaigns$"))
    page.get_by_role("link", name="New campaign").click()

    page.get_by_label("Persona").select_option("appointments")
    page.get_by_label("From number").fill("+13125550199")
    page.get_by_label("Name").fill("e2e reminders")
    # A window open all day, every day, so the test dials whenever it runs.
    page.get_by_label("From", exact=True).fill("00:00")
    page.get_by_label("to", exact=True).fill("23:59")
    for day in ALL_DAYS:
        page.get_by_label(day, exact=True).check()
    page.get_by_label("At most at once").fill("1")
    page.get_by_label("Contacts (CSV)").set_input_files(str(contacts))
    page.get_by_role("button", name="Create and start").click()

    expect(page).to_have_url(re.compile(r"/dashboard/campaigns/cmp_[0-9a-f]+$"))
    expect(page.locator(".notice")).to_have_text("Campaign created with 3 contacts.")
    expect(page.locator("#campaign-pacing")).to_contain_text("at most 1 at once")
    expect(page.locator("#contacts tbody tr")).to_have_count(3)
    for number in [*ANSWERS, BUSY]:
        expect(page.locator(f'#contacts tr[data-number="{number}"]')).to_be_visible()
    page.evaluate("window.__notReloaded = true")

    # The dialer works through the contacts one at a time; the page follows without a reload.
    progress = page.locator("#progress")
    expect(progress.locator('li[data-count="completed"] .num')).to_have_text("2",
                                                                            timeout=60_000)
    # The busy line is settled and waits for its retry: pending again, not done.
    expect(progress.locator('li[data-count="pending"] .num')).to_have_text("1", timeout=60_000)
    expect(progress.locator(".progress-text")).to_have_text("2 of 3 done")
    expect(progress.locator("progress")).to_have_attribute("value", "2")
    expect(progress).to_have_attribute("data-refreshed-at", re.compile(r"^\d{4}-"))
    # So does the contacts table, a little less often: each attempt, linking to its call.
    busy_row = page.locator(f'#contacts tr[data-number="{BUSY}"]')
    expect(busy_row.locator('.attempt[data-disposition="busy"]')).to_have_count(1)
    expect(busy_row).to_have_attribute("data-state", "pending")
    for number in ANSWERS:
        expect(page.locator(f'#contacts tr[data-number="{number}"]')).to_have_attribute(
            "data-state", "completed")
    assert page.evaluate("window.__notReloaded") is True
    page.screenshot(path=SCREENSHOT)

    page.get_by_role("button", name="Pause").click()
    expect(page.locator(".notice")).to_have_text("Campaign paused.")
    expect(page.locator("#campaign-state")).to_have_text("paused")
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Results CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sorted((r["number"], r["disposition"]) for r in rows) == sorted(
        [(ANSWERS[0], "answered"), (ANSWERS[1], "answered"), (BUSY, "busy")])
    campaign_id = page.locator("#campaign").get_attribute("data-campaign-id")

    page.get_by_role("link", name="Campaigns", exact=True).click()
    row = page.locator(f'tr[data-campaign-id="{campaign_id}"]')
    expect(row).to_have_attribute("data-state", "paused")
    expect(row.locator(".progress-text")).to_have_text("2 of 3 done")
    row.get_by_role("link", name="e2e reminders").click()

    answered = page.locator(f'#contacts tr[data-number="{ANSWERS[0]}"] .attempt a')
    call_id = answered.inner_text()
    answered.click()
    expect(page).to_have_url(re.compile(f"/dashboard/calls/{call_id}$"))
    assert_no_secret(page, stack)

