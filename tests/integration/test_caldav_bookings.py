"""Issue 18's CalDAV acceptance from outside: a persona whose diary is a real Radicale calendar
(scripts/with_radicale.sh), two service instances under gunicorn on one database (SQLite and
PostgreSQL), agents' tools called through POST /mcp with the official MCP client.

A time someone blocked in the calendar by hand is never offered; a booking appears in the
calendar as an event carrying its reference, and a cancel removes it; ten callers after one
slot at once, through both instances, get exactly one booking and one event.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import caldav
import pytest

from store import Store
from tests.caldav_fixtures import CalDAVServer
from tests.integration.conftest import SECRETS
from tests.integration.harness import running_stack, stack_database
from tests.integration.test_bookings import bookings, call_tool, start_call

pytestmark = pytest.mark.integration

PERSONA = """
name = "clinicdav"
description = "Books appointments into the clinic's CalDAV calendar."
greeting = "Hello, this is the clinic. How can I help?"
failure_message = "Sorry, I'm having trouble on my side."
prompt = "You book appointments with the booking tools, and read the reference back."

[llm]
url = "https://api.openai.com/v1/chat/completions"
api_key_env = "OPENAI_API_KEY"
model = "gpt-4o-mini"

[tts]
vendor = "elevenlabs"
[tts.params]
base_url = "wss://api.elevenlabs.io/v1"
model_id = "eleven_flash_v2_5"
key_env = "ELEVENLABS_API_KEY"
voice_id_env = "ELEVENLABS_VOICE_ID"

[booking]
backend = "caldav"
timezone = "UTC"
services = {{ consultation = 30 }}
buffer_minutes = 0
max_days_ahead = 30
[booking.hours]
mon = "00:00-24:00"
tue = "00:00-24:00"
wed = "00:00-24:00"
thu = "00:00-24:00"
fri = "00:00-24:00"
sat = "00:00-24:00"
sun = "00:00-24:00"
[booking.caldav]
url = "{url}"
username = "{username}"
password_env = "CLINIC_CALDAV_PASSWORD"
"""


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          caldav_server: CalDAVServer) -> Iterator[tuple[Any, Store, caldav.Calendar]]:
    client = caldav.DAVClient(url=caldav_server.url, username=caldav_server.username,
                              password=caldav_server.password, timeout=10)
    calendar = client.principal().make_calendar(name="Clinic",
                                                cal_id=f"clinic-{uuid.uuid4().hex[:12]}")
    log_dir = tmp_path_factory.mktemp(f"caldav-{request.param}")
    personas = Path(log_dir) / "personas"
    personas.mkdir()
    (personas / "clinicdav.toml").write_text(PERSONA.format(
        url=str(calendar.url), username=caldav_server.username))
    database_url = stack_database(request.param, log_dir, "phone_agent_caldav")

    def env(urls: list[str]) -> dict[str, str]:
        return {"PUBLIC_URL": urls[0], "PERSONAS_DIR": str(personas),
                "PERSONA_ROUTES": "appointments_*=clinicdav",
                "CLINIC_CALDAV_PASSWORD": caldav_server.password}

    try:
        with running_stack(log_dir, database_url, SECRETS, env=env, instances=2) as running:
            store = Store.from_url(database_url)
            try:
                yield running, store, calendar
            finally:
                store.engine.dispose()
    finally:
        calendar.delete()


def tool(running: Any, token: str, name: str, arguments: dict[str, Any], n: int = 0) -> Any:
    return asyncio.run(call_tool(running.services[n % 2].url, token, name, arguments))


def day_ahead(days: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=days)


def test_a_time_blocked_in_the_calendar_by_hand_is_never_offered(stack) -> None:
    running, store, calendar = stack
    _, token = start_call(running, store)
    day = day_ahead(9)
    blocked_from, blocked_to = day.replace(hour=9), day.replace(hour=12)
    calendar.save_event(dtstart=blocked_from, dtend=blocked_to, summary="Staff training",
                        uid=f"by-hand-{uuid.uuid4().hex}")
    found = tool(running, token, "find_slots",
                 {"service": "consultation", "date": day.date().isoformat()})
    starts = [datetime.fromisoformat(s) for s in found.structuredContent["slots"]]
    assert starts, found.content[0].text
    # A 30-minute consultation may neither start inside nor run into the blocked morning.
    assert not [s for s in starts if blocked_from - timedelta(minutes=30) < s < blocked_to]
    assert any(s >= blocked_to for s in starts)
    refused = tool(running, token, "book_appointment", {
        "service": "consultation", "start": blocked_from.replace(hour=10).isoformat(),
        "name": "Ann Lee", "phone": "+447700900301"})
    assert refused.isError and refused.structuredContent["error"] == "slot_taken"


def test_a_booking_is_an_event_in_the_calendar_and_a_cancel_removes_it(stack) -> None:
    running, store, calendar = stack
    _, token = start_call(running, store)
    start = day_ahead(11).replace(hour=15)
    booked = tool(running, token, "book_appointment", {
        "service": "consultation", "start": start.isoformat(), "name": "Bo Chen",
        "phone": "+447700900302"})
    assert not booked.isError, booked.content[0].text
    reference = booked.structuredContent["reference"]
    event = calendar.event_by_uid(f"{reference}@phone-agent")
    assert reference in event.data and "Bo Chen" in event.data
    cancelled = tool(running, token, "cancel_appointment", {"reference": reference}, n=1)
    assert not cancelled.isError, cancelled.content[0].text
    with pytest.raises(caldav.error.NotFoundError):
        calendar.event_by_uid(f"{reference}@phone-agent")
    assert [b["state"] for b in bookings(running) if b["reference"] == reference] == [
        "cancelled"]


def test_ten_callers_after_one_slot_through_two_instances_get_one_booking_and_one_event(
        stack) -> None:
    running, store, calendar = stack
    calls = [start_call(running, store) for _ in range(10)]
    slot = day_ahead(13).replace(hour=10).isoformat()

    async def everyone() -> list[Any]:
        return await asyncio.gather(*[
            call_tool(running.services[n % 2].url, token, "book_appointment",
                      {"service": "consultation", "start": slot, "name": f"Caller {n}",
                       "phone": f"+4477009004{n:02d}"})
            for n, (_, token) in enumerate(calls)])

    results = asyncio.run(everyone())
    won = [r for r in results if not r.isError]
    assert len(won) == 1, [r.content[0].text for r in results]
    reference = won[0].structuredContent["reference"]
    at_slot = [b for b in bookings(running, state="booked")
               if datetime.fromisoformat(b["start"]) == datetime.fromisoformat(slot)]
    assert [b["reference"] for b in at_slot] == [reference]
    start = datetime.fromisoformat(slot)
    events = calendar.search(start=start, end=start + timedelta(minutes=30), event=True)
    assert len(events) == 1 and reference in events[0].data
