"""The sandbox panel at / in headless Chromium: it says it is the sandbox, shows no secret, and
follows a test call from the button to Live calls (with its agent) to Recent calls (ended)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SCREENSHOT = "/tmp/home.png"


def call_row(page: Page, table: str, channel: str) -> Locator:
    """The row of ``table`` whose channel cell is exactly ``channel``."""
    return page.locator(f"#{table} tbody tr").filter(
        has=page.locator('td[data-col="channel"]', has_text=re.compile(f"^{channel}$")))


def cell(row: Locator, column: str) -> Locator:
    return row.locator(f'td[data-col="{column}"]')


def assert_no_secret(html: str, stack: Stack) -> None:
    leaked = [name for name in stack.secret_values if name in html]
    assert not leaked, f"the page shows configured secret(s): {leaked}"


def test_the_page_says_sandbox_mode_and_shows_no_secret(page: Page, stack: Stack) -> None:
    page.goto("/")

    expect(page).to_have_title("Sandbox · phone-agent")
    mode_line = page.locator("#mode-line")
    expect(mode_line).to_contain_text("Sandbox mode")
    expect(mode_line).to_contain_text("no Agora account")
    expect(mode_line).to_contain_text("nothing leaves this machine")
    expect(page.get_by_role("button", name="Place a test call")).to_be_enabled()
    expect(page.locator("#live-calls")).to_be_visible()
    expect(page.locator("#recent-calls")).to_be_visible()
    assert_no_secret(page.content(), stack)


def test_a_test_call_goes_live_with_an_agent_then_ends(page: Page, stack: Stack) -> None:
    page.goto("/")
    with page.expect_response("**/home/test-call") as placed:
        page.get_by_role("button", name="Place a test call").click()
    assert placed.value.status == 202
    channel = placed.value.json()["channel"]
    expect(page.locator("#status")).to_contain_text(channel)

    live = call_row(page, "live-calls", channel)
    expect(cell(live, "agent_id")).to_have_text(re.compile(r"^\w{8,}$"), timeout=10_000)
    expect(cell(live, "state")).to_have_text(re.compile("^(active|stopping)$"))
    expect(cell(live, "time_to_agent_ms")).to_have_text(re.compile(r"^\d+$"))

    recent = call_row(page, "recent-calls", channel)
    expect(cell(recent, "state")).to_have_text("ended", timeout=20_000)
    expect(live).to_have_count(0)
    expect(cell(recent, "agent_id")).to_have_text(re.compile(r"^\w{8,}$"))
    expect(cell(recent, "end_reason")).not_to_have_text(re.compile("^(—)?$"))
    expect(cell(recent, "duration")).to_have_text(re.compile(r"^\d+\.\d s$"))

    recent.click()
    detail = page.locator("#call-detail")
    expect(detail).to_be_visible()
    timeline = page.locator("#detail-timeline")
    for kind in ("caller_joined", "agent_started", "agent_stopped"):
        expect(timeline).to_contain_text(kind)
    assert_no_secret(page.content(), stack)
    page.screenshot(path=SCREENSHOT, full_page=True)
