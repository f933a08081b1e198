"""The sandbox and the service under gunicorn (as in tests/integration, on SQLite), and Debian's
headless Chromium driven by Playwright. Playwright never downloads a browser here:
scripts/ensure_chromium.sh installs /usr/bin/chromium, and the tests launch that one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.integration.harness import Sandbox, Service, running_stack, stack_database

CHROMIUM = Path("/usr/bin/chromium")
#: As root on a machine whose network is closed: no sandbox (it needs user namespaces), no GPU,
#: and none of Chromium's own connections to Google's services.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]

SECRETS = {
    "customer_secret": "e2e-customer-secret-Qv81",
    "ncs_secret": "e2e-ncs-secret-Jd27",
    "openai_api_key": "sk-e2e-openai-key-Wy60",
    "elevenlabs_api_key": "e2e-elevenlabs-key-Rb35",
}
ADMIN_TOKEN = "e2e-admin-token-Hk94"


@dataclass
class Stack:
    sandbox: Sandbox
    service: Service
    env: dict[str, str]

    @property
    def secret_values(self) -> list[str]:
        return [*SECRETS.values(), ADMIN_TOKEN]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("e2e-stack")
    with running_stack(log_dir, stack_database("sqlite", log_dir, ""), SECRETS,
                       env={"ADMIN_TOKEN": ADMIN_TOKEN,
                            "PERSONA_ROUTES": "tarot_*=tarot,orders_*=orders,"
                                              "appointments_*=appointments"}) as running:
        yield Stack(running.sandbox, running.service, running.env)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test file. Not for the session: Playwright's sync API keeps an event
    loop running in the worker's main thread while it is open, and a later file in the same
    xdist worker that calls asyncio.run (the MCP client's tests) would fail."""
    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is missing: run scripts/ensure_chromium.sh (make test does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(base_url=stack.service.url,
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def watched(page: Page) -> Iterator[list[str]]:
    """The page, with every console message about a Content-Security-Policy violation."""
    violations: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", note)
    yield violations
    assert not violations, f"the pages broke their own CSP: {violations}"
