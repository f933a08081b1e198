"""The settings groups (settings/): each validates its own fields; Settings reports them all."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from config import GROUPS, ConfigError, Settings
from settings.agent import AgentSettings
from settings.agora import AgoraSettings
from settings.lifecycle import LifecycleSettings
from settings.operations import OperationsSettings
from settings.sip import SipSettings
from settings.store import StoreSettings
from settings.web import WebSettings

ROOT = Path(__file__).resolve().parents[2]

#: One bad field per group, and the one problem that group reports for it.
BAD = [
    (AgoraSettings, {"sandbox": True, "pstn_uid": 222},
     "PSTN_UID and AGENT_UID must differ (the agent listens to the caller)"),
    (StoreSettings, {"store_timeout_s": 0.0},
     "STORE_TIMEOUT_S must be between 1 and 8 (NCS waits 10 s for an answer)"),
    (LifecycleSettings, {"work_lease_s": 5.0},
     "WORK_LEASE_S must be more than JOIN_BUDGET_S and at most 3600"),
    (SipSettings, {"outbound_backend": "fax"}, "OUTBOUND_BACKEND must be 'gateway' or 'convoai'"),
    (WebSettings, {"port": 0}, "PORT must be between 1 and 65535"),
    (OperationsSettings, {"cost_currency": "usd"},
     "COST_CURRENCY must be a three-letter ISO 4217 code such as USD"),
    (AgentSettings, {"timezone": "Mars/Olympus"},
     "TIMEZONE: unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Paris or "
     "America/New_York)"),
]


@pytest.mark.parametrize(("group", "bad", "problem"), BAD, ids=[g.__name__ for g, _, _ in BAD])
def test_each_group_validates_its_own_fields(group, bad, problem):
    valid = {"sandbox": True} if group is AgoraSettings else {}
    assert group(**valid).problems() == []
    assert group(**{**valid, **bad}).problems() == [problem]


def test_a_groups_problems_name_only_its_own_fields():
    settings = Settings.for_tests().replace(port=0, store_timeout_s=0.0)
    assert StoreSettings.problems(settings) == [BAD[1][2]]
    assert WebSettings.problems(settings) == [BAD[4][2]]
    assert LifecycleSettings.problems(settings) == []


def test_problems_from_several_groups_are_reported_together_in_group_order():
    with pytest.raises(ConfigError) as info:
        Settings.for_tests(cost_currency="usd", port=0, work_lease_s=5.0, store_timeout_s=0.0,
                           outbound_backend="fax", pstn_uid=222, timezone="Mars/Olympus")
    assert info.value.problems == [problem for _, _, problem in BAD]
    assert str(info.value).startswith("configuration is not valid (7 problems):\n  - PSTN_UID")


def test_the_https_rule_for_public_url_spans_groups_so_settings_applies_it():
    assert WebSettings(public_url="http://calls.example.com").problems() == []
    production = Settings(agora_app_id="0123456789abcdef0123456789abcdef",
                          agora_app_certificate="0123456789abcdef0123456789abcdef",
                          agora_customer_id="cid", agora_customer_secret="s",
                          agora_ncs_secret="n", public_url="http://calls.example.com")
    assert production.problems() == [
        "PUBLIC_URL must use https in production (agents send their call's tool token to it); "
        "plain http is only for localhost"]


def test_every_setting_belongs_to_exactly_one_group_and_reads_flat():
    names = [f.name for group in GROUPS for f in dataclasses.fields(group)]
    assert len(names) == len(set(names))
    assert set(names) == {f.name for f in dataclasses.fields(Settings)}
    settings = Settings.for_tests(work_lease_s=12.0)
    assert settings.work_lease_s == 12.0 and isinstance(settings, LifecycleSettings)


def test_groups_and_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        StoreSettings().store_timeout_s = 2.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings.for_tests().port = 1  # type: ignore[misc]


def test_importing_config_loads_neither_personas_nor_the_sandbox():
    code = ("import sys, config; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'personas', 'sandbox'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
