"""The operator's dashboard in headless Chromium, against the real stack (gunicorn and the
sandbox): sign in with the admin token, find a simulated call, open it (timeline, transcript,
time to agent), see the charts, watch a live call come and go without reloading, sign out.
Every page is checked for configured secrets and for Content-Security-Policy violations."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from pages.display import milliseconds
from tests.e2e.conftest import ADMIN_TOKEN, Stack
from tests.integration.harness import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SCREENSHOT = "/tmp/dashboard.png"
SANDBOX_PANEL_SCREENSHOT = "/tmp/dashboard-sandbox-panel.png"


def api(stack: Stack, path: str) -> Any:
    response = requests.get(f"{stack.service.url}/api/{path}", timeout=10,
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    response.raise_for_status()
    return response.json()


def place_call(stack: Stack, duration_s: float) -> str:
    """A simulated caller through the sandbox; returns its channel."""
    return stack.sandbox.control("POST", "calls", json={"duration_s": duration_s})["channel"]


def call_in(stack: Stack, channel: str) -> dict[str, Any] | None:
    found = api(stack, f"calls?channel={channel}")["calls"]
    return found[0] if found else None


@pytest.fixture(scope="module")
def finished_call(stack: Stack) -> dict[str, Any]:
    """A call that has ended and whose transcript the service has recorded."""
    channel = place_call(stack, 3)
    call = wait_until(lambda: call_in(stack, channel), timeout=10, message="the call")

    def transcribed() -> dict[str, Any] | None:
        detail = api(stack, f"calls/{call['id']}")
        return detail if detail["state"] == "ended" and detail["transcript"] else None

    return wait_until(transcribed, timeout=30, message="the call to end with its transcript")


def assert_no_secret(page: Page, stack: Stack) -> None:
    html = page.content()
    leaked = [secret for secret in stack.secret_values if secret in html]
    assert not leaked, f"{page.url} shows configured secret(s): {leaked}"


def sign_in(page: Page, token: str = ADMIN_TOKEN) -> None:
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    # The page the form leads to, scripts included: its buttons are in the document before their
    # (deferred) script has run, and a click on one then does nothing (a fresh-clone run saw the
    # sandbox panel's "Place a test call" clicked before sandbox.js had loaded).
    page.wait_for_load_state("load")


def test_a_wrong_token_keeps_the_dashboard_closed(page: Page, stack: Stack,
                                                 watched: list[str]) -> None:
    page.goto("/dashboard/")
    expect(page).to_have_url(re.compile(r"/dashboard/login\?next="))
    with page.expect_response(re.compile(r"/dashboard/login$")) as answer:
        sign_in(page, "not-the-admin-token")
    assert answer.value.status == 401
    expect(page.locator("#login-message")).to_have_text("That token is not the admin token.")
    expect(page.get_by_label("Admin token")).to_be_visible()
    assert_no_secret(page, stack)


def test_an_operator_follows_a_call_from_the_list_to_its_transcript(
        page: Page, stack: Stack, finished_call: dict[str, Any], watched: list[str]) -> None:
    page.goto("/dashboard/")
    sign_in(page)
    expect(page).to_have_url(re.compile(r"/dashboard/$"))

    row = page.locator(f'#recent-calls tr[data-call-id="{finished_call["id"]}"]')
    expect(row).to_have_attribute("data-state", "ended")
    expect(row.locator('td[data-col="time_to_agent"]')).to_have_text(
        milliseconds(finished_call["time_to_agent_ms"]))
    assert_no_secret(page, stack)

    row.get_by_role("link", name=finished_call["id"]).click()
    expect(page).to_have_url(re.compile(f"/dashboard/calls/{finished_call['id']}$"))
    expect(page.locator("#time-to-agent")).to_have_text(
        re.compile(r"^\d+(\.\d+)? m?s$"))
    expect(page.locator("#time-to-agent")).to_have_text(
        milliseconds(finished_call["time_to_agent_ms"]))
    expect(page.locator("#end-reason")).not_to_have_text("—")
    timeline = page.locator("#timeline")
    for kind in ("caller_joined", "agent_started", "agent_history", "agent_stopped"):
        expect(timeline.locator(f'tr[data-kind="{kind}"]').first).to_be_visible()
    turns = page.locator("#transcript .turn")
    expect(turns).to_have_count(len(finished_call["transcript"]))
    first = finished_call["transcript"][0]
    expect(turns.first).to_contain_text(first["content"])
    expect(turns.first.locator(".role")).to_have_text(
        "Caller" if first["role"] == "user" else "Agent")
    assert_no_secret(page, stack)
    page.screenshot(path=SCREENSHOT, full_page=True)

    page.get_by_role("link", name="Charts").click()
    expect(page.locator("svg.chart")).to_have_count(3)
    expect(page.locator("#chart-per-hour rect.bar")).to_have_count(24)
    counts = page.locator("#chart-per-hour rect.bar").evaluate_all(
        "bars => bars.map(b => Number(b.dataset.value))")
    assert sum(counts) >= 1
    assert page.locator("#chart-time-to-agent rect.bar").count() > 0
    assert page.locator("#chart-per-hour rect.bar").first.bounding_box()["width"] > 0
    assert_no_secret(page, stack)

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#login-message")).to_have_text("You are signed out.")
    page.goto("/dashboard/charts")
    expect(page).to_have_url(re.compile(r"/dashboard/login"))


def test_a_live_call_appears_and_leaves_without_a_reload(page: Page, stack: Stack,
                                                        watched: list[str]) -> None:
    page.goto("/dashboard/login")
    sign_in(page)
    expect(page.locator("#live")).to_be_visible()
    page.evaluate("window.__notReloaded = true")

    channel = place_call(stack, 8)
    live_row = page.locator("#live-calls tbody tr").filter(has_text=channel)
    expect(live_row).to_have_count(1, timeout=15_000)
    expect(page.locator("#live")).to_have_attribute("data-refreshed-at", re.compile(r"^\d{4}-"))
    expect(live_row).to_have_count(0, timeout=30_000)
    assert page.evaluate("window.__notReloaded") is True


def test_the_sandbox_panel_places_a_test_call_that_goes_live_on_the_overview(
        page: Page, stack: Stack, watched: list[str]) -> None:
    page.goto("/dashboard/login")
    sign_in(page)
    panel = page.locator("#sandbox-panel")
    expect(panel.locator("#mode-line")).to_contain_text("Sandbox mode")
    with page.expect_response("**/home/test-call") as placed:
        panel.get_by_role("button", name="Place a test call").click()
    assert placed.value.status == 202
    channel = placed.value.json()["channel"]
    expect(panel.locator("#status")).to_contain_text(channel)
    live_row = page.locator("#live-calls tbody tr").filter(has_text=channel)
    expect(live_row).to_have_count(1, timeout=15_000)
    page.screenshot(path=SANDBOX_PANEL_SCREENSHOT, full_page=True)
    assert_no_secret(page, stack)


def test_the_sandbox_panel_plays_the_tarot_script_whose_tool_calls_show_on_the_calls_page(
        page: Page, stack: Stack, watched: list[str]) -> None:
    """The panel's select: the sandbox plays the tarot script through the agent of a tarot_...
    channel (PERSONA_ROUTES), then hangs up; the call's page lists the cards it drew."""
    page.goto("/dashboard/login")
    sign_in(page)
    panel = page.locator("#sandbox-panel")
    panel.get_by_label("Conversation").select_option("tarot")
    with page.expect_response("**/home/test-call") as placed:
        panel.get_by_role("button", name="Place a test call").click()
    assert placed.value.status == 202, placed.value.text()
    assert placed.value.json()["script"] == "tarot"
    channel = placed.value.json()["channel"]
    assert channel.startswith("tarot_")
    expect(panel.locator("#status")).to_contain_text("plays the tarot script")

    def played() -> dict[str, Any] | None:
        calls = stack.sandbox.control("GET", "calls")["calls"]
        call = next((c for c in calls if c["channel"] == channel), None)
        return call if call and call["script_state"] in ("ok", "failed") else None

    sandbox_call = wait_until(played, timeout=60, message="the sandbox to play the script")
    assert sandbox_call["script_outcome"] == "ok" and sandbox_call["present"] is False
    call = wait_until(lambda: call_in(stack, channel), timeout=10, message="the call")
    wait_until(lambda: api(stack, f"calls/{call['id']}")["state"] == "ended", timeout=30,
               message="the call to end")
    page.goto(f"/dashboard/calls/{call['id']}")
    table = page.locator("#tool-calls")
    expect(table.locator('tr[data-tool="draw_tarot_cards"]')).to_have_count(1)
    expect(table.locator('tr[data-tool="draw_tarot_cards"]')).to_have_attribute(
        "data-outcome", "ok")
    assert_no_secret(page, stack)

