"""Settings: read from the environment (and `.env`) once, converted and validated in one place.

No AGORA_APP_ID means sandbox mode: the built-in sandbox (``python -m sandbox``) stands in for
Agora, and placeholder credentials fill whatever is missing. With an app id set, every required
setting must be present and well-formed, and start-up stops with one message listing every problem.

The agent itself (prompt, LLM, voice, speech recognition) is a persona (personas/). This module
knows nothing of personas: ``personas.startup.load_settings`` reads these settings and the keys the
persona files name together, so their problems join the same message as ``file: field: problem``
lines.

The fields and their own checks live in small groups (settings/: agora, store, lifecycle, sip,
web, operations, agent); ``Settings`` inherits them all, so the service reads one flat object,
and adds the checks that span groups.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from urllib.parse import urlsplit

from dotenv import load_dotenv

from settings.agent import AgentSettings
from settings.agora import DEFAULT_CONVOAI_API_URL, SANDBOX_PORT, SANDBOX_URL, AgoraSettings
from settings.common import LOOPBACK_HOSTS, ROOT, is_http_url
from settings.lifecycle import LifecycleSettings
from settings.operations import OperationsSettings
from settings.sip import DEFAULT_SIP_API_URL, OUTBOUND_BACKENDS, SipSettings
from settings.store import DEFAULT_DATABASE_URL, StoreSettings
from settings.web import WebSettings

__all__ = [
    "DEFAULT_CONVOAI_API_URL", "DEFAULT_DATABASE_URL", "DEFAULT_SIP_API_URL", "GROUPS",
    "LEGACY_ALIASES", "LOOPBACK_HOSTS", "OUTBOUND_BACKENDS", "ROOT", "SANDBOX_APP_CERTIFICATE",
    "SANDBOX_APP_ID", "SANDBOX_CUSTOMER_ID", "SANDBOX_CUSTOMER_SECRET", "SANDBOX_NCS_SECRET",
    "SANDBOX_PORT", "SANDBOX_SHOP_TOOLS_PATH", "SANDBOX_SIP_AUTH", "SANDBOX_TOOLS_SECRET",
    "SANDBOX_URL", "ConfigError", "Settings",
]

#: Sandbox mode's placeholder credentials (the sandbox's address is settings.agora's). They only
#: ever unlock the local sandbox, so they are not secrets. They live here, not in sandbox/, so the
#: service never imports the sandbox; the sandbox reads them from here (sandbox/defaults.py).
SANDBOX_APP_ID = "5a4db0c5e0f64d8b9a1c2e3f4a5b6c7d"
SANDBOX_APP_CERTIFICATE = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
SANDBOX_CUSTOMER_ID = "sandbox-customer"
SANDBOX_CUSTOMER_SECRET = "sandbox-secret"
SANDBOX_NCS_SECRET = "sandbox-ncs-secret"
SANDBOX_SIP_AUTH = "sandbox-sip-auth"
#: Signs the requests for a persona's operator tools whose secret_env is unset in sandbox mode
#: (the sandbox's demo shop serves them); a Standard Webhooks secret, whsec_ then base64.
SANDBOX_TOOLS_SECRET = "whsec_c2FuZGJveC1hZ2VudC10b29scy1zZWNyZXQh"
#: Where the sandbox's demo shop serves operator tool NAME whose url_env is unset.
SANDBOX_SHOP_TOOLS_PATH = "/shop/agent-tools/"

#: Names used by Agora's AI-Phone-Agent sample, read when the current name is unset, so its users
#: can bring their .env unchanged.
LEGACY_ALIASES = {
    "AGORA_APP_ID": "APP_ID",
    "AGORA_APP_CERTIFICATE": "APP_CERTIFICATE",
    "AGORA_CUSTOMER_ID": "AGORA_API_KEY",
    "AGORA_CUSTOMER_SECRET": "AGORA_API_SECRET",
    "SIP_AUTH": "PSTN_AUTH",
}


class ConfigError(Exception):
    """The configuration cannot run; the message lists every problem, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        if len(problems) == 1:
            # One problem, one line: what a platform's log viewer shows first.
            super().__init__(f"configuration is not valid: {problems[0]}")
        else:
            super().__init__(f"configuration is not valid ({len(problems)} problems):\n{lines}")


#: The groups, in the order their problems are reported.
GROUPS = (AgoraSettings, StoreSettings, LifecycleSettings, SipSettings, WebSettings,
          OperationsSettings, AgentSettings)


@dataclass(frozen=True)
class Settings(AgoraSettings, StoreSettings, LifecycleSettings, SipSettings, WebSettings,
               OperationsSettings, AgentSettings):
    """Every setting the service reads, as one object: the groups (settings/) by inheritance,
    so fields stay flat (``settings.work_lease_s``). Field names are the variable names,
    lower-cased."""

    # -- reading -----------------------------------------------------------------------------

    @classmethod
    def read(cls, env: Mapping[str, str] | None = None, *,
             dotenv: bool = True) -> tuple[Settings, list[str]]:
        """Read settings from ``env`` (default: os.environ plus `.env`); returns them with every
        problem found (the persona keys are personas.startup's to add)."""
        if env is None:
            if dotenv:
                load_dotenv(ROOT / ".env", override=False)
            env = os.environ
        raw, problems = _read(env)
        settings = _apply_mode(raw, explicit={k for k in raw})
        if env.get("VERCEL", "").strip() not in ("", "0"):
            settings, serverless_problems = _on_vercel(settings)
            problems += serverless_problems
        return settings, problems + settings.problems()

    @classmethod
    def for_tests(cls, **overrides: object) -> Settings:
        """Sandbox-mode settings with ``overrides``; validated like real ones (the personas are
        checked when an app or a registry is built from them). The environment is not read:
        ``persona_keys={"VAR": "value"}`` stands in for it for persona keys."""
        # Tests drive the sweeper themselves; a background one would race them.
        overrides.setdefault("run_sweeper", False)
        settings = _apply_mode(dict(overrides), explicit=set(overrides))
        problems = settings.problems()
        if problems:
            raise ConfigError(problems)
        return settings

    # -- validation --------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Every reason this configuration cannot run (empty when it can): each group's own,
        then the rules that span groups."""
        found = [problem for group in GROUPS for problem in group.problems(self)]
        public = urlsplit(self.public_url)
        # Production only (the mode is Agora's): agents send their call's tool token to it.
        if self.public_url and is_http_url(self.public_url) and not self.sandbox \
                and public.scheme != "https" and public.hostname not in LOOPBACK_HOSTS:
            found.append("PUBLIC_URL must use https in production (agents send their call's "
                         "tool token to it); plain http is only for localhost")
        return found

    # -- helpers -----------------------------------------------------------------------------

    @property
    def tools_url(self) -> str:
        """Where agents reach the MCP endpoint (``<PUBLIC_URL>/mcp``); in sandbox mode without
        PUBLIC_URL, the service's own local address. Empty: tools are left out of joins."""
        if self.public_url:
            return self.public_url.rstrip("/") + "/mcp"
        return f"http://127.0.0.1:{self.port}/mcp" if self.sandbox else ""

    @property
    def mode(self) -> str:
        return "sandbox" if self.sandbox else "production"

    def secret_values(self) -> list[str]:
        """Every configured secret, for log and error-body redaction."""
        names = ("agora_app_certificate", "agora_customer_secret", "agora_ncs_secret",
                 "agora_ncs_secret_previous", "agora_convoai_ncs_secret", "sip_auth",
                 "admin_token", "cron_secret", "openai_api_key", "elevenlabs_api_key",
                 "sip_lookup_auth", "sip_lookup_token", "sip_events_token",
                 "events_webhook_secret", "metrics_token")
        # The lookup header's credential alone too ("Basic <this>"), should it be logged apart.
        lookup_credential = self.sip_lookup_auth.partition(" ")[2].strip()
        values = [*(getattr(self, n) for n in names), lookup_credential,
                  *self.persona_keys.values()]
        return list(dict.fromkeys(v for v in values if v and len(v) >= 4))

    def replace(self, **changes: object) -> Settings:
        return replace(self, **changes)


#: Fields worked out at start-up rather than read from a variable.
_DERIVED = ("sandbox", "persona_keys")
_FIELDS = {f.name: f for f in fields(Settings) if f.name not in _DERIVED}


def _on_vercel(settings: Settings) -> tuple[Settings, list[str]]:
    """Vercel's rules (its runtime sets VERCEL=1): a function may be frozen as soon as its
    response is sent, and its disk is not kept between invocations. So joins and leaves are
    always sent inside the webhook's own request (AGENT_START_MODE=inline), no sweeper thread
    runs (RUN_SWEEPER=false; Vercel Cron calls /api/reconcile instead), whatever the
    environment says, and the store must be PostgreSQL."""
    problems = []
    if settings.database_url.startswith("sqlite"):
        problems.append("on Vercel, DATABASE_URL must name PostgreSQL (a SQLite file does not "
                        "survive between invocations)")
    return replace(settings, agent_start_mode="inline", run_sweeper=False), problems


def _read(env: Mapping[str, str]) -> tuple[dict[str, object], list[str]]:
    """Pick the known variables out of ``env`` (with legacy aliases) and convert their types."""
    values: dict[str, object] = {}
    problems: list[str] = []
    for name, spec in _FIELDS.items():
        var = name.upper()
        text = env.get(var)
        if (text is None or text == "") and var in LEGACY_ALIASES:
            text = env.get(LEGACY_ALIASES[var])
        if text is None or text.strip() == "":
            continue
        text = text.strip()
        kind = type(spec.default)
        try:
            if kind is bool:
                values[name] = _parse_bool(text)
            elif kind is int:
                values[name] = int(text)
            elif kind is float:
                values[name] = float(text)
            else:
                values[name] = text
        except ValueError:
            problems.append(f"{var} must be {'true/false' if kind is bool else kind.__name__}, "
                            f"not {text!r}" if kind is not str else f"{var} is not valid")
    return values, problems


def _apply_mode(values: dict[str, object], *, explicit: set[str]) -> Settings:
    """Fill sandbox placeholders for what is missing when no app id is set."""
    values = dict(values)
    sandbox = not values.get("agora_app_id")
    if sandbox:
        sandbox_url = str(values.get("sandbox_url", SANDBOX_URL)).rstrip("/")
        placeholders = {
            "agora_app_id": SANDBOX_APP_ID,
            "agora_app_certificate": SANDBOX_APP_CERTIFICATE,
            "agora_customer_id": SANDBOX_CUSTOMER_ID,
            "agora_customer_secret": SANDBOX_CUSTOMER_SECRET,
            "agora_ncs_secret": SANDBOX_NCS_SECRET,
            "convoai_api_url": f"{sandbox_url}/convoai",
            "sip_api_url": f"{sandbox_url}/sip/v1/api/pstn",
            "sip_auth": SANDBOX_SIP_AUTH,
            "openai_api_key": "sandbox-openai-key",
            "elevenlabs_api_key": "sandbox-elevenlabs-key",
            "elevenlabs_voice_id": "sandbox-voice",
            "admin_token": "sandbox-admin-token",
            "outbound_caller_id": "+15555550100",
        }
        for name, placeholder in placeholders.items():
            # An explicitly set value always wins, in either mode.
            if name not in explicit or not values.get(name):
                values[name] = placeholder
    database_url = str(values.get("database_url", DEFAULT_DATABASE_URL))
    if database_url.startswith("postgres://"):
        # Heroku's form; SQLAlchemy only knows postgresql://.
        values["database_url"] = "postgresql://" + database_url[len("postgres://"):]
    return Settings(**values, sandbox=sandbox)


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)
