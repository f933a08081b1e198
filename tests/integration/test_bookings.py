"""Issue 18's diary from outside, on the store backend: two service instances under gunicorn on
one database (SQLite and PostgreSQL), the sandbox as Agora. The appointments persona's ready
scripts book, move and cancel through ``flask simulate call``; the bookings show in
``/api/bookings``; ten callers taking one slot at once, through both instances, get one booking.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from store import Store
from tests.integration.conftest import SECRETS
from tests.integration.harness import ROOT, running_stack, stack_database, wait_until
from tools.tokens import new_token, token_hash

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer sandbox-admin-token"}


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def stack(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Store]]:
    log_dir = tmp_path_factory.mktemp(f"bookings-{request.param}")
    database_url = stack_database(request.param, log_dir, "phone_agent_bookings")

    def env(urls: list[str]) -> dict[str, str]:
        return {"PUBLIC_URL": urls[0], "PERSONA_ROUTES": "appointments_*=appointments"}

    with running_stack(log_dir, database_url, SECRETS, env=env, instances=2) as running:
        store = Store.from_url(database_url)
        try:
            yield running, store
        finally:
            store.engine.dispose()


def simulate(running: Any, script: str) -> str:
    env = {**running.env, "LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "app", "simulate", "call",
         "--url", running.services[0].url, "--script", script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def bookings(running: Any, **query: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{running.services[1].url}/api/bookings", params=query,
                          headers=ADMIN, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["bookings"]


def test_the_scripts_book_move_and_cancel_and_the_api_shows_it(stack) -> None:
    running, _ = stack
    out = simulate(running, "appointments")
    assert "book_appointment" in out and "-> ok" in out
    booked = [b for b in bookings(running) if b["phone"] == "+447700900123"]
    assert len(booked) == 1 and booked[0]["state"] == "booked"
    assert booked[0]["service"] == "checkup" and booked[0]["name"] == "Ann Lee"
    assert booked[0]["call_id"]

    simulate(running, "appointments_move")
    (moved,) = [b for b in bookings(running) if b["phone"] == "+447700900124"]
    assert (moved["state"], moved["revision"]) == ("booked", 2)

    simulate(running, "appointments_cancel")
    (cancelled,) = [b for b in bookings(running, state="cancelled")
                    if b["phone"] == "+447700900125"]
    assert cancelled["revision"] == 2
    day = cancelled["start"][:10]
    assert cancelled["reference"] in [b["reference"] for b in bookings(running, day=day)]
    ics = requests.get(f"{running.services[0].url}/api/bookings.ics", headers=ADMIN,
                       timeout=10).text
    assert f"UID:{booked[0]['reference']}@phone-agent" in ics


def start_call(running: Any, store: Store) -> tuple[str, str]:
    """A live appointments call and a bearer token of it (the store keeps only its hash)."""
    channel = f"appointments_{uuid.uuid4().hex[:10]}"
    answer = running.service.event(103, channel=channel, seq=1)
    assert answer.status_code == 200 and answer.json()["outcome"] == "call_started", answer.text
    call = wait_until(lambda: [c for c in store.calls_in_channel(channel)
                               if c.state == "active"], message="the call to be active")[0]
    token = new_token()
    store.add_call_token(call.id, token_hash(token))
    return call.id, token


async def call_tool(url: str, token: str, name: str, arguments: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"},
                                 timeout=30) as http, \
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write, _), \
            ClientSession(read, write) as session:
        await session.initialize()
        return await session.call_tool(name, arguments)


def test_ten_callers_taking_one_slot_through_two_instances_get_one_booking(stack) -> None:
    running, store = stack
    calls = [start_call(running, store) for _ in range(10)]
    urls = [s.url for s in running.services]
    day = (datetime.now(UTC) + timedelta(days=14)).date().isoformat()
    found = asyncio.run(call_tool(urls[0], calls[0][1], "find_slots",
                                  {"service": "consultation", "date": day, "days": 7}))
    slot = found.structuredContent["slots"][-1]

    async def everyone() -> list[Any]:
        return await asyncio.gather(*[
            call_tool(urls[n % 2], token, "book_appointment",
                      {"service": "consultation", "start": slot, "name": f"Caller {n}",
                       "phone": f"+4477009002{n:02d}"})
            for n, (_, token) in enumerate(calls)])

    results = asyncio.run(everyone())
    won = [r for r in results if not r.isError]
    lost = [r for r in results if r.isError]
    assert len(won) == 1 and len(lost) == 9, [r.content[0].text for r in results]
    assert all(r.structuredContent["error"] == "slot_taken" and r.structuredContent[
        "alternatives"] for r in lost)
    at_slot = [b for b in bookings(running, state="booked") if b["start"] == slot]
    assert [b["reference"] for b in at_slot] == [won[0].structuredContent["reference"]]
