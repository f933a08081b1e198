"""Personas: the built-ins, loading and checking files, routing, template variables, redaction,
and the `flask personas` commands."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from jsonschema import Draft202012Validator

from config import ConfigError, Settings
from convoai.payload import agent_name, build_join_properties, redact_properties
from factory.app import create_app
from personas import Registry, UnknownPersona, inspect_personas, load_registry, parse_routes
from personas.__main__ import main as personas_main
from personas.startup import load_settings

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "convoai" / "join_schema.json").read_text("utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)
BUILTINS = ["appointments", "orders", "support", "tarot", "triage"]
HEX = "0123456789abcdef0123456789abcdef"
PRODUCTION = dict(agora_app_id=HEX, agora_app_certificate=HEX, agora_customer_id="cid",
                  agora_customer_secret="customer-secret-1", agora_ncs_secret="ncs-secret-1")
SECRETS = {"openai_api_key": "sk-live-Q7w8e9r0", "elevenlabs_api_key": "el-live-Z1x2c3v4",
           "elevenlabs_voice_id": "voice-live-M5n6b7"}
NOW = datetime(2025, 6, 3, 13, 30, tzinfo=UTC)

MINIMAL = '''
name = "{name}"
description = "A test persona."
prompt = "You are a test agent. You are an AI assistant."
greeting = "Hi, I'm an AI assistant. How can I help?"
failure_message = "Sorry, one moment."

[llm]
url = "https://llm.example.com/v1/chat/completions"
api_key_env = "TEST_LLM_KEY"
model = "test-model"

{tts}

{asr}
'''
ELEVENLABS = ('[tts]\nvendor = "elevenlabs"\nparams = { base_url = "wss://api.elevenlabs.io/v1", '
              'model_id = "eleven_flash_v2_5", key_env = "TEST_TTS_KEY", voice_id = "v1" }')
ARES = '[asr]\nvendor = "ares"'


def persona_file(folder: Path, name: str = "custom", *, tts: str = ELEVENLABS, asr: str = ARES,
                 extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(extra + MINIMAL.format(name=name, tts=tts, asr=asr), "utf-8")
    return path


def problems_of(settings_kwargs: dict, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_registry(Settings.for_tests(**settings_kwargs, persona_keys=env or {}))
    return info.value.problems


def body(settings: Settings, persona_name: str, **kwargs) -> dict:
    registry = load_registry(settings)
    call_id = kwargs.pop("call_id", "1a2b3c4d5e6f7a8b")
    properties = build_join_properties(settings, registry.get(persona_name), call_id=call_id,
                                       channel=kwargs.pop("channel", "room-1"), now=NOW,
                                       **kwargs)
    return {"name": agent_name(settings.agent_name_prefix, call_id), "properties": properties}


def schema_errors(document: dict) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(document)]


def spoken(registry: Registry, name: str, text: str) -> str:
    """``text`` with the persona's default variables filled in, as a caller would hear it."""
    variables = dict(registry.get(name).variables)
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: variables[m.group(1)], text)


# -- the built-ins ---------------------------------------------------------------------------


def test_the_five_built_ins_load_and_support_is_the_default():
    registry = load_registry(Settings.for_tests())
    assert registry.names() == BUILTINS
    assert registry.route("any-channel").name == "support"
    assert all(registry.get(name).builtin for name in BUILTINS)


@pytest.mark.parametrize("name", BUILTINS)
def test_each_built_in_gives_a_join_body_that_passes_convoais_schema(name):
    document = body(Settings.for_tests(), name)
    assert schema_errors(document) == []
    properties = document["properties"]
    assert properties["agent_rtc_uid"] == "222" and properties["remote_rtc_uids"] == ["111"]
    assert properties["enable_string_uid"] is False
    assert properties["labels"]["persona"] == name
    assert properties["parameters"]["farewell_config"] == {"graceful_enabled": True}
    assert properties["llm"]["system_messages"][0]["role"] == "system"


@pytest.mark.parametrize("name", BUILTINS)
def test_each_built_in_greeting_says_ai_assistant_in_under_25_words(name):
    registry = load_registry(Settings.for_tests())
    greeting = spoken(registry, name, registry.get(name).greeting)
    assert "AI assistant" in greeting
    assert len(greeting.split()) < 25, greeting
    assert "{{" not in greeting


@pytest.mark.parametrize("name", BUILTINS)
def test_each_built_in_prompt_reads_well_aloud(name):
    persona = load_registry(Settings.for_tests()).get(name)
    for text in (persona.prompt, persona.greeting, persona.failure_message,
                 persona.silence_reminder):
        for line in text.splitlines():
            assert not re.match(r"\s*([-*•#>]|\d+[.)])\s", line), line
        assert not re.search(r"\*\*|__|`|#|\||\[.*\]\(", text), text
        sentences = [s for s in re.split(r"(?<=[.?!])\s+", text) if s]
        longest = max(sentences, key=lambda s: len(s.split()))
        assert len(longest.split()) <= 40, longest
    assert "AI assistant" in persona.prompt
    assert "never use lists" in persona.prompt.lower()


def test_tarot_and_triage_opt_out_of_retention_and_the_others_do_not():
    settings = Settings.for_tests()
    for name in BUILTINS:
        expected = name in ("tarot", "triage")
        assert body(settings, name)["properties"]["parameters"]["opt_out"] is expected, name


def test_triage_and_tarot_carry_their_safety_instructions():
    registry = load_registry(Settings.for_tests())
    triage, tarot = registry.get("triage"), registry.get("tarot")
    assert "{{emergency_number}}" in triage.greeting and "{{next_step}}" in triage.prompt
    assert "{{crisis_line}}" in tarot.prompt
    assert "medical, legal or financial advice" in tarot.prompt
    assert "Never claim to know the future" in tarot.prompt


# -- keys ------------------------------------------------------------------------------------


def test_production_needs_the_keys_of_the_default_persona_and_names_file_and_field():
    problems = problems_of(PRODUCTION)
    assert "personas/support.toml: llm.api_key_env: OPENAI_API_KEY is required when " \
           "AGORA_APP_ID is set (this persona is in use)" in problems
    assert any(p.startswith("personas/support.toml: tts.params.key_env: ELEVENLABS_API_KEY")
               for p in problems)
    assert any(p.startswith("personas/support.toml: tts.params.voice_id_env: ELEVENLABS_VOICE_ID")
               for p in problems)


def as_environment(settings_kwargs: dict) -> dict[str, str]:
    return {name.upper(): str(value) for name, value in settings_kwargs.items()}


def test_production_starts_with_the_keys_and_never_prints_them(tmp_path):
    settings = load_settings(as_environment({**PRODUCTION, **SECRETS}), dotenv=False)
    assert settings.mode == "production"
    for secret in SECRETS.values():
        assert secret in settings.secret_values()
    persona_file(tmp_path)
    problems = problems_of({**PRODUCTION, **SECRETS, "personas_dir": str(tmp_path),
                            "default_persona": "custom"}, {"TEST_TTS_KEY": "tts-live-K9j8"})
    assert problems == [f"{tmp_path}/custom.toml: llm.api_key_env: TEST_LLM_KEY is required "
                        "when AGORA_APP_ID is set (this persona is in use)"]
    assert not any(s in "".join(problems) for s in [*SECRETS.values(), "tts-live-K9j8"])


def test_a_missing_key_of_a_persona_not_in_use_does_not_stop_production(tmp_path):
    persona_file(tmp_path)
    settings = Settings.for_tests(**PRODUCTION, **SECRETS, personas_dir=str(tmp_path))
    custom = load_registry(settings).get("custom")
    assert [ref.var for ref in custom.missing_keys] == ["TEST_LLM_KEY", "TEST_TTS_KEY"]
    strict = inspect_personas(settings, strict=True).problems
    assert any("custom.toml: llm.api_key_env: TEST_LLM_KEY is required" in p for p in strict)


def test_routes_put_a_persona_in_use(tmp_path):
    persona_file(tmp_path)
    problems = problems_of({**PRODUCTION, **SECRETS, "personas_dir": str(tmp_path),
                            "persona_routes": "c_*=custom"})
    assert any("custom.toml: tts.params.key_env: TEST_TTS_KEY is required" in p
               for p in problems)


def test_sandbox_fills_missing_keys_with_placeholders(tmp_path):
    persona_file(tmp_path)
    settings = load_settings({"PERSONAS_DIR": str(tmp_path), "DEFAULT_PERSONA": "custom"},
                             dotenv=False)
    properties = body(settings, "custom")["properties"]
    assert properties["llm"]["api_key"] == "sandbox-test_llm_key"
    assert properties["tts"]["params"]["key"] == "sandbox-test_tts_key"
    assert "sandbox-test_llm_key" in settings.secret_values()


def test_keys_come_from_the_environment_and_are_redacted_from_logs(tmp_path):
    persona_file(tmp_path)
    settings = load_settings({"PERSONAS_DIR": str(tmp_path), "TEST_LLM_KEY": "llm-env-H4g5",
                                  "TEST_TTS_KEY": "tts-env-P2o3"})
    custom = load_registry(settings).get("custom")
    assert custom.llm["api_key"] == "llm-env-H4g5"
    assert {"llm-env-H4g5", "tts-env-P2o3"} <= set(settings.secret_values())


def test_from_env_reports_persona_problems_in_the_same_message(tmp_path):
    persona_file(tmp_path, tts=ELEVENLABS.replace("elevenlabs", "acme", 1))
    with pytest.raises(ConfigError) as info:
        load_settings({"PERSONAS_DIR": str(tmp_path), "PSTN_UID": "abc"})
    message = str(info.value)
    assert "PSTN_UID must be int" in message
    assert f"{tmp_path}/custom.toml: tts.vendor: unknown TTS vendor 'acme'" in message


def test_settings_that_personas_now_own_are_gone_and_ignored():
    from config import _FIELDS

    moved = ("llm_url", "llm_model", "elevenlabs_model_id", "elevenlabs_base_url",
             "asr_language", "agent_idle_timeout_s")
    assert not set(moved) & set(_FIELDS)
    settings = load_settings({"LLM_URL": "not a url", "AGENT_IDLE_TIMEOUT_S": "soon"})
    assert settings.sandbox and settings.default_persona == "support"


# -- checking files --------------------------------------------------------------------------


@pytest.mark.parametrize(("tts", "asr", "extra", "field", "words"), [
    (ELEVENLABS.replace('"elevenlabs"', '"acme"'), ARES, "", "tts.vendor",
     "unknown TTS vendor 'acme'"),
    (ELEVENLABS, '[asr]\nvendor = "whisperer"', "", "asr.vendor", "unknown ASR vendor"),
    (ELEVENLABS.replace(', voice_id = "v1"', ""), ARES, "", "tts.params.voice_id",
     "missing: the elevenlabs TTS vendor requires it"),
    ('[tts]\nvendor = "microsoft"\nparams = { key_env = "K", voice_name = "en-US-AndrewNeural" }',
     ARES, "", "tts.params.region", "missing: the microsoft TTS vendor requires it"),
    ('[tts]\nvendor = "cartesia"\nparams = { api_key_env = "K", model_id = "sonic-2" }', ARES, "",
     "tts.params.voice", "missing"),
    ('[tts]\nvendor = "deepgram"\nparams = { api_key_env = "K" }', ARES, "", "tts.params.model",
     "missing"),
    ('[tts]\nvendor = "openai"\nparams = { voice = "coral", api_key_env = "K", model = "m" }',
     ARES, "", "tts.params.base_url", "missing"),
    (ELEVENLABS, '[asr]\nvendor = "deepgram"\nparams = { model = "nova-3" }', "",
     "asr.params.key", "name the environment variable that holds it in key_env"),
    (ELEVENLABS, '[asr]\nvendor = "microsoft"\nparams = { key_env = "K", region = "eastus" }', "",
     "asr.params.language", "missing"),
    (ELEVENLABS.replace('key_env = "TEST_TTS_KEY"', 'key = "el-literal-S3cr3t"'), ARES, "",
     "tts.params.key", "a key must not be written in the file"),
    (ELEVENLABS, ARES, 'colour = "blue"\n', "colour", "unknown field"),
    (ELEVENLABS, ARES, "idle_timeout = -5\n", "idle_timeout", "between 0 and 259200"),
    (ELEVENLABS, ARES, 'opt_out = "yes"\n', "opt_out", "true or false"),
    (ELEVENLABS, ARES, 'labels = { persona = "x" }\n', "labels.persona", "set by the service"),
    (ELEVENLABS + "\nspeed = 3.0", ARES, "", "tts.speed", "unknown field"),
    (ELEVENLABS.replace("}", ", speed = 3.0 }"), ARES, "", "tts.params.speed", "at most 1.2"),
    # TOML dates and times are not JSON: checked as they are, never a crash.
    (ELEVENLABS.replace("}", ", stability = 1979-05-27 }"), ARES, "", "tts.params.stability",
     "must be a number"),
    (ELEVENLABS, ARES, 'analysis = { schema = { type = "object", description = 07:32:00 } }\n',
     "analysis.schema", "is not a valid JSON Schema"),
])
def test_a_broken_persona_is_reported_by_file_and_field(tmp_path, tts, asr, extra, field, words):
    path = persona_file(tmp_path, tts=tts, asr=asr, extra=extra)
    problems = problems_of({"personas_dir": str(tmp_path)})
    mine = [p for p in problems if p.startswith(f"{path}: {field}: ")]
    assert mine and words in mine[0], problems
    assert "el-literal-S3cr3t" not in "".join(problems)


@pytest.mark.parametrize(("section", "field", "words"), [
    ('vendor = "acme"', "llm.vendor", "unknown LLM vendor 'acme'"),
    ('style = "claude"', "llm.style", "unknown LLM style 'claude'"),
    ('api_key = "sk-literal-key"', "llm.api_key", "must not be written in the file"),
    ("max_history = 0", "llm.max_history", "between 1 and 1000"),
    ('params = { model = "x" }', "llm.params.model", "set the model in llm.model"),
])
def test_llm_problems_name_the_field(tmp_path, section, field, words):
    path = persona_file(tmp_path)
    text = path.read_text().replace('model = "test-model"', f'model = "test-model"\n{section}')
    path.write_text(text)
    problems = problems_of({"personas_dir": str(tmp_path)})
    assert any(p.startswith(f"{path}: {field}: ") and words in p for p in problems), problems
    assert "sk-literal-key" not in "".join(problems)


def test_bad_toml_and_a_name_that_is_not_the_file_name_are_problems(tmp_path):
    (tmp_path / "broken.toml").write_text('name = "broken"\nprompt = """never closed\n')
    persona_file(tmp_path, "renamed").write_text(
        MINIMAL.format(name="other", tts=ELEVENLABS, asr=ARES))
    problems = problems_of({"personas_dir": str(tmp_path)})
    assert any(p.startswith(f"{tmp_path}/broken.toml: toml: not valid TOML") for p in problems)
    assert any(p.startswith(f"{tmp_path}/renamed.toml: name: must match the file's name")
               for p in problems)


def test_a_variable_without_a_value_is_a_problem(tmp_path):
    path = persona_file(tmp_path, extra='silence_reminder = "Still there, {{first_name}}?"\n')
    text = path.read_text().replace("You are a test agent.", "Caller: {{caller_number}}.")
    path.write_text(text)
    problems = problems_of({"personas_dir": str(tmp_path)})
    assert f"{path}: silence_reminder: uses {{{{first_name}}}}, which has no value; give it a " \
           "default under [variables]" in problems
    assert any(p.startswith(f"{path}: prompt: uses {{{{caller_number}}}}") and
               "give it a default" in p for p in problems)


def test_unknown_default_persona_and_route_targets_are_problems():
    problems = problems_of({"default_persona": "nobody", "persona_routes": "x_*=ghost"})
    assert any(p.startswith("DEFAULT_PERSONA: no persona named 'nobody'") for p in problems)
    assert any(p.startswith("PERSONA_ROUTES: x_*=ghost: no persona named 'ghost'")
               for p in problems)


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"persona_routes": "tarot_*"}, "PERSONA_ROUTES: rule 1 ('tarot_*') must be glob=persona"),
    ({"persona_routes": "=tarot"}, "has no channel glob"),
    ({"persona_routes": "a*=Tarot Reader"}, "the persona name must be"),
    ({"timezone": "Mars/Olympus"}, "TIMEZONE: unknown time zone 'Mars/Olympus'"),
    ({"timezone": "America"}, "TIMEZONE: unknown time zone 'America'"),
    ({"personas_dir": "/nonexistent/personas"}, "PERSONAS_DIR: /nonexistent/personas is not a "
                                                "folder"),
    ({"default_persona": "Support Desk"}, "DEFAULT_PERSONA must be a persona name"),
])
def test_persona_settings_are_checked(kwargs, problem):
    assert any(problem in p for p in problems_of(kwargs))


def test_a_user_persona_replaces_the_built_in_of_the_same_name(tmp_path):
    persona_file(tmp_path, "support")
    registry = load_registry(Settings.for_tests(personas_dir=str(tmp_path)))
    support = registry.get("support")
    assert not support.builtin and support.description == "A test persona."
    assert registry.names() == BUILTINS


VENDOR_VARIANTS = [
    ('[tts]\nvendor = "microsoft"\nparams = { key_env = "AZURE_SPEECH_KEY", region = "eastus", '
     'voice_name = "en-US-AndrewNeural" }'),
    ('[tts]\nvendor = "openai"\nparams = { api_key_env = "OPENAI_API_KEY", base_url = '
     '"https://api.openai.com/v1", model = "gpt-4o-mini-tts", voice = "coral" }'),
    ('[tts]\nvendor = "cartesia"\nparams = { api_key_env = "CARTESIA_API_KEY", model_id = '
     '"sonic-2", voice = { mode = "id", id_env = "CARTESIA_VOICE_ID" } }'),
    ('[tts]\nvendor = "deepgram"\nparams = { api_key_env = "DEEPGRAM_API_KEY", '
     'model = "aura-2-thalia-en" }'),
]
ASR_VARIANTS = [
    ('[asr]\nvendor = "deepgram"\nparams = { key_env = "DEEPGRAM_API_KEY", model = "nova-3", '
     'language = "en" }'),
    ('[asr]\nvendor = "microsoft"\nparams = { key_env = "AZURE_SPEECH_KEY", region = "eastus", '
     'language = "en-US" }'),
    ARES,
]


@pytest.mark.parametrize("tts", VENDOR_VARIANTS)
@pytest.mark.parametrize("asr", ASR_VARIANTS)
def test_the_documented_vendors_load_and_pass_the_schema(tmp_path, tts, asr):
    persona_file(tmp_path, tts=tts, asr=asr)
    settings = Settings.for_tests(personas_dir=str(tmp_path))
    assert schema_errors(body(settings, "custom")) == []


def test_nested_env_fields_are_read(tmp_path):
    persona_file(tmp_path, tts=VENDOR_VARIANTS[2])
    settings = Settings.for_tests(personas_dir=str(tmp_path),
                                  persona_keys={"CARTESIA_VOICE_ID": "cv-123"})
    tts = body(settings, "custom")["properties"]["tts"]
    assert tts["params"]["voice"] == {"mode": "id", "id": "cv-123"}
    assert tts["params"]["api_key"] == "sandbox-cartesia_api_key"


def test_the_worked_example_in_the_docs_loads_and_passes_the_schema(tmp_path):
    text = (ROOT / "docs" / "personas.md").read_text("utf-8")
    example = text.split("as `dentist.toml`:\n\n```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "dentist.toml").write_text(example)
    settings = Settings.for_tests(personas_dir=str(tmp_path), persona_routes="dentist_*=dentist")
    document = body(settings, "dentist", channel="dentist_reception")
    assert schema_errors(document) == []
    properties = document["properties"]
    assert properties["llm"]["vendor"] == "azure"
    assert properties["tts"]["params"]["key"] == "sandbox-azure_speech_key"
    assert properties["asr"]["params"]["key"] == "sandbox-deepgram_api_key"


# -- routing ---------------------------------------------------------------------------------


def test_routes_parse_in_order_and_skip_empty_rules():
    routes, problems = parse_routes(" tarot_* = tarot ,, support_*=support,")
    assert problems == []
    assert [(r.pattern, r.persona) for r in routes] == [("tarot_*", "tarot"),
                                                        ("support_*", "support")]


def test_the_first_matching_route_wins_and_the_default_catches_the_rest():
    settings = Settings.for_tests(persona_routes="tarot_vip*=support,tarot_*=tarot,*_urgent=triage",
                                  default_persona="orders")
    registry = load_registry(settings)
    assert registry.route("tarot_42").name == "tarot"
    assert registry.route("tarot_vip_1").name == "support"
    assert registry.route("site_urgent").name == "triage"
    assert registry.route("Tarot_42").name == "orders"  # case-sensitive, like channel names
    assert registry.route("tarot_42", persona="appointments").name == "appointments"
    with pytest.raises(UnknownPersona):
        registry.route("x", persona="ghost")
    assert registry.in_use() == {"orders", "support", "tarot", "triage"}


def test_calls_into_different_routes_get_different_personas_in_their_join_bodies():
    settings = Settings.for_tests(persona_routes="tarot_*=tarot,support_*=support")
    registry = load_registry(settings)
    bodies = {channel: build_join_properties(settings, registry.route(channel), call_id="c1",
                                             channel=channel, now=NOW)
              for channel in ("tarot_1", "support_1")}
    assert bodies["tarot_1"]["labels"]["persona"] == "tarot"
    assert bodies["support_1"]["labels"]["persona"] == "support"
    assert bodies["tarot_1"]["llm"]["greeting_message"] != \
        bodies["support_1"]["llm"]["greeting_message"]
    assert bodies["tarot_1"]["llm"]["template_variables"]["persona"] == "tarot"


# -- the join body ---------------------------------------------------------------------------


def test_template_variables_layer_persona_defaults_call_values_and_the_clock():
    settings = Settings.for_tests(timezone="America/New_York")
    persona = load_registry(settings).get("support")
    properties = build_join_properties(
        settings, persona, call_id="c1", channel="room-1", now=NOW,
        variables={"caller_number": "+15551230000", "team": "Acme billing",
                   "called_number": ""})
    variables = properties["llm"]["template_variables"]
    assert variables["caller_number"] == "+15551230000"  # the call's value beats the default
    assert variables["team"] == "Acme billing"           # a number's own variable too
    assert variables["agent_name"] == "Jack"             # the persona's default stays
    assert "called_number" not in variables              # not known: left out
    assert (variables["local_date"], variables["local_time"]) == ("Tuesday 3 June 2025", "09:30")
    assert variables["persona"] == "support" and variables["timezone"] == "America/New_York"


def test_without_a_caller_number_the_persona_default_is_used():
    settings = Settings.for_tests()
    properties = build_join_properties(settings, load_registry(settings).get("triage"),
                                       call_id="c1", channel="room-1", now=NOW)
    assert properties["llm"]["template_variables"]["caller_number"] == "not known"


def test_idle_timeout_never_drops_below_the_rejoin_grace_window():
    short = Settings.for_tests(rejoin_grace_s=5)
    long = Settings.for_tests(rejoin_grace_s=120)
    assert body(short, "support")["properties"]["idle_timeout"] == 30
    assert body(long, "support")["properties"]["idle_timeout"] == 120


def test_labels_carry_the_call_the_service_and_the_persona():
    labels = body(Settings.for_tests(), "tarot", call_id="abc123")["properties"]["labels"]
    assert labels == {"line": "tarot", "call_id": "abc123", "service": "phoneagent",
                      "persona": "tarot"}


def test_silence_reminder_becomes_silence_config():
    config = body(Settings.for_tests(), "tarot")["properties"]["parameters"]["silence_config"]
    assert config == {"timeout_ms": 20_000, "action": "speak",
                      "content": "Take all the time you need. I'm here when you're ready."}


def test_rtm_gives_the_agent_an_rtm_token_flag():
    properties = body(Settings.for_tests(enable_rtm=True), "support")["properties"]
    assert properties["advanced_features"] == {"enable_rtm": True}


def test_redaction_masks_tokens_keys_and_values_read_from_the_environment():
    settings = Settings.for_tests(**SECRETS)
    persona = load_registry(settings).get("support")
    properties = build_join_properties(settings, persona, call_id="c1", channel="room-1", now=NOW)
    masked = redact_properties(properties, persona.secret_values())
    text = json.dumps(masked)
    assert not any(secret in text for secret in SECRETS.values())
    assert masked["token"] == masked["llm"]["api_key"] == masked["tts"]["params"]["key"] == "***"
    assert masked["tts"]["params"]["voice_id"] == "***"
    assert masked["tts"]["params"]["model_id"] == "eleven_flash_v2_5"
    assert properties["llm"]["api_key"] == SECRETS["openai_api_key"]  # the original is untouched


# -- the commands ----------------------------------------------------------------------------


@pytest.fixture
def cli_app(tmp_path: Path) -> Flask:
    (tmp_path / "personas").mkdir()
    settings = Settings.for_tests(database_url=f"sqlite:///{tmp_path / 'cli.db'}",
                                  log_level="WARNING", persona_routes="tarot_*=tarot",
                                  personas_dir=str(tmp_path / "personas"), **SECRETS)
    app = create_app(settings)
    if "personas" not in app.cli.commands:
        from personas import cli

        cli.init_app(app)
    return app


def test_list_shows_every_persona_and_how_calls_reach_it(cli_app):
    result = cli_app.test_cli_runner().invoke(args=["personas", "list"])
    assert result.exit_code == 0, result.output
    for name in BUILTINS:
        assert re.search(rf"^{name}\s", result.output, re.M)
    assert "[default]" in result.output and "[channels tarot_*]" in result.output


def test_check_passes_for_the_built_ins(cli_app):
    result = cli_app.test_cli_runner().invoke(args=["personas", "check"])
    assert result.exit_code == 0, result.output
    assert "5 personas OK (sandbox mode)" in result.output


def test_check_exits_1_with_file_field_problem_lines(cli_app, tmp_path):
    path = persona_file(tmp_path / "personas", tts=ELEVENLABS.replace('"elevenlabs"', '"acme"'))
    result = cli_app.test_cli_runner().invoke(args=["personas", "check"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"{path}: tts.vendor: unknown TTS vendor 'acme'; ConvoAI knows "
        + ", ".join(SCHEMA["$defs"]["tts"]["properties"]["vendor"]["enum"])]


@pytest.mark.parametrize("name", BUILTINS)
def test_show_json_prints_schema_valid_properties_with_every_secret_masked(cli_app, name):
    result = cli_app.test_cli_runner().invoke(args=["personas", "show", name, "--json",
                                                    "--caller", "+15550001111"])
    assert result.exit_code == 0, result.output
    properties = json.loads(result.output)
    assert schema_errors({"name": "phoneagent-0123456789abcdef", "properties": properties}) == []
    assert properties["labels"]["persona"] == name
    assert properties["llm"]["template_variables"]["caller_number"] == "+15550001111"
    assert properties["token"] == properties["llm"]["api_key"] == "***"
    settings = cli_app.extensions["settings"]
    assert not any(secret in result.output for secret in settings.secret_values())


def test_show_describes_a_persona_and_refuses_an_unknown_one(cli_app):
    runner = cli_app.test_cli_runner()
    result = runner.invoke(args=["personas", "show", "triage"])
    assert result.exit_code == 0, result.output
    assert "OPENAI_API_KEY (set)" in result.output and "opt out" in result.output
    assert SECRETS["openai_api_key"] not in result.output
    missing = runner.invoke(args=["personas", "show", "ghost"])
    assert missing.exit_code != 0 and "no persona named 'ghost'" in missing.output


def test_python_m_personas_check_works_without_the_app(tmp_path, monkeypatch, capsys):
    persona_file(tmp_path, tts=ELEVENLABS.replace('"elevenlabs"', '"acme"'))
    monkeypatch.setenv("PERSONAS_DIR", str(tmp_path))
    assert personas_main(["check"]) == 1
    assert f"{tmp_path}/custom.toml: tts.vendor: unknown TTS vendor" in capsys.readouterr().out
    monkeypatch.delenv("PERSONAS_DIR")
    assert personas_main(["check"]) == 0
    assert "5 personas OK" in capsys.readouterr().out
