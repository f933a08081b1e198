"""PII redaction: the rules (privacy/redaction.py), the persona keys, and what reaches the store,
the API, the exports and the operator's events."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import re
from pathlib import Path

import pytest
import responses

from calls.lifecycle import CallerJoined, CallerLeft
from calls.outbox import EventSender
from config import Settings
from factory.app import create_app
from personas.loader import parse
from privacy.redaction import KINDS, Redactor, iban_ok, luhn_ok
from tests.unit.test_personas import persona_file

TOKEN = {"Authorization": "Bearer sandbox-admin-token"}
SECRET = "whsec_" + base64.b64encode(b"r" * 32).decode()
SPOKEN_CARD = "four one one one " + "one " * 11 + "one"  # 4111 1111 1111 1111, spoken
RAW = {"card": "4111 1111 1111 1111", "email": "jane.doe@example.com",
       "phone": "+1 415 555 0132", "spoken": SPOKEN_CARD}
HISTORY = [
    {"role": "assistant", "content": "Hello, how can I help?"},
    {"role": "user", "content": f"My card is {RAW['card']}, or {SPOKEN_CARD}."},
    {"role": "user", "content": f"Mail {RAW['email']} or call {RAW['phone']}; "
                                "order 4111 1111 1111 1112."},
]
EXPECTED = [
    {"role": "assistant", "content": "Hello, how can I help?"},
    {"role": "user", "content": "My card is [card_number], or [card_number]."},
    {"role": "user", "content": "Mail [email] or call [phone]; order 4111 1111 1111 1112."},
]


# -- the rules -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected", "counts"), [
    ("card 4111 1111 1111 1111 ok", "card [card_number] ok", {"card_number": 1}),
    ("4111-1111-1111-1111", "[card_number]", {"card_number": 1}),
    (SPOKEN_CARD, "[card_number]", {"card_number": 1}),
    ("it is 4111 one one one one one one one one one one one one", "it is [card_number]",
     {"card_number": 1}),
    ("amex 3782 822463 10005", "amex [card_number]", {"card_number": 1}),
    ("order 4111 1111 1111 1112 shipped", "order 4111 1111 1111 1112 shipped", {}),
    ("ssn 123-45-6789", "ssn [us_ssn]", {"us_ssn": 1}),
    ("my social security number is one two three four five six seven eight nine",
     "my social security number is [us_ssn]", {"us_ssn": 1}),
    ("area 666-45-6789 is never issued", "area 666-45-6789 is never issued", {}),
    ("write to jane.doe@example.com", "write to [email]", {"email": 1}),
    ("it's john dot smith at gmail dot com", "it's [email]", {"email": 1}),
    ("call +44 20 7946 0958 or (415) 555-0132", "call [phone] or [phone]", {"phone": 2}),
    ("five five five one two three four five six seven", "[phone]", {"phone": 1}),
    ("IBAN DE89 3704 0044 0532 0130 00 is mine", "IBAN [iban] is mine", {"iban": 1}),
    ("GB82WEST12345698765432.", "[iban].", {"iban": 1}),
    ("GB82WEST12345698765433 fails mod 97", "GB82WEST12345698765433 fails mod 97", {}),
    ("2 kids, born 1990-01-15, $1,500, at 10.30, years 2024 2025 2026",
     "2 kids, born 1990-01-15, $1,500, at 10.30, years 2024 2025 2026", {}),
])
def test_each_kind_becomes_its_placeholder_and_the_rest_is_kept(text, expected, counts):
    assert Redactor().text(text) == (expected, counts)


def test_checksums():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE88 3704 0044 0532 0130 00")


def test_a_persona_redacts_only_the_kinds_it_lists_and_its_own_patterns():
    only_email = Redactor(kinds=("email",), patterns=(("member_id", re.compile(r"M-\d{6}")),))
    assert only_email.text(f"M-123456, {RAW['card']}, {RAW['email']}") == (
        f"[member_id], {RAW['card']}, [email]", {"member_id": 1, "email": 1})
    assert Redactor(kinds=()).value(HISTORY) == (HISTORY, {})


def test_structures_are_walked_and_their_keys_kept():
    redacted, counts = Redactor().value(HISTORY)
    assert redacted == EXPECTED and counts == {"card_number": 2, "email": 1, "phone": 1}


# -- the persona keys ------------------------------------------------------------------------

PERSONA = {"name": "custom", "description": "d", "prompt": "p. You are an AI assistant.",
           "greeting": "Hi, I'm an AI assistant.", "failure_message": "Sorry.",
           "llm": {"url": "https://llm.example.com/v1/chat/completions",
                   "api_key_env": "K", "model": "m"},
           "tts": {"vendor": "microsoft", "params": {"key_env": "T", "region": "eastus",
                                                     "voice_name": "en-US-AndrewNeural"}}}


def load(**extra):
    return parse({**PERSONA, **extra}, source="custom.toml", stem="custom", builtin=False,
                 resolve=lambda var: ("value", "set"))


def test_a_persona_redacts_every_kind_unless_it_says_otherwise():
    persona, problems = load()
    assert problems == [] and persona.redaction.kinds == KINDS
    persona, _ = load(redact=[])
    assert persona.redaction.kinds == () and not persona.redaction.active
    persona, _ = load(redact=["email"], redact_patterns={"member_id": r"M-\d{6}"})
    assert persona.redaction.kinds == ("email",)
    assert persona.redaction.text("M-123456") == ("[member_id]", {"member_id": 1})


@pytest.mark.parametrize(("extra", "field", "message"), [
    ({"redact": ["credit_card"]}, "redact", "unknown kind 'credit_card'"),
    ({"redact": "email"}, "redact", "must be a list"),
    ({"redact_patterns": {"member_id": "M-(\\d"}}, "redact_patterns.member_id",
     "not a valid regular expression"),
    ({"redact_patterns": {"Member": "M"}}, "redact_patterns.Member", "the name must be"),
    ({"redact_patterns": {"email": "x"}}, "redact_patterns.email", "built-in kind"),
    ({"redact_patterns": {"anything": "x*"}}, "redact_patterns.anything", "empty text"),
])
def test_a_wrong_redaction_setting_is_a_file_field_problem(extra, field, message):
    persona, problems = load(**extra)
    assert persona is None
    assert any(p.field == field and message in p.message for p in problems), problems
    assert str(problems[0]).startswith(f"custom.toml: {field}: ")


# -- what is stored ----------------------------------------------------------------------------

def make_app(tmp_path: Path, extra: str = "", **changes):
    persona_file(tmp_path / "personas", extra=extra)
    changes = {"log_level": "WARNING", **changes}
    settings = Settings.for_tests(database_url=f"sqlite:///{tmp_path / 'app.db'}",
                                  agent_start_mode="inline",
                                  personas_dir=str(tmp_path / "personas"),
                                  default_persona="custom", **changes)
    return create_app(settings)


def a_call(app, history, channel="line_pii"):
    """A call through the service with a fake ConvoAI whose agent said ``history``."""
    from calls.service import CallService
    from tests.fakes import FakeConvoAI

    store, convoai = app.extensions["store"], FakeConvoAI()
    ids = (f"call{n:04d}" for n in itertools.count(1))
    service = CallService(app.extensions["settings"], store, convoai,
                          personas=app.extensions["calls"].personas, new_id=lambda: next(ids))
    service.handle_caller_event(CallerJoined(channel, 111, 1, f"{channel}-j"), event_type=103)
    call = store.calls_in_channel(channel)[0]
    convoai.agents[call.agent_id].history.extend(history)
    service.handle_caller_event(CallerLeft(channel, 111, 2, f"{channel}-l", reason=1),
                                event_type=104)
    return store.get_call(call.id)


def database_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("app.db*"))


def raw_values_in(data: bytes | str) -> list[str]:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    compact = re.sub(r"[\s-]", "", text)
    return [name for name, value in RAW.items()
            if value in text or re.sub(r"[\s-]", "", value) in compact] + (
        ["card digits"] if "4111111111111111" in compact else [])


@responses.activate
def test_a_transcript_is_stored_exported_and_sent_with_placeholders_only(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # every record any logger makes, whatever LOG_LEVEL says
    app = make_app(tmp_path, events_webhook_url="https://ops.example.com/hook",
                   events_webhook_secret=SECRET, log_level="DEBUG")
    store = app.extensions["store"]
    store.emit_events = True
    call = a_call(app, HISTORY)
    web = app.test_client()
    detail = web.get(f"/api/calls/{call.id}", headers=TOKEN).get_json()
    assert detail["transcript"] == EXPECTED
    history = [e for e in detail["timeline"] if e["kind"] == "agent_history"]
    assert history[-1]["detail"]["redacted"] == {"card_number": 2, "email": 1, "phone": 1}
    responses.post("https://ops.example.com/hook", status=204)
    sender = EventSender("https://ops.example.com/hook", SECRET, store)
    sender.deliver_due()
    sent = {json.loads(c.request.body)["type"]: c.request.body for c in responses.calls}
    transcript_body = sent["transcript.ready"]
    assert json.loads(transcript_body)["data"]["transcript"] == EXPECTED
    exported = web.get("/api/calls.jsonl", headers=TOKEN).get_data()
    csv_export = web.get("/api/calls.csv", headers=TOKEN).get_data()
    page = web.get(f"/api/calls/{call.id}", headers=TOKEN).get_data()
    login = web.get("/dashboard/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login).group(1)
    web.post("/dashboard/login", data={"token": "sandbox-admin-token", "csrf_token": csrf})
    dashboard = web.get(f"/dashboard/calls/{call.id}")
    assert dashboard.status_code == 200 and b"[card_number]" in dashboard.data
    store.engine.dispose()
    # Every record with its structured fields (the JSON lines carry them all).
    logged = "\n".join(json.dumps(vars(r), default=str) for r in caplog.records)
    assert call.id in logged  # the logs of this call were captured, so their check counts
    for where, data in (("database", database_bytes(tmp_path)), ("api", page),
                        ("jsonl", exported), ("csv", csv_export), ("event", transcript_body),
                        ("dashboard", dashboard.data), ("logs", logged)):
        assert raw_values_in(data) == [], where
    # The test can fail: the raw history, stored verbatim, is found by the same check.
    assert raw_values_in(json.dumps(HISTORY)) != []


def test_convoais_history_notification_is_redacted_too(tmp_path, signed_post):
    app = make_app(tmp_path)
    store = app.extensions["store"]
    call = a_call(app, [])
    body, headers = signed_post(17, 103, notice_id="h-1", agent_id=call.agent_id,
                                name=f"phoneagent-{call.id}", channel=call.channel,
                                labels={"call_id": call.id, "service": "phoneagent"},
                                contents=HISTORY)
    answer = app.test_client().post("/webhook", data=body, headers=headers)
    assert answer.status_code == 200 and answer.get_json()["outcome"] == "recorded"
    detail = app.test_client().get(f"/api/calls/{call.id}", headers=TOKEN).get_json()
    assert detail["transcript"] == EXPECTED
    store.engine.dispose()
    assert raw_values_in(database_bytes(tmp_path)) == []


def test_a_persona_with_redact_empty_keeps_the_words(tmp_path):
    app = make_app(tmp_path, extra="redact = []\n")
    call = a_call(app, HISTORY)
    detail = app.test_client().get(f"/api/calls/{call.id}", headers=TOKEN).get_json()
    assert detail["transcript"] == HISTORY


def test_a_personas_own_pattern_is_redacted_in_the_store(tmp_path):
    app = make_app(tmp_path, extra='redact = ["email"]\n'
                                   'redact_patterns = { member_id = "M-\\\\d{6}" }\n')
    call = a_call(app, [{"role": "user", "content": "I am M-123456, jane@example.com"}])
    detail = app.test_client().get(f"/api/calls/{call.id}", headers=TOKEN).get_json()
    assert detail["transcript"] == [{"role": "user", "content": "I am [member_id], [email]"}]


