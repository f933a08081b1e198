"""The acceptance check of issue 18 in a real browser: `flask simulate call --script
appointments` books into the built-in diary, and the booking shows on the dashboard's diary, a
day and a week, reached from the nav."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ADMIN_TOKEN, Stack
from tests.e2e.test_dashboard import assert_no_secret, sign_in
from tests.integration.harness import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SCREENSHOT = "/tmp/dashboard-diary.png"


def test_a_scripted_booking_shows_in_the_diarys_day_and_week(page: Page, stack: Stack) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "app", "simulate", "call",
         "--url", stack.service.url, "--script", "appointments"],
        cwd=ROOT, env={**stack.env, "LOG_LEVEL": "WARNING"}, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    listed = requests.get(f"{stack.service.url}/api/bookings", timeout=10,
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    booking = listed["bookings"][-1]
    day = booking["start"][:10]

    page.goto("/dashboard/")
    sign_in(page)
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    page.get_by_role("link", name="Week", exact=True).click()
    expect(page).to_have_url(re.compile(r"/dashboard/diary/week$"))
    page.goto(f"/dashboard/diary/week?persona=appointments&day={day}")
    row = page.locator(f'#diary-{day} tr[data-reference="{booking["reference"]}"]')
    expect(row).to_contain_text("checkup")
    expect(row).to_contain_text("Ann Lee")
    expect(row).to_contain_text(booking["start"][11:16])
    row.get_by_role("link", name=booking["call_id"]).click()
    expect(page).to_have_url(re.compile(f"/dashboard/calls/{booking['call_id']}$"))

    page.get_by_role("link", name="Diary", exact=True).click()
    page.goto(f"/dashboard/diary?day={day}")
    expect(page.locator(f'tr[data-reference="{booking["reference"]}"]')).to_be_visible()
    assert_no_secret(page, stack)
    page.screenshot(path=SCREENSHOT, full_page=True)
