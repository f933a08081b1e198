"""Settings: read from the environment (and `.env`) once, converted and validated in one place.

No AGORA_APP_ID means sandbox mode: the built-in sandbox (``python -m sandbox``) stands in for
Agora, and placeholder credentials fill whatever is missing. With an app id set, every required
setting must be present and well-formed, and start-up stops with one message listing every problem.

The agent itself (prompt, LLM, voice, speech recognition) is a persona (personas/): its problems
join the same message, as ``file: field: problem`` lines, and the keys its ``*_env`` fields name
are read here too, from the same environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ROOT = Path(__file__).resolve().parent
DEFAULT_CONVOAI_API_URL = "https://api.agora.io/api/conversational-ai-agent"
DEFAULT_SIP_API_URL = "https://sipcm.agora.io/v1/api/pstn"
DEFAULT_DATABASE_URL = f"sqlite:///{ROOT / 'instance' / 'phone_agent.db'}"
#: OUTBOUND_BACKEND's values: the SIP gateway dials, or ConvoAI's own telephony does.
OUTBOUND_BACKENDS = ("gateway", "convoai")

#: Sandbox mode's placeholder credentials and the sandbox's address. They only ever unlock the
#: local sandbox, so they are not secrets. They live here, not in sandbox/, so the service never
#: imports the sandbox; the sandbox reads them from here (sandbox/defaults.py).
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
#: Hosts for which plain http is acceptable in PUBLIC_URL (a tunnel or proxy on the same machine).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
SANDBOX_PORT = 8090
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"

#: Names used by Agora's AI-Phone-Agent sample, read when the current name is unset, so its users
#: can bring their .env unchanged.
LEGACY_ALIASES = {
    "AGORA_APP_ID": "APP_ID",
    "AGORA_APP_CERTIFICATE": "APP_CERTIFICATE",
    "AGORA_CUSTOMER_ID": "AGORA_API_KEY",
    "AGORA_CUSTOMER_SECRET": "AGORA_API_SECRET",
    "SIP_AUTH": "PSTN_AUTH",
}

_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,23}$")


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


@dataclass(frozen=True)
class Settings:
    """Every setting the service reads. Field names are the variable names, lower-cased."""

    agora_app_id: str = ""
    agora_app_certificate: str = ""
    agora_customer_id: str = ""
    agora_customer_secret: str = field(default="", repr=False)
    agora_ncs_secret: str = field(default="", repr=False)
    agora_ncs_secret_previous: str = field(default="", repr=False)
    agora_convoai_ncs_secret: str = field(default="", repr=False)
    convoai_api_url: str = DEFAULT_CONVOAI_API_URL
    sip_api_url: str = DEFAULT_SIP_API_URL
    sip_auth: str = field(default="", repr=False)
    database_url: str = DEFAULT_DATABASE_URL
    #: The longest one store operation waits for a lock (or for PostgreSQL to answer) before the
    #: request fails with 503; an NCS delivery is answered inside NCS's 10 s either way.
    store_timeout_s: float = 5.0
    pstn_uid: int = 111
    agent_uid: int = 222
    admin_token: str = field(default="", repr=False)
    cron_secret: str = field(default="", repr=False)
    # The SIP gateway's hooks (sip/views.py).
    #: The whole Authorization header the gateway sends to the lookup hook, as agreed with Agora
    #: at provisioning ("Bearer x", "Basic x", a bare key); SIP_LOOKUP_TOKEN is short for
    #: "Bearer <token>".
    sip_lookup_auth: str = field(default="", repr=False)
    sip_lookup_token: str = field(default="", repr=False)
    sip_events_token: str = field(default="", repr=False)
    start_agent_on_lookup: bool = True
    lookup_join_timeout_s: int = 30
    max_concurrent_calls: int = 20
    #: Agent minutes per UTC day, across all calls; 0: no budget (calls/guards.py).
    daily_agent_minutes: int = 0
    # Costs (calls/costs.py, docs/operations.md): money per minute, in COST_CURRENCY.
    #: ConvoAI's price per agent minute.
    convoai_per_minute: float = 0.0
    #: The SIP gateway's price per minute of a call with a phone leg.
    sip_per_minute: float = 0.0
    cost_currency: str = "USD"
    #: Estimated money per UTC day, across all calls; 0: no budget (calls/guards.py).
    daily_budget: float = 0.0
    public_url: str = ""
    #: The port `make run` and gunicorn.conf.py serve on: in sandbox mode without PUBLIC_URL,
    #: agents reach the tools endpoint at http://127.0.0.1:PORT/mcp.
    port: int = 8000
    outbound_caller_id: str = ""
    #: Who dials outbound calls: ``gateway`` (the SIP gateway's ``outbound``, numbers
    #: provisioned there) or ``convoai`` (ConvoAI's own telephony, ``POST .../call``, numbers
    #: imported into Agora). docs/sip.md.
    outbound_backend: str = "gateway"
    try_page: bool = False
    try_daily_limit: int = 50
    try_per_address_limit: int = 2
    # Keys the built-in personas name in their *_env fields (any persona may name others).
    openai_api_key: str = field(default="", repr=False)
    elevenlabs_api_key: str = field(default="", repr=False)
    elevenlabs_voice_id: str = ""
    enable_rtm: bool = False
    # Personas (personas/, docs/personas.md).
    default_persona: str = "support"
    personas_dir: str = ""
    persona_routes: str = ""
    timezone: str = "UTC"
    # Lifecycle.
    agent_name_prefix: str = "phoneagent"
    rejoin_grace_s: int = 30
    agent_start_mode: str = "inline"
    join_budget_s: float = 7.0
    sweep_interval_s: float = 2.0
    run_sweeper: bool = True
    work_lease_s: float = 30.0
    #: How long a dialled outbound call may show no sign of a phone leg before the dialer
    #: gives it up as lost (outbound/dialer.py).
    dial_timeout_s: float = 300.0
    notice_retention_hours: int = 48
    # Operations (docs/operations.md).
    reconcile_interval_s: int = 60
    retention_days: int = 30
    goodbye_wait_min_s: float = 3.0
    goodbye_wait_max_s: float = 20.0
    #: Seconds after a call ends before its post-call analysis is queued (calls/analysis.py),
    #: so ConvoAI's own history notification has arrived.
    analysis_delay_s: float = 15.0
    events_webhook_url: str = ""
    events_webhook_secret: str = field(default="", repr=False)
    metrics_token: str = field(default="", repr=False)
    # Access (docs/security.md).
    rate_limit_per_minute: int = 30
    rate_limit_window_s: int = 60
    cors_origins: str = ""
    proxy_hops: int = 0
    # Running.
    sandbox_url: str = SANDBOX_URL
    log_level: str = "INFO"
    migrate_on_start: bool = True
    # Derived, not read from the environment.
    sandbox: bool = False
    #: The value of every variable a persona names in a *_env field (in sandbox mode, a
    #: placeholder for those not set).
    persona_keys: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    # -- reading -----------------------------------------------------------------------------

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
        """Read settings from ``env`` (default: os.environ plus `.env`) and validate them."""
        if env is None:
            if dotenv:
                from dotenv import load_dotenv

                load_dotenv(ROOT / ".env", override=False)
            env = os.environ
        raw, problems = _read(env)
        settings = _apply_mode(raw, explicit={k for k in raw})
        if env.get("VERCEL", "").strip() not in ("", "0"):
            settings, serverless_problems = _on_vercel(settings)
            problems += serverless_problems
        problems += settings.problems()
        settings, persona_problems = _with_personas(settings, env)
        problems += persona_problems
        if problems:
            raise ConfigError(problems)
        return settings

    @classmethod
    def for_tests(cls, **overrides: object) -> Settings:
        """Sandbox-mode settings with ``overrides``; validated like real ones. The environment
        is not read: ``persona_keys={"VAR": "value"}`` stands in for it for persona keys."""
        env: Mapping[str, str] = overrides.pop("persona_keys", None) or {}  # type: ignore
        # Tests drive the sweeper themselves; a background one would race them.
        overrides.setdefault("run_sweeper", False)
        settings = _apply_mode(dict(overrides), explicit=set(overrides))
        problems = settings.problems()
        settings, persona_problems = _with_personas(settings, env)
        problems += persona_problems
        if problems:
            raise ConfigError(problems)
        return settings

    # -- validation --------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Every reason this configuration cannot run (empty when it can)."""
        found: list[str] = []
        if not self.sandbox:
            required = {
                "AGORA_APP_CERTIFICATE": self.agora_app_certificate,
                "AGORA_CUSTOMER_ID": self.agora_customer_id,
                "AGORA_CUSTOMER_SECRET": self.agora_customer_secret,
                "AGORA_NCS_SECRET": self.agora_ncs_secret,
            }
            # The LLM and TTS keys are checked with the personas that name them (from_env).
            found += [f"{name} is required when AGORA_APP_ID is set" for name, v in
                      required.items() if not v]
            if not _HEX32.match(self.agora_app_id):
                found.append("AGORA_APP_ID must be 32 hexadecimal characters")
            if self.agora_app_certificate and not _HEX32.match(self.agora_app_certificate):
                found.append("AGORA_APP_CERTIFICATE must be 32 hexadecimal characters")
        for name in ("CONVOAI_API_URL", "SIP_API_URL"):
            value = getattr(self, name.lower())
            if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
                found.append(f"{name} must be an http(s) URL")
        if not self.sandbox and urlsplit(self.convoai_api_url).scheme != "https":
            found.append("CONVOAI_API_URL must use https in production (Agora refuses plain HTTP)")
        if "://" not in self.database_url:
            found.append("DATABASE_URL must be a database URL such as sqlite:///path or "
                         "postgresql://user@host/db")
        for name in ("PSTN_UID", "AGENT_UID"):
            if not 0 < getattr(self, name.lower()) < 2**31 - 1:
                found.append(f"{name} must be between 1 and 2147483646")
        if self.pstn_uid == self.agent_uid:
            found.append("PSTN_UID and AGENT_UID must differ (the agent listens to the caller)")
        if not _PREFIX.match(self.agent_name_prefix):
            found.append("AGENT_NAME_PREFIX must start with a letter and hold at most 24 "
                         "letters, digits, '-' or '_'")
        if self.agent_start_mode not in ("background", "inline"):
            found.append("AGENT_START_MODE must be 'background' or 'inline'")
        if self.outbound_backend not in OUTBOUND_BACKENDS:
            found.append("OUTBOUND_BACKEND must be 'gateway' or 'convoai'")
        if not 0 <= self.rejoin_grace_s <= 3600:
            found.append("REJOIN_GRACE_S must be between 0 and 3600")
        if not self.join_budget_s < self.work_lease_s <= 3600:
            found.append("WORK_LEASE_S must be more than JOIN_BUDGET_S and at most 3600")
        if not 10 <= self.dial_timeout_s <= 3600:
            found.append("DIAL_TIMEOUT_S must be between 10 and 3600")
        if not 0 <= self.analysis_delay_s <= 3600:
            found.append("ANALYSIS_DELAY_S must be between 0 and 3600")
        if not 0 <= self.goodbye_wait_min_s <= self.goodbye_wait_max_s <= 600:
            found.append("GOODBYE_WAIT_MIN_S and GOODBYE_WAIT_MAX_S must satisfy "
                         "0 <= GOODBYE_WAIT_MIN_S <= GOODBYE_WAIT_MAX_S <= 600")
        if not 1 <= self.store_timeout_s <= 8:
            found.append("STORE_TIMEOUT_S must be between 1 and 8 (NCS waits 10 s for an answer)")
        if not 0 < self.join_budget_s <= 9:
            found.append("JOIN_BUDGET_S must be above 0 and at most 9 (NCS waits 10 s)")
        found += self._persona_setting_problems()
        if not 5 <= self.lookup_join_timeout_s <= 600:
            found.append("LOOKUP_JOIN_TIMEOUT_S must be between 5 and 600")
        if self.try_daily_limit < 0 or self.try_per_address_limit < 0:
            found.append("TRY_DAILY_LIMIT and TRY_PER_ADDRESS_LIMIT must be 0 or more")
        if self.max_concurrent_calls < 0:
            found.append("MAX_CONCURRENT_CALLS must be 0 (no cap) or more")
        public = urlsplit(self.public_url)
        if self.public_url and (public.scheme not in ("http", "https") or not public.netloc):
            found.append("PUBLIC_URL must be an http(s) URL such as https://calls.example.com")
        elif self.public_url and not self.sandbox and public.scheme != "https" \
                and public.hostname not in LOOPBACK_HOSTS:
            found.append("PUBLIC_URL must use https in production (agents send their call's "
                         "tool token to it); plain http is only for localhost")
        if not 1 <= self.port <= 65535:
            found.append("PORT must be between 1 and 65535")
        for name in ("SIP_LOOKUP_AUTH", "SIP_LOOKUP_TOKEN", "SIP_EVENTS_TOKEN"):
            value = getattr(self, name.lower())
            if value and len(value) < 16:
                found.append(f"{name} must be at least 16 characters (it is a credential)")
        if not all(" " <= c <= "~" for c in self.sip_lookup_auth) \
                or self.sip_lookup_auth != self.sip_lookup_auth.strip():
            found.append("SIP_LOOKUP_AUTH must be printable ASCII with no space at either end "
                         "(it is compared with an HTTP header)")
        if self.sweep_interval_s <= 0:
            found.append("SWEEP_INTERVAL_S must be above 0")
        if self.notice_retention_hours < 1:
            found.append("NOTICE_RETENTION_HOURS must be at least 1")
        if self.daily_agent_minutes < 0:
            found.append("DAILY_AGENT_MINUTES must be 0 (no budget) or more")
        found += self._cost_problems()
        if not 10 <= self.reconcile_interval_s <= 86_400:
            found.append("RECONCILE_INTERVAL_S must be between 10 and 86400")
        if self.retention_days < 0:
            found.append("RETENTION_DAYS must be 0 (keep records) or more")
        if self.events_webhook_url:
            if urlsplit(self.events_webhook_url).scheme not in ("http", "https"):
                found.append("EVENTS_WEBHOOK_URL must be an http(s) URL")
            if not self.events_webhook_secret:
                found.append("EVENTS_WEBHOOK_SECRET is required when EVENTS_WEBHOOK_URL is set")
        if self.events_webhook_secret and not _webhook_secret_ok(self.events_webhook_secret):
            found.append("EVENTS_WEBHOOK_SECRET must be whsec_ followed by base64 of 24 to 64 "
                         "random bytes (Standard Webhooks); `python -c \"import base64,os; "
                         "print('whsec_'+base64.b64encode(os.urandom(32)).decode())\"` makes one")
        if self.rate_limit_per_minute < 0:
            found.append("RATE_LIMIT_PER_MINUTE must be 0 (no limit) or more")
        if not 1 <= self.rate_limit_window_s <= 86400:
            found.append("RATE_LIMIT_WINDOW_S must be between 1 and 86400")
        if not 0 <= self.proxy_hops <= 5:
            found.append("PROXY_HOPS must be between 0 and 5")
        for origin in filter(None, (o.strip() for o in self.cors_origins.split(","))):
            if urlsplit(origin).scheme not in ("http", "https") or urlsplit(origin).path:
                found.append(f"CORS_ORIGINS: {origin!r} is not an origin such as "
                             "https://admin.example.com")
        return found

    def _cost_problems(self) -> list[str]:
        found = [f"{name} must be a number, 0 or more" for name in
                 ("CONVOAI_PER_MINUTE", "SIP_PER_MINUTE")
                 if not 0 <= getattr(self, name.lower()) < float("inf")]
        if not 0 <= self.daily_budget < float("inf"):
            found.append("DAILY_BUDGET must be 0 (no budget) or more")
        if not _CURRENCY.match(self.cost_currency):
            found.append("COST_CURRENCY must be a three-letter ISO 4217 code such as USD")
        return found

    def _persona_setting_problems(self) -> list[str]:
        from personas.routing import NAME, NAME_RULE, parse_routes

        found: list[str] = []
        if not NAME.match(self.default_persona):
            found.append(f"DEFAULT_PERSONA must be a persona name: {NAME_RULE}")
        if self.personas_dir:
            from personas.registry import user_dir

            if not user_dir(self.personas_dir).is_dir():
                found.append(f"PERSONAS_DIR: {user_dir(self.personas_dir)} is not a folder")
        found += parse_routes(self.persona_routes)[1]
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            found.append(f"TIMEZONE: unknown time zone {self.timezone!r} (use an IANA name such "
                         "as Europe/Paris or America/New_York)")
        return found

    # -- helpers -----------------------------------------------------------------------------

    @property
    def sip_lookup_on(self) -> bool:
        """Whether POST /sip/lookup answers (it is closed, 404, without a credential)."""
        return bool(self.sip_lookup_auth or self.sip_lookup_token)

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


def _with_personas(settings: Settings, env: Mapping[str, str]) -> tuple[Settings, list[str]]:
    """Load the personas (personas/) and read the keys their *_env fields name from ``env``.
    Returns the settings with those keys, and every persona problem."""
    from personas.registry import inspect_personas

    inspection = inspect_personas(settings, env)
    return replace(settings, persona_keys=inspection.keys), inspection.problems


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


def _webhook_secret_ok(secret: str) -> bool:
    import base64
    import binascii

    if not secret.startswith("whsec_"):
        return False
    try:
        key = base64.b64decode(secret[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError):
        return False
    return 24 <= len(key) <= 64


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)
