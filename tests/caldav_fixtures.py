"""A real CalDAV server for the suite: scripts/with_radicale.sh starts Radicale and exports
TEST_CALDAV_URL, TEST_CALDAV_USERNAME and TEST_CALDAV_PASSWORD (`make test` runs it); each test
gets a calendar collection of its own (MKCALENDAR), deleted afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import caldav
import pytest


@dataclass(frozen=True)
class CalDAVServer:
    url: str
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class CalDAVDiary:
    """A fresh, empty calendar: its URL and credentials for the code under test, and a caldav
    client of the test's own (another client, the way a person's calendar app sees it)."""

    url: str
    username: str
    password: str = field(repr=False)
    calendar: caldav.Calendar = field(repr=False)


def caldav_server_or_skip() -> CalDAVServer:
    url = os.environ.get("TEST_CALDAV_URL", "")
    if not url:
        message = "TEST_CALDAV_URL is not set: run through `make test` (scripts/with_radicale.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CalDAVServer(url, os.environ.get("TEST_CALDAV_USERNAME", ""),
                        os.environ.get("TEST_CALDAV_PASSWORD", ""))


@pytest.fixture(scope="session")
def caldav_server() -> CalDAVServer:
    return caldav_server_or_skip()


@pytest.fixture
def caldav_diary(caldav_server: CalDAVServer) -> Iterator[CalDAVDiary]:
    client = caldav.DAVClient(url=caldav_server.url, username=caldav_server.username,
                              password=caldav_server.password, timeout=10)
    calendar = client.principal().make_calendar(name="Test diary",
                                                cal_id=f"diary-{uuid.uuid4().hex[:12]}")
    try:
        yield CalDAVDiary(str(calendar.url), caldav_server.username, caldav_server.password,
                          calendar)
    finally:
        calendar.delete()
        client.close()
