"""POST /sip/lookup and the lines API with the numbers SIP trunks send, and the lookup's
Authorization header as Agora provisions it (exactly as supplied, any scheme)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from config import ConfigError, Settings
from factory.app import create_app
from personas.startup import load_settings
from tests.conftest import fresh_database, postgres_url_or_skip
from tests.fakes import FakeConvoAI

ADMIN = {"Authorization": "Bearer sandbox-admin-token"}
BASIC = "Basic YWdvcmE6cHJvdmlzaW9uZWQtc2VjcmV0"
BARE_KEY = "k3y-0f-the-lookup-hook-Qm71"
TOKEN = "lookup-token-0123456789"

MakeApp = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path) -> MakeApp:
    """Apps on one SQLite file, with ConvoAI faked; the lookup takes ``BASIC`` unless told."""

    def build(**changes: object) -> Flask:
        values: dict[str, object] = {"database_url": f"sqlite:///{tmp_path / 'sip.db'}",
                                     "log_level": "WARNING", "sip_lookup_auth": BASIC}
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


def lookup(web: FlaskClient, did: object, *, auth: str | None = BASIC, callerid: object = "",
           ) -> tuple[int, dict]:
    headers = {"Authorization": auth} if auth is not None else {}
    answer = web.post("/sip/lookup", headers=headers, json={
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


@pytest.mark.postgres
def test_a_value_postgresql_refuses_is_a_400_and_records_nothing(make_app):
    # PostgreSQL takes no NUL in text: the driver's DataError reaches the JSON error handler
    # (wrapped by SQLAlchemy) as a clear 400, and the transaction was rolled back.
    app = make_app(database_url=fresh_database(postgres_url_or_skip()))
    web = app.test_client()
    try:
        answer = web.post("/api/lines", headers=ADMIN,
                          json={"number": "+18005550123", "label": "front\x00desk"})
        assert answer.status_code == 400, answer.get_data(as_text=True)
        assert answer.get_json() == {
            "error": "bad_request", "message": "the request holds a value the store cannot "
            "take (such as a NUL character)"}
        assert web.get("/api/lines", headers=ADMIN).get_json()["lines"] == []
    finally:
        app.extensions["store"].engine.dispose()


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


@pytest.mark.parametrize(("path", "body", "message"), [
    ("/api/calls", {"to": "+12025550100", "from": "+12025550199", "persona": "nobody"},
     "unknown persona 'nobody'"),
    ("/api/calls", {"to": "+12025550100", "from": "+12025550199", "variables": ["Ada"]},
     "variables must be an object of strings"),
    ("/api/numbers", {"persona": "nobody"}, "unknown persona 'nobody'"),
    ("/api/numbers", {"label": 7}, "label must be text"),
    ("/api/lines", {"number": "+18005550123", "persona": "nobody"}, "unknown persona 'nobody'"),
    ("/api/lines", {"number": "+18005550123", "pins": {"1": "nobody"}}, "pins must map digits"),
    ("/api/lines", {"number": "+18005550123", "pins": {"1": ["support"]}},
     "pins must map digits"),
    ("/api/lines", {"number": "+18005550123", "variables": {"name": 1}},
     "variables must be an object of strings"),
    ("/api/lines", {"number": "+18005550123", "label": ["a"]}, "label must be text"),
])
def test_what_the_sip_api_is_given_is_checked_once_and_a_wrong_value_records_nothing(
        web, path, body, message):
    answer = web.post(path, json=body, headers=ADMIN)
    assert answer.status_code == 400, answer.get_json()
    assert message in answer.get_json()["message"]
    for listing, key in (("/api/calls", "calls"), ("/api/numbers", "numbers"),
                         ("/api/lines", "lines")):
        assert web.get(listing, headers=ADMIN).get_json()[key] == []


def test_removing_a_line_by_what_is_no_number_is_a_400(web):
    answer = web.delete("/api/lines/a b", headers=ADMIN)
    assert answer.status_code == 400 and answer.get_json()["message"].startswith("number: ")


# -- the Authorization header ------------------------------------------------------------------


@pytest.mark.parametrize("auth", [BASIC, BARE_KEY, f"Bearer {TOKEN}"])
def test_the_configured_header_value_is_taken_whatever_its_scheme(make_app, auth):
    setting = {"sip_lookup_auth": auth} if auth != f"Bearer {TOKEN}" else {
        "sip_lookup_auth": "", "sip_lookup_token": TOKEN}
    web = make_app(**setting).test_client()
    add_line(web, "7373")
    assert lookup(web, "7373", auth=auth)[0] == 200


@pytest.mark.parametrize("auth", [
    None, "", "Bearer YWdvcmE6cHJvdmlzaW9uZWQtc2VjcmV0", "basic YWdvcmE6cHJvdmlzaW9uZWQtc2VjcmV0",
    "YWdvcmE6cHJvdmlzaW9uZWQtc2VjcmV0", BASIC + "x", BASIC[:-1], f"Bearer {BASIC}",
    f"Bearer {TOKEN}", "Basic é",
])
def test_anything_but_exactly_the_configured_value_is_401(web, auth):
    add_line(web, "7373")
    status, answer = lookup(web, "7373", auth=auth)
    assert status == 401 and answer["error"] == "unauthorized"


def test_a_bare_key_is_not_taken_as_a_bearer_token(make_app):
    web = make_app(sip_lookup_auth=BARE_KEY).test_client()
    add_line(web, "7373")
    assert lookup(web, "7373", auth=f"Bearer {BARE_KEY}")[0] == 401


def test_the_token_is_short_for_bearer_and_either_is_taken_with_both_set(make_app):
    web = make_app(sip_lookup_token=TOKEN).test_client()
    add_line(web, "7373")
    assert lookup(web, "7373", auth=BASIC)[0] == 200
    assert lookup(web, "7373", auth=f"Bearer {TOKEN}")[0] == 200
    assert lookup(web, "7373", auth=TOKEN)[0] == 401


def test_without_a_credential_the_hook_is_closed_with_404(make_app):
    web = make_app(sip_lookup_auth="").test_client()
    add_line(web, "7373")
    answer = web.post("/sip/lookup", json={"did": "7373"}, headers={"Authorization": BASIC})
    assert answer.status_code == 404 and "SIP_LOOKUP_AUTH" in answer.get_json()["message"]


def test_start_up_warns_once_when_lines_exist_but_the_hook_is_closed(make_app, caplog):
    add_line(make_app().test_client(), "7373")
    caplog.set_level(logging.WARNING, logger="app")
    make_app(sip_lookup_auth="")
    closed = [r for r in caplog.records if "SIP LOOKUP CLOSED" in r.getMessage()]
    assert len(closed) == 1 and closed[0].levelno == logging.WARNING
    caplog.clear()
    make_app()
    assert not [r for r in caplog.records if "SIP LOOKUP CLOSED" in r.getMessage()]


def test_no_warning_without_lines(make_app, caplog):
    caplog.set_level(logging.WARNING, logger="app")
    make_app(sip_lookup_auth="")
    assert not [r for r in caplog.records if "SIP LOOKUP CLOSED" in r.getMessage()]


# -- the setting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "problem"), [
    ("Basic abc", "SIP_LOOKUP_AUTH must be at least 16 characters"),
    ("Bearer é-0123456789abcdef", "SIP_LOOKUP_AUTH must be printable ASCII"),
    ("Basic 0123456789abcdef\n", "SIP_LOOKUP_AUTH must be printable ASCII"),
])
def test_a_lookup_header_value_that_could_never_match_is_a_config_problem(value, problem):
    with pytest.raises(ConfigError, match=problem) as info:
        Settings.for_tests(sip_lookup_auth=value)
    assert value not in str(info.value)


def test_the_lookup_header_value_is_a_secret():
    settings = load_settings({"SIP_LOOKUP_AUTH": f"  {BASIC}  "}, dotenv=False)
    assert settings.sip_lookup_auth == BASIC
    assert BASIC not in repr(settings)
    secrets = settings.secret_values()
    assert BASIC in secrets and BASIC.split()[1] in secrets
