"""convoai/join_schema.json: the body the service sends passes; each single breakage fails."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "convoai" / "join_schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text("utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)

SERVICE_BODY: dict[str, Any] = {
    "name": "phoneagent-1a2b3c4d5e6f7a8b",
    "properties": {
        "channel": "room-1", "token": "007eJxTYBBa", "agent_rtc_uid": "222",
        "remote_rtc_uids": ["111"], "enable_string_uid": False, "idle_timeout": 60,
        "labels": {"call_id": "1a2b3c4d5e6f7a8b", "service": "phoneagent"},
        "llm": {
            "url": "https://api.openai.com/v1/chat/completions", "api_key": "sk-test",
            "style": "openai", "system_messages": [{"role": "system", "content": "Be brief."}],
            "greeting_message": "Hello!", "failure_message": "Sorry.", "max_history": 32,
            "params": {"model": "gpt-4o-mini"},
        },
        "tts": {"vendor": "elevenlabs", "params": {
            "key": "el-key", "model_id": "eleven_flash_v2_5", "voice_id": "voice-1",
            "base_url": "wss://api.elevenlabs.io/v1"}},
        "asr": {"vendor": "ares", "language": "en-US"},
        "parameters": {"opt_out": False},
    },
}


def edited(path: str, value: Any = ..., *, delete: bool = False) -> dict[str, Any]:
    """A copy of SERVICE_BODY with one field (dotted path) replaced or deleted."""
    body = copy.deepcopy(SERVICE_BODY)
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    if delete:
        del node[last]
    else:
        node[last] = value
    return body


def errors(body: dict[str, Any]) -> list[str]:
    """Every error message, including those nested under anyOf."""
    pending, out = list(VALIDATOR.iter_errors(body)), []
    while pending:
        error = pending.pop()
        out.append(error.message)
        pending.extend(error.context or [])
    return out


def test_schema_is_valid_draft_2020_12_and_says_where_it_comes_from():
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "convoai-api.md" in SCHEMA["$comment"] and "section 3" in SCHEMA["$comment"]


def test_the_body_the_service_sends_is_valid():
    assert errors(SERVICE_BODY) == []


@pytest.mark.parametrize(("path", "value"), [
    ("properties.some_future_flag", True),                   # unknown fields pass through
    ("properties.tts.params.optimize_streaming_latency", 3),  # so do unknown vendor params
    ("properties.advanced_features", {"enable_rtm": True}),
    ("properties.parameters", {"data_channel": "rtm", "silence_config": {
        "timeout_ms": 5000, "action": "speak", "content": "Still there?"}}),
    ("properties.idle_timeout", 0),
    ("properties.idle_timeout", 259200),
    ("properties.agent_rtc_uid", "0"),
    ("properties.turn_detection", {"mode": "default", "config": {
        "speech_threshold": 0.5, "end_of_speech": {"mode": "semantic"}}}),
    ("properties.interruption", {"enable": False, "disabled_config": {"strategy": "ignore"}}),
    ("properties.tts", {"vendor": "microsoft", "params": {
        "key": "k", "region": "eastus", "voice_name": "en-US-AndrewNeural"}}),
    ("properties.tts", {"vendor": "openai", "credential_mode": "managed",
                        "params": {"voice": "alloy"}}),
    ("properties.tts", {"vendor": "cartesia", "params": {
        "api_key": "k", "model_id": "sonic-2", "voice": {"mode": "id", "id": "v"}}}),
    ("properties.tts", {"vendor": "generic_http", "url": "https://tts.example/v1/audio/speech",
                        "params": {"voice": "v"}}),
    ("properties.asr", {"vendor": "microsoft", "params": {
        "key": "k", "region": "eastus", "language": "en-US"}}),
    ("properties.asr", {"vendor": "deepgram", "params": {"key": "k", "model": "nova-3"}}),
    ("properties.asr", {"vendor": "speechmatics", "params": {"api_key": "k", "language": "en"}}),
])
def test_documented_variants_are_valid(path, value):
    assert errors(edited(path, value)) == []


def test_string_uids_are_allowed_in_string_uid_mode():
    body = edited("properties.enable_string_uid", True)
    body["properties"].update(agent_rtc_uid="agent-jack", remote_rtc_uids=["caller-1"])
    assert errors(body) == []


BREAKAGES = [
    ("integer agent_rtc_uid", "properties.agent_rtc_uid", 222),
    ("non-digit agent uid without enable_string_uid", "properties.agent_rtc_uid", "agent"),
    ("integer remote uid", "properties.remote_rtc_uids", [111]),
    ("two remote uids", "properties.remote_rtc_uids", ["111", "112"]),
    ("no remote uid", "properties.remote_rtc_uids", []),
    ("wildcard remote uid", "properties.remote_rtc_uids", ["*"]),
    ("empty name", "name", ""),
    ("integer name", "name", 7),
    ("idle_timeout -1", "properties.idle_timeout", -1),
    ("idle_timeout above 72 h", "properties.idle_timeout", 259201),
    ("idle_timeout as a string", "properties.idle_timeout", "60"),
    ("idle_timeout fractional", "properties.idle_timeout", 1.5),
    ("enable_string_uid as a string", "properties.enable_string_uid", "false"),
    ("label value not a string", "properties.labels", {"call_id": 5}),
    ("channel not a string", "properties.channel", 1),
    ("token not a string", "properties.token", None),
    ("unknown tts vendor", "properties.tts.vendor", "acme"),
    ("tts params not an object", "properties.tts.params", "key=1"),
    ("elevenlabs speed out of range", "properties.tts.params.speed", 3),
    ("unknown asr vendor", "properties.asr.vendor", "acme"),
    ("llm style unknown", "properties.llm.style", "claude"),
    ("llm max_history not an integer", "properties.llm.max_history", "32"),
    ("llm params not an object", "properties.llm.params", []),
    ("system message without content", "properties.llm.system_messages", [{"role": "system"}]),
    ("system_messages not a list", "properties.llm.system_messages", "be nice"),
    ("template variable not a string", "properties.llm.template_variables", {"x": 1}),
    ("opt_out not a boolean", "properties.parameters.opt_out", "no"),
    ("unknown data channel", "properties.parameters.data_channel", "sse"),
    ("silence timeout above 60 s", "properties.parameters.silence_config", {"timeout_ms": 60001}),
    ("enable_rtm not a boolean", "properties.advanced_features", {"enable_rtm": 1}),
    ("interruption enable not a boolean", "properties.interruption", {"enable": "yes"}),
    ("start_of_speech without mode", "properties.turn_detection",
     {"config": {"start_of_speech": {"vad_config": {}}}}),
]
MISSING = [
    ("missing token", "properties.token"),
    ("missing channel", "properties.channel"),
    ("missing name", "name"),
    ("missing llm", "properties.llm"),
    ("missing tts", "properties.tts"),
    ("missing llm.url", "properties.llm.url"),
    ("missing tts.params", "properties.tts.params"),
    ("missing tts.vendor", "properties.tts.vendor"),
    ("missing elevenlabs base_url", "properties.tts.params.base_url"),
    ("missing elevenlabs key", "properties.tts.params.key"),
    ("missing elevenlabs voice_id", "properties.tts.params.voice_id"),
    ("missing elevenlabs model_id", "properties.tts.params.model_id"),
]


@pytest.mark.parametrize(("case", "path", "value"), BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_single_field_breakages_fail(case, path, value):
    assert errors(edited(path, value)), case


@pytest.mark.parametrize(("case", "path"), MISSING, ids=[m[0] for m in MISSING])
def test_missing_required_fields_fail(case, path):
    assert errors(edited(path, delete=True)), case


@pytest.mark.parametrize(("vendor", "params", "missing"), [
    ("microsoft", {"key": "k", "region": "eastus"}, "voice_name"),
    ("openai", {"voice": "alloy", "api_key": "k", "model": "tts-1"}, "base_url"),
    ("cartesia", {"api_key": "k", "model_id": "sonic-2"}, "voice"),
    ("deepgram", {"api_key": "k"}, "model"),
    ("minimax", {"key": "k", "model": "speech-2.6-turbo"}, "voice_setting"),
    ("google", {"credentials": "{}"}, "VoiceSelectionParams"),
    ("amazon", {"aws_access_key_id": "a", "aws_secret_access_key": "s", "region_name": "r",
                "voice": "Joanna"}, "engine"),
    ("humeai", {"key": "k", "voice_id": "v"}, "provider"),
    ("rime", {"api_key": "k"}, "modelId"),
    ("fishaudio", {"api_key": "k", "reference_id": "r"}, "backend"),
    ("sarvam", {"api_subscription_key": "k", "speaker": "s"}, "target_language_code"),
    ("xai", {"api_key": "k"}, "language"),
    ("gradium", {}, "api_key"),
    ("mistral", {"model": "m"}, "api_key"),
])
def test_each_tts_vendor_requires_its_params(vendor, params, missing):
    body = edited("properties.tts", {"vendor": vendor, "params": params})
    found = errors(body)
    assert found and any(missing in message for message in found), found


def test_generic_http_tts_requires_the_url():
    body = edited("properties.tts", {"vendor": "generic_http", "params": {}})
    assert any("'url'" in m for m in errors(body))


@pytest.mark.parametrize(("vendor", "params", "missing"), [
    ("microsoft", {"key": "k", "region": "eastus"}, "language"),
    ("deepgram", {"model": "nova-3"}, "key"),
    ("openai", {"api_key": "k"}, "input_audio_transcription"),
    ("google", {"project_id": "p", "location": "l", "language": "en-US"},
     "adc_credentials_string"),
    ("gemini", {"api_key": "k"}, "model"),
    ("amazon", {"region": "r", "access_key_id": "a", "secret_access_key": "s"},
     "language_code"),
    ("assemblyai", {"api_key": "k"}, "language"),
    ("speechmatics", {"language": "en"}, "key"),
    ("sarvam", {"api_key": "k"}, "language"),
    ("xai", {}, "api_key"),
])
def test_each_asr_vendor_requires_its_params(vendor, params, missing):
    body = edited("properties.asr", {"vendor": vendor, "params": params})
    found = errors(body)
    assert found and any(missing in message for message in found), found


def test_ares_asr_needs_no_params():
    assert errors(edited("properties.asr", {"vendor": "ares"})) == []


# -- what a preset, a pipeline or an MLLM supplies (issue 21, item 7) ---------------------------

def without(body: dict[str, Any], *names: str) -> dict[str, Any]:
    """``body`` with the named blocks of ``properties`` removed."""
    body["properties"] = {k: v for k, v in body["properties"].items() if k not in names}
    return body


PRESET_EXAMPLE = {  # SPEC's "Preset models" join example: no url, key or model for presets
    "preset": "deepgram_nova_3,openai_gpt_5_mini,minimax_speech_2_6_turbo",
    "llm": {"system_messages": [{"role": "system", "content": "Be brief."}], "max_history": 32,
            "greeting_message": "Hello!", "failure_message": "Hold on."},
    "tts": {"vendor": "minimax", "params": {"voice_setting": {"voice_id": "English_female1"}}},
    "asr": {"vendor": "deepgram", "params": {"language": "en", "keyterm": "agora"}},
}


def preset_body(preset: str = PRESET_EXAMPLE["preset"]) -> dict[str, Any]:
    body = copy.deepcopy(SERVICE_BODY)
    body["preset"] = preset
    body["properties"].update(copy.deepcopy({k: v for k, v in PRESET_EXAMPLE.items()
                                             if k != "preset"}))
    return body


@pytest.mark.parametrize("body", [
    {**SERVICE_BODY, "preset": None, "pipeline_id": None},  # what Agora's SDK sends
    without({**copy.deepcopy(SERVICE_BODY), "pipeline_id": "pl_123"}, "llm", "tts", "asr"),
    {**copy.deepcopy(SERVICE_BODY), "pipeline_id": "pl_123",
     "properties": {**SERVICE_BODY["properties"], "llm": {"greeting_message": "Hi"}}},
    preset_body(),
    preset_body(" openai_gpt_4o_mini , minimax_speech_2_8_turbo,deepgram_nova_2"),
    without({**copy.deepcopy(SERVICE_BODY), "properties": {
        **SERVICE_BODY["properties"], "mllm": {"url": "wss://api.openai.com/v1/realtime",
                                               "api_key": "sk", "vendor": "openai"}}},
        "llm", "tts", "asr"),
    without({**copy.deepcopy(SERVICE_BODY), "properties": {
        **SERVICE_BODY["properties"], "advanced_features": {"enable_mllm": True},
        "mllm": {"url": "wss://x", "api_key": "k"}}}, "llm", "tts"),
], ids=["null preset and pipeline", "pipeline without providers", "pipeline overrides the llm",
        "SPEC preset example", "presets with spaces", "mllm without llm or tts",
        "deprecated enable_mllm"])
def test_what_agora_accepts_without_the_callers_own_models(body):
    assert errors(body) == []


@pytest.mark.parametrize(("case", "body", "missing"), [
    ("llm preset only: MiniMax still needs its key",
     preset_body("openai_gpt_5_mini,deepgram_nova_3"), "'key'"),
    ("tts preset only: the llm still needs its url",
     preset_body("minimax_speech_2_6_turbo,deepgram_nova_3"), "'url'"),
    ("no asr preset: Deepgram still needs its key",
     preset_body("openai_gpt_5_mini,minimax_speech_2_6_turbo"), "'key'"),
    ("an unknown preset supplies nothing", preset_body("acme_gpt"), "'url'"),
    ("an empty pipeline_id is no pipeline",
     without({**copy.deepcopy(SERVICE_BODY), "pipeline_id": ""}, "llm"), "'llm'"),
    ("a disabled mllm does not replace the cascade",
     without({**copy.deepcopy(SERVICE_BODY), "properties": {
         **SERVICE_BODY["properties"], "mllm": {"enable": False}}}, "tts"), "'tts'"),
    ("no llm without a pipeline or mllm", edited("properties.llm", delete=True), "'llm'"),
])
def test_what_a_preset_pipeline_or_mllm_does_not_excuse(case, body, missing):
    found = errors(body)
    assert any(missing in message for message in found), (case, found)


@pytest.mark.parametrize(("field", "value"), [("preset", 7), ("pipeline_id", ["pl_1"])])
def test_preset_and_pipeline_id_are_strings_or_null(field, value):
    assert errors({**SERVICE_BODY, field: value})
