"""A persona's ``[outbound]``: on calls the service places, the agent greets with a line that
says it is an AI and for whom; ``flask personas check`` refuses one that does not, and the join
body of an inbound call is unchanged."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
from flask import Flask

from calls import lifecycle
from calls.service import CallService
from config import Settings
from convoai.payload import build_join_properties
from factory.app import create_app
from personas import load_registry
from personas.loader import parse
from personas.model import OutboundSpec, Persona
from tests.fakes import FakeConvoAI
from tests.unit.test_personas import ARES, ELEVENLABS, MINIMAL, NOW

GREETING = "Hello, this is the automated AI assistant calling on behalf of Elm Dental."


def text(outbound: str, top: str = "") -> str:
    return top + MINIMAL.format(name="custom", tts=ELEVENLABS, asr=ARES) + "\n" + outbound


def load(outbound: str, top: str = "") -> tuple[Persona | None, list[str]]:
    persona, problems = parse(tomllib.loads(text(outbound, top)), source="custom.toml",
                              stem="custom", builtin=False,
                              resolve=lambda var: (f"{var}-value", "set"))
    return persona, [str(p) for p in problems]


def test_a_persona_without_outbound_has_none():
    persona, problems = load("")
    assert problems == [] and persona is not None and persona.outbound is None


def test_the_outbound_table_loads_into_a_frozen_spec():
    persona, problems = load(f'[outbound]\non_behalf_of = "Elm Dental"\n'
                             f'greeting = """\n{GREETING}\n"""\n')
    assert problems == []
    assert persona.outbound == OutboundSpec(on_behalf_of="Elm Dental", greeting=GREETING)
    with pytest.raises(dataclasses.FrozenInstanceError):
        persona.outbound.greeting = "Hi"  # type: ignore[misc]


def test_without_its_own_greeting_the_personas_greeting_must_disclose():
    persona, problems = load('[outbound]\non_behalf_of = "Elm Dental"\n')
    assert problems == [
        "custom.toml: greeting: on an outbound call it must name who the call is for "
        "(outbound.on_behalf_of: 'Elm Dental')"]
    persona, problems = load('[outbound]\non_behalf_of = "an AI assistant"\n')
    assert problems == [] and persona.outbound.greeting is None


@pytest.mark.parametrize(("outbound", "problem"), [
    ('greeting = "Hello from Elm Dental about your appointment."',
     "outbound.greeting: on an outbound call it must say the agent is an AI"),
    ('greeting = "Hello, I said to wait: Elm Dental here."',  # "said", "wait": no "AI"
     "outbound.greeting: on an outbound call it must say the agent is an AI"),
    ('greeting = "Hello, this is an AI assistant calling about your appointment."',
     "outbound.greeting: on an outbound call it must name who the call is for"),
    ('greeting = "Hi, an AI for {{clinic}}."\non_behalf_of = "{{clinic}}"',
     "outbound.greeting: uses {{clinic}}, which has no value"),
    ("", "outbound.on_behalf_of: missing"),
    ('on_behalf_of = ""', "outbound.on_behalf_of: must be text"),
    ('greeting = 3', "outbound.greeting: must be text"),
    ('voicemail = "leave it"', "outbound.voicemail: unknown field"),
])
def test_each_outbound_rule_names_its_field(outbound, problem):
    if "on_behalf_of" not in outbound and "missing" not in problem:
        outbound += '\non_behalf_of = "Elm Dental"'
    _, problems = load("[outbound]\n" + outbound + "\n")
    assert any(line.startswith(f"custom.toml: {problem}") for line in problems), problems


@pytest.mark.parametrize("said", ["an AI assistant", "an artificial intelligence",
                                  "an Automated assistant", "a virtual assistant",
                                  "an ai-powered assistant"])
def test_each_way_of_saying_ai_is_accepted_in_any_case(said):
    _, problems = load(f'[outbound]\non_behalf_of = "elm dental"\n'
                       f'greeting = "Hello, this is {said} calling for Elm Dental."\n')
    assert problems == []


def test_the_name_may_be_a_variable_or_its_default():
    variables = '[variables]\nclinic = "Elm Dental"\n'
    for name, greeting in (("{{clinic}}", "an AI assistant for {{clinic}}"),
                           ("Elm Dental", "an AI assistant for {{clinic}}")):
        _, problems = load(f'[outbound]\non_behalf_of = "{name}"\n'
                           f'greeting = "Hello, {greeting}."\n' + variables)
        assert problems == [], (name, problems)


# -- the join body -------------------------------------------------------------------------------


def appointments_body(direction: str | None) -> dict:
    settings = Settings.for_tests()
    persona = load_registry(settings).get("appointments")
    return build_join_properties(settings, persona, call_id="1a2b3c4d5e6f7a8b",
                                 channel="room-1", now=NOW, direction=direction)


def test_an_outbound_call_is_greeted_with_the_outbound_greeting():
    llm = appointments_body("outbound")["llm"]
    assert llm["greeting_message"] == (
        "Hello, this is the automated AI assistant calling on behalf of {{business_name}} "
        "about your appointment. Is now a good time?")
    assert llm["template_variables"]["business_name"] == "the clinic"


@pytest.mark.parametrize("direction", ["inbound", None])
def test_inbound_calls_keep_the_personas_greeting(direction):
    persona = load_registry(Settings.for_tests()).get("appointments")
    assert appointments_body(direction)["llm"]["greeting_message"] == persona.greeting
    assert persona.greeting.startswith("Hello, I'm an AI assistant")


def test_a_persona_without_outbound_greets_outbound_calls_as_usual():
    settings = Settings.for_tests()
    support = load_registry(settings).get("support")
    properties = build_join_properties(settings, support, call_id="1a2b3c4d5e6f7a8b",
                                       channel="room-1", now=NOW, direction="outbound")
    assert properties["llm"]["greeting_message"] == support.greeting


def test_the_appointments_persona_calls_on_behalf_of_its_clinic():
    persona = load_registry(Settings.for_tests()).get("appointments")
    assert persona.outbound is not None
    assert persona.outbound.on_behalf_of == "{{business_name}}"
    assert "opt_out" in persona.builtin_tools


# -- flask personas check / show -----------------------------------------------------------------


@pytest.fixture
def cli_app(tmp_path: Path) -> Flask:
    (tmp_path / "personas").mkdir()
    settings = Settings.for_tests(database_url=f"sqlite:///{tmp_path / 'cli.db'}",
                                  log_level="WARNING", personas_dir=str(tmp_path / "personas"))
    app = create_app(settings)
    if "personas" not in app.cli.commands:
        from personas import cli

        cli.init_app(app)
    return app


def test_check_passes_an_outbound_persona_that_discloses(cli_app, tmp_path):
    (tmp_path / "personas" / "custom.toml").write_text(
        text(f'[outbound]\non_behalf_of = "Elm Dental"\ngreeting = "{GREETING}"\n'), "utf-8")
    result = cli_app.test_cli_runner().invoke(args=["personas", "check"])
    assert result.exit_code == 0, result.output
    assert "6 personas OK" in result.output


def test_check_fails_an_outbound_persona_that_does_not_say_it_is_an_ai(cli_app, tmp_path):
    path = tmp_path / "personas" / "custom.toml"
    path.write_text(text('[outbound]\non_behalf_of = "Elm Dental"\n'
                         'greeting = "Hello, Elm Dental calling."\n'), "utf-8")
    result = cli_app.test_cli_runner().invoke(args=["personas", "check"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"{path}: outbound.greeting: on an outbound call it must say the agent is an AI "
        '("AI", "artificial intelligence", "automated" or "virtual assistant")']


def test_show_gives_the_outbound_greeting_and_its_join_body(cli_app):
    runner = cli_app.test_cli_runner()
    described = runner.invoke(args=["personas", "show", "appointments"])
    assert "on behalf of {{business_name}}: Hello, this is the automated AI" in described.output
    body = runner.invoke(args=["personas", "show", "appointments", "--json",
                               "--direction", "outbound"])
    assert body.exit_code == 0, body.output
    assert "calling on behalf of {{business_name}}" in body.output


# -- the service's join ----------------------------------------------------------------------------


@pytest.mark.parametrize(("direction", "outbound"), [("outbound", True), ("inbound", False)])
def test_the_service_joins_an_outbound_call_with_the_outbound_greeting(
        tmp_path, database_url, store, direction, outbound):
    settings = Settings.for_tests(database_url=database_url)
    convoai = FakeConvoAI()
    calls = CallService(settings, store, convoai, new_id=lambda: "call0001")
    call = store.create_call(
        channel="appointments_1", direction=direction, state=lifecycle.STARTING,
        persona="appointments", agent_name_prefix=settings.agent_name_prefix,
        new_id=calls.new_id, caller_uid=111, called_number="+12025550100")
    calls.start_agent(call.id)
    greeting = convoai.joined[call.agent_name]["llm"]["greeting_message"]
    assert greeting.startswith("Hello, this is the automated AI assistant") is outbound
