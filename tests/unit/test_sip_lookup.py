"""POST /sip/lookup and the lines API with the numbers SIP trunks send."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from config import Settings
from tests.fakes import FakeConvoAI

ADMIN = {"Authorization": "Bearer sandbox-admin-token"}
TOKEN = "lookup-token-0123456789"

MakeApp = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path) -> MakeApp:
    """Apps on one SQLite file, with ConvoAI faked."""

    def build(**changes: object) -> Flask:
        values: dict[str, object] = {"database_url": f"sqlite:///{tmp_path / 'sip.db'}",
                                     "log_level": "WARNING", "sip_lookup_token": TOKEN}
        values.update(changes)
        app = create_app(Settings.for_tests(**values))
        app.extensions["calls"].convoai = FakeConvoAI()
        return app

    return build


@pytest.fixture
def web(make_app: MakeApp) -> FlaskClient:
    return make_app().test_client()


def add_line(web: FlaskClient, number: object) -> tuple[int, dict]:
    answer = web.post("/api/lines", json={"number": number, "persona": "support"},
                      headers=ADMIN)
    return answer.status_code, answer.get_json()


def lookup(web: FlaskClient, did: object, *, callerid: object = "") -> tuple[int, dict]:
    answer = web.post("/sip/lookup", headers={"Authorization": f"Bearer {TOKEN}"}, json={
        "did": did, "pin": "", "callerid": callerid, "callid": "c-1", "sip_headers": {}})
    return answer.status_code, answer.get_json()


# -- numbers as the gateway sends them ---------------------------------------------------------


def test_a_line_registered_as_an_extension_is_found_by_a_lookup_for_it(web):
    status, line = add_line(web, "7373")
    assert (status, line["number"]) == (201, "7373")
    status, answer = lookup(web, "7373", callerid="benweekes")
    assert status == 200, answer
    assert answer["channel"].startswith("line_") and answer["uid"] == "111"


@pytest.mark.parametrize(("registered", "dialled"), [
    ("+18005550123", "18005550123"), ("18005550123", "+18005550123"),
    ("+1 (800) 555-0123", "sip:+18005550123@trunk.example.com;user=phone"),
    ("benweekes", "BenWeekes"), ("sip:benweekes@pbx.example.com", "benweekes"),
    ("7373", "sip:7373@pbx.example.com"),
])
def test_a_line_is_found_whichever_form_each_side_uses(web, registered, dialled):
    assert add_line(web, registered)[0] == 201
    status, answer = lookup(web, dialled)
    assert status == 200, answer


def test_the_caller_is_recorded_as_the_gateway_names_it(make_app):
    app = make_app()
    web = app.test_client()
    add_line(web, "7373")
    _, answer = lookup(web, "7373", callerid="benweekes")
    [call] = app.extensions["store"].list_calls(channel=answer["channel"])
    assert (call.called_number, call.caller_number) == ("7373", "benweekes")


@pytest.mark.parametrize("did", ["", None, 12, [], {}, "<script>", "+12", "x" * 300,
                                 "sip:pbx.example.com", "1234567890123456", "a b"])
def test_a_lookup_for_what_can_be_no_line_is_refused_with_404_never_400(web, did):
    status, answer = lookup(web, did)
    assert status == 404 and answer["error"] == "refused"


def test_a_lookup_for_an_unknown_line_is_refused_with_404(web):
    add_line(web, "7373")
    assert lookup(web, "7374")[0] == 404


@pytest.mark.parametrize("number", ["", "<script>", None, "+12", "a b", "sip:@host",
                                    "a" * 33])
def test_the_lines_api_refuses_what_is_no_number_with_a_clear_400(web, number):
    status, answer = add_line(web, number)
    assert status == 400 and answer["error"] == "bad_request"
    assert answer["message"].startswith("number: ")


def test_a_line_is_listed_and_removed_by_its_key(web):
    assert add_line(web, "18005550123")[1]["number"] == "+18005550123"
    add_line(web, "BenWeekes")
    listed = web.get("/api/lines", headers=ADMIN).get_json()["lines"]
    assert sorted(line["number"] for line in listed) == ["+18005550123", "benweekes"]
    assert web.delete("/api/lines/7373", headers=ADMIN).status_code == 404
    assert web.delete("/api/lines/benweekes", headers=ADMIN).status_code == 204
    assert web.delete("/api/lines/18005550123", headers=ADMIN).status_code == 204
    assert web.get("/api/lines", headers=ADMIN).get_json()["lines"] == []


def test_outbound_calls_still_need_a_number_the_gateway_can_dial(web):
    answer = web.post("/api/calls", json={"to": "7373"}, headers=ADMIN)
    assert answer.status_code == 400 and "+ and 6 to 15 digits" in answer.get_json()["message"]
