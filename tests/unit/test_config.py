import re
import runpy
from pathlib import Path

import pytest

from config import _FIELDS, ConfigError, Settings
from factory import gunicorn
from personas.startup import load_settings, settings_from_environment

ROOT = Path(__file__).resolve().parents[2]
HEX = "0123456789abcdef0123456789abcdef"
PRODUCTION = {
    "AGORA_APP_ID": HEX, "AGORA_APP_CERTIFICATE": HEX, "AGORA_CUSTOMER_ID": "cid",
    "AGORA_CUSTOMER_SECRET": "csecret", "AGORA_NCS_SECRET": "ncs", "OPENAI_API_KEY": "sk",
    "ELEVENLABS_API_KEY": "el", "ELEVENLABS_VOICE_ID": "voice",
}


def test_no_app_id_is_sandbox_mode_with_placeholders_and_sandbox_urls():
    settings = load_settings({})
    assert settings.sandbox and settings.mode == "sandbox"
    assert settings.convoai_api_url == "http://127.0.0.1:8090/convoai"
    assert settings.agora_customer_id and settings.openai_api_key


def test_explicit_urls_win_in_sandbox_mode():
    settings = load_settings({"CONVOAI_API_URL": "http://127.0.0.1:9/x",
                                  "SANDBOX_URL": "http://127.0.0.1:7"})
    assert settings.convoai_api_url == "http://127.0.0.1:9/x"
    assert settings.sip_api_url == "http://127.0.0.1:7/sip/v1/api/pstn"


def test_production_reads_everything_and_keeps_agora_defaults():
    settings = load_settings(PRODUCTION)
    assert settings.mode == "production"
    assert settings.convoai_api_url == "https://api.agora.io/api/conversational-ai-agent"
    assert settings.sip_api_url == "https://sipcm.agora.io/v1/api/pstn"


def test_production_lists_every_problem_in_one_message():
    with pytest.raises(ConfigError) as info:
        load_settings({"AGORA_APP_ID": "nothex", "PSTN_UID": "abc", "AGENT_UID": "111"})
    message = str(info.value)
    for expected in ("AGORA_APP_ID must be 32 hexadecimal", "PSTN_UID must be int",
                     "AGORA_APP_CERTIFICATE is required", "AGORA_CUSTOMER_SECRET is required",
                     "AGORA_NCS_SECRET is required", "OPENAI_API_KEY is required",
                     "ELEVENLABS_VOICE_ID is required"):
        assert expected in message
    assert message.count("\n  - ") == len(info.value.problems)


def test_problems_never_echo_secret_values():
    env = {**PRODUCTION, "AGORA_APP_CERTIFICATE": "super-secret-cert-value",
           "CONVOAI_API_URL": "http://insecure"}
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert "super-secret-cert-value" not in str(info.value)
    assert "must use https in production" in str(info.value)


def test_legacy_names_from_agoras_sample_are_read():
    env = {"APP_ID": HEX, "APP_CERTIFICATE": HEX, "AGORA_API_KEY": "old-id",
           "AGORA_API_SECRET": "old-secret", "PSTN_AUTH": "basic-value",
           **{k: v for k, v in PRODUCTION.items() if not k.startswith(("AGORA_APP",
                                                                      "AGORA_CUSTOMER"))}}
    settings = load_settings(env)
    assert (settings.agora_app_id, settings.agora_customer_id, settings.agora_customer_secret,
            settings.sip_auth) == (HEX, "old-id", "old-secret", "basic-value")
    assert load_settings({**env, "AGORA_CUSTOMER_ID": "new-id"}).agora_customer_id == "new-id"


@pytest.mark.parametrize(("env", "backend"), [
    ({}, "gateway"), ({"OUTBOUND_BACKEND": "convoai"}, "convoai"),
    ({"OUTBOUND_BACKEND": " gateway "}, "gateway"),
])
def test_outbound_backend_defaults_to_the_gateway(env, backend):
    assert load_settings(env).outbound_backend == backend


def test_heroku_postgres_urls_are_rewritten():
    settings = load_settings({"DATABASE_URL": "postgres://u:p@h:5432/db"})
    assert settings.database_url == "postgresql://u:p@h:5432/db"


@pytest.mark.parametrize(("env", "problem"), [
    ({"PSTN_UID": "222"}, "PSTN_UID and AGENT_UID must differ"),
    ({"AGENT_NAME_PREFIX": "9bad"}, "AGENT_NAME_PREFIX"),
    ({"AGENT_START_MODE": "later"}, "AGENT_START_MODE"),
    ({"OUTBOUND_BACKEND": "twilio"}, "OUTBOUND_BACKEND must be 'gateway' or 'convoai'"),
    ({"JOIN_BUDGET_S": "12"}, "JOIN_BUDGET_S"),
    ({"REJOIN_GRACE_S": "-1"}, "REJOIN_GRACE_S"),
    ({"WORK_LEASE_S": "5"}, "WORK_LEASE_S must be more than JOIN_BUDGET_S"),
    ({"GOODBYE_WAIT_MIN_S": "30", "GOODBYE_WAIT_MAX_S": "20"}, "GOODBYE_WAIT_MIN_S"),
    ({"RATE_LIMIT_WINDOW_S": "0"}, "RATE_LIMIT_WINDOW_S"),
    ({"ENABLE_RTM": "maybe"}, "ENABLE_RTM must be true/false"),
    ({"DATABASE_URL": "instance/db.sqlite"}, "DATABASE_URL"),
    ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL must be a SQLite .* not mysql://"),
    ({"DATABASE_URL": "postgresql+psycopg2://u@h/db"}, "through psycopg 3"),
])
def test_bad_values_are_reported_by_name(env, problem):
    with pytest.raises(ConfigError, match=problem):
        load_settings(env)


@pytest.mark.parametrize("document", [".env.example", "docs/configuration.md"])
def test_every_setting_is_documented(document):
    text = (ROOT / document).read_text()
    documented = set(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", text))
    missing = {name.upper() for name in _FIELDS} - documented
    assert not missing, f"{document} does not mention {sorted(missing)}"


@pytest.mark.parametrize(("url", "ok"), [
    ("https://calls.example.com", True), ("http://localhost:8000", True),
    ("http://127.0.0.1:8000", True), ("http://calls.example.com", False),
    ("ftp://calls.example.com", False), ("calls.example.com", False)])
def test_public_url_must_be_https_in_production_except_on_loopback(url, ok):
    if ok:
        assert load_settings({**PRODUCTION, "PUBLIC_URL": url}).tools_url == f"{url}/mcp"
    else:
        with pytest.raises(ConfigError, match="PUBLIC_URL must"):
            load_settings({**PRODUCTION, "PUBLIC_URL": url})


def test_the_tools_endpoint_is_local_in_sandbox_mode_and_off_in_production_without_a_url():
    assert load_settings({"PORT": "8123"}).tools_url == "http://127.0.0.1:8123/mcp"
    assert load_settings({"PUBLIC_URL": "http://calls.test"}).tools_url == \
        "http://calls.test/mcp"
    assert load_settings(PRODUCTION).tools_url == ""


def test_a_gunicorn_boot_reads_the_settings_once_and_a_reload_reads_them_again(monkeypatch):
    """The arbiter's log formatter and on_starting share one reading, which the workers it
    forks inherit (create_app() with no settings reads the same cache); SIGHUP reads anew."""
    readings = []
    real_read = Settings.read.__func__

    def counted(cls, *args, **kwargs):
        readings.append(1)
        return real_read(cls, *args, **kwargs)

    monkeypatch.setattr(Settings, "read", classmethod(counted))
    settings_from_environment.cache_clear()
    hooks = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    gunicorn.formatter()
    first = settings_from_environment()
    assert settings_from_environment() is first and len(readings) == 1
    hooks["on_reload"](None)
    assert settings_from_environment() is not first and len(readings) == 2
    settings_from_environment.cache_clear()
