"""The sandbox panel at / and its JSON endpoints through Flask's test client (the page itself:
tests/e2e)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import responses
from flask import Flask

from calls.lifecycle import CallerJoined, CallerLeft
from config import Settings
from factory.app import create_app
from personas.startup import load_settings
from tests.integration.harness import free_port
from tests.unit.test_config import PRODUCTION


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


def add_call(app: Flask, channel: str, *, ended: bool = False) -> str:
    store = app.extensions["store"]
    applied = store.apply_caller_event(CallerJoined(channel, 111, 1, f"{channel}-join"),
                                       grace_s=30, agent_name_prefix="t", new_id=lambda: channel)
    store.agent_started(applied.call_id, f"agent-{channel}")
    if ended:
        store.apply_caller_event(CallerLeft(channel, 111, 2, f"{channel}-leave", reason=1),
                                 grace_s=30, agent_name_prefix="t", new_id=lambda: "unused")
        store.agent_stopped(applied.call_id)
    return applied.call_id


def test_the_page_is_served_in_sandbox_mode_without_a_token(app: Flask) -> None:
    response = app.test_client().get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<title>Sandbox · phone-agent</title>" in html
    assert 'id="place-call"' in html and "/dashboard/static/pages.css" in html
    assert "nothing leaves this machine" in html
    for secret in app.extensions["settings"].secret_values():
        assert secret not in html


def test_calls_are_split_into_live_and_recent(app: Flask) -> None:
    live_id = add_call(app, "live_channel")
    ended_id = add_call(app, "ended_channel", ended=True)
    data = app.test_client().get("/home/calls").get_json()
    assert [c["id"] for c in data["live"]] == [live_id]
    assert [c["id"] for c in data["recent"]] == [ended_id]
    assert data["live"][0]["agent_id"] == "agent-live_channel"
    assert data["recent"][0]["state"] == "ended"


def test_one_call_has_its_timeline_and_transcript(app: Flask) -> None:
    call_id = add_call(app, "detail_channel", ended=True)
    data = app.test_client().get(f"/home/calls/{call_id}").get_json()
    assert data["id"] == call_id
    assert [e["kind"] for e in data["timeline"]][:2] == ["caller_joined", "agent_started"]
    assert data["transcript"] == []


def test_an_unknown_call_is_a_json_404(app: Flask) -> None:
    response = app.test_client().get("/home/calls/nope")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


@responses.activate
def test_a_test_call_asks_the_sandbox_for_a_four_second_caller(app: Flask) -> None:
    sandbox_url = app.extensions["settings"].sandbox_url
    sandbox = responses.post(f"{sandbox_url}/_sandbox/calls", status=201,
                             json={"channel": "sandbox_abc", "uid": 111, "id": "c1"})
    response = app.test_client().post("/home/test-call", json={})
    assert response.status_code == 202
    assert response.get_json()["channel"] == "sandbox_abc"
    assert sandbox.calls[0].request.body == b'{"duration_s": 4}'


SCRIPTS = [{"name": "orders", "persona": "orders", "description": "lookup_order twice",
            "tools": ["lookup_order"]},
           {"name": "tarot", "persona": "tarot", "description": "draw_tarot_cards, then end_call",
            "tools": ["draw_tarot_cards", "end_call"]}]
SCRIPT_OPTION = re.compile(r'<option value="([^"]*)">([^<]*)</option>')


def script_options(html: str) -> list[tuple[str, str]]:
    select = html[html.index('<select id="call-script"'):]
    return SCRIPT_OPTION.findall(select[:select.index("</select>")])


@responses.activate
def test_the_panel_offers_each_script_the_sandbox_lists(app: Flask) -> None:
    sandbox_url = app.extensions["settings"].sandbox_url
    listed = responses.get(f"{sandbox_url}/_sandbox/scripts", json={"scripts": SCRIPTS})
    html = app.test_client().get("/").get_data(as_text=True)
    assert script_options(html) == [
        ("", "No script (a short call)"), ("orders", "orders: lookup_order twice"),
        ("tarot", "tarot: draw_tarot_cards, then end_call")]
    assert len(listed.calls) == 1


@pytest.mark.parametrize("answer", [{"status": 500}, {"body": "not json"},
                                    {"json": {"scripts": "tarot"}}])
@responses.activate
def test_the_panel_offers_only_a_plain_call_when_the_sandbox_lists_nothing(
        app: Flask, answer: dict) -> None:
    responses.get(f"{app.extensions['settings'].sandbox_url}/_sandbox/scripts", **answer)
    html = app.test_client().get("/").get_data(as_text=True)
    assert script_options(html) == [("", "No script (a short call)")]


def test_the_panel_offers_only_a_plain_call_without_the_sandbox(settings: Settings) -> None:
    app = create_app(settings.replace(sandbox_url=f"http://127.0.0.1:{free_port()}"))
    html = app.test_client().get("/").get_data(as_text=True)
    assert script_options(html) == [("", "No script (a short call)")]
    assert 'id="place-call"' in html


@responses.activate
def test_a_scripted_test_call_asks_the_sandbox_to_play_that_script(app: Flask) -> None:
    sandbox_url = app.extensions["settings"].sandbox_url
    sandbox = responses.post(f"{sandbox_url}/_sandbox/calls", status=201, json={
        "channel": "tarot_0a1b2c3d4e", "uid": 111, "id": "c1", "script": "tarot"})
    response = app.test_client().post("/home/test-call", json={"script": "tarot"})
    assert response.status_code == 202
    assert response.get_json() == {"channel": "tarot_0a1b2c3d4e", "script": "tarot",
                                   "duration_s": None}
    assert json.loads(sandbox.calls[0].request.body) == {"script": "tarot"}


@responses.activate
def test_a_script_the_sandbox_refuses_is_a_400_with_its_message(app: Flask) -> None:
    sandbox_url = app.extensions["settings"].sandbox_url
    responses.post(f"{sandbox_url}/_sandbox/calls", status=400,
                   json={"error": "script must be the name of a ready script (tarot)"})
    response = app.test_client().post("/home/test-call", json={"script": "nope"})
    assert response.status_code == 400
    assert response.get_json()["error"] == "script_refused"
    assert "ready script (tarot)" in response.get_json()["message"]


@responses.activate
def test_a_script_that_is_not_a_name_is_refused_without_asking_the_sandbox(app: Flask) -> None:
    sandbox = responses.post(f"{app.extensions['settings'].sandbox_url}/_sandbox/calls",
                             status=201, json={"channel": "x", "uid": 111, "id": "c1"})
    response = app.test_client().post("/home/test-call", json={"script": ["tarot"]})
    assert response.status_code == 400 and len(sandbox.calls) == 0


def test_a_test_call_without_the_sandbox_says_to_start_it(settings: Settings) -> None:
    app = create_app(settings.replace(sandbox_url=f"http://127.0.0.1:{free_port()}"))
    response = app.test_client().post("/home/test-call", json={})
    assert response.status_code == 503
    assert "make run" in response.get_json()["message"]


def test_a_test_call_must_be_json_so_other_sites_cannot_place_one(app: Flask) -> None:
    response = app.test_client().post("/home/test-call", data="x",
                                      content_type="text/plain")
    assert response.status_code == 400


def test_production_answers_one_line_and_has_no_page(tmp_path: Path) -> None:
    settings = load_settings({**PRODUCTION, "DATABASE_URL": f"sqlite:///{tmp_path}/p.db",
                                  "LOG_LEVEL": "WARNING", "RUN_SWEEPER": "false"}, dotenv=False)
    client = create_app(settings).test_client()
    response = client.get("/")
    assert response.get_json() == {"service": "phone-agent", "mode": "production"}
    assert client.get("/home/calls").status_code == 404
    assert client.post("/home/test-call", json={}).status_code == 404
    with client.get("/dashboard/static/sandbox.js") as script:  # the one UI's files
        assert script.status_code == 200
    assert 'id="place-call"' not in client.get("/dashboard/login").get_data(as_text=True)
