"""Sandbox settings, read once from ``SANDBOX_*`` environment variables.

The sandbox is a local stand-in for Agora (ConvoAI REST + NCS webhooks). Its defaults are fixed
placeholders so the service and the tests can share them without an Agora account.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

# The shared placeholders come from the service's config (through sandbox/defaults.py); they are
# re-exported here so sandbox code has one place to read settings from.
from sandbox.defaults import (
    DEFAULT_PORT,
    SANDBOX_APP_CERTIFICATE,
    SANDBOX_APP_ID,
    SANDBOX_CUSTOMER_ID,
    SANDBOX_CUSTOMER_SECRET,
    SANDBOX_NCS_SECRET,
    SANDBOX_SIP_AUTH,
    SANDBOX_TOOLS_SECRET,
)

__all__ = [
    "DEFAULT_CONCURRENCY_LIMIT", "DEFAULT_PORT", "SANDBOX_APP_CERTIFICATE", "SANDBOX_APP_ID",
    "SANDBOX_CUSTOMER_ID", "SANDBOX_CUSTOMER_SECRET", "SANDBOX_NCS_SECRET", "SANDBOX_SIP_AUTH",
    "ConfigError", "SandboxConfig",
]

#: Agora's default ConvoAI concurrency limit per App ID (reference section 4.4).
DEFAULT_CONCURRENCY_LIMIT = 20
# SANDBOX_SIP_AUTH is the SIP gateway credential (``Authorization: Basic <value>``); the
# service's sandbox mode sends the same placeholder.


class ConfigError(ValueError):
    """One or more SANDBOX_* settings are invalid; the message lists every problem."""


@dataclass(frozen=True)
class SandboxConfig:
    """Everything the sandbox needs; an empty ``app_certificate`` turns token checks off."""

    app_id: str = SANDBOX_APP_ID
    app_certificate: str = SANDBOX_APP_CERTIFICATE
    customer_id: str = SANDBOX_CUSTOMER_ID
    customer_secret: str = SANDBOX_CUSTOMER_SECRET
    ncs_secret: str = SANDBOX_NCS_SECRET
    #: Secret of the ConvoAI notification block; empty means "same as ncs_secret".
    convoai_ncs_secret: str = ""
    #: The service's NCS endpoint, e.g. http://127.0.0.1:8000/webhook; empty sends nothing.
    webhook_url: str = ""
    concurrency_limit: int = DEFAULT_CONCURRENCY_LIMIT
    start_delay_s: float = 0.3
    stop_delay_s: float = 0.2
    turn_interval_s: float = 1.0
    max_turns: int = 6
    #: Read timeout for webhook deliveries; NCS itself waits 10 s for a 200.
    ncs_timeout_s: float = 10.0
    tick_interval_s: float = 0.05
    # -- the SIP/PSTN gateway stand-in (sandbox/sip_*.py) --
    sip_auth: str = SANDBOX_SIP_AUTH
    #: How long an outbound call rings before it is answered (the API answers only then).
    outbound_answer_delay_s: float = 1.0
    #: How long a number that does not answer (sandbox/phone_network.py ``no_answer``) rings
    #: before the gateway gives up; short, so tests and demos do not wait a real minute.
    outbound_ring_timeout_s: float = 2.0
    #: How long an outbound request hangs before its 503 when a "hang" result is queued.
    outbound_hang_s: float = 30.0
    #: When the callee of an answered outbound call hangs up; null or 0: only on endcall.
    outbound_call_duration_s: float | None = 5.0
    #: How long ConvoAI's /call rings a number that does not answer before giving up.
    call_ring_s: float = 3.0
    #: The service's ring-time lookup hook; empty means <webhook_url's origin>/sip/lookup.
    lookup_url: str = ""
    #: Sent as ``Authorization: Bearer <lookup_token>`` on each lookup when set.
    lookup_token: str = ""
    #: Sent as the whole ``Authorization`` header, exactly as given (any scheme), like the
    #: header agreed with Agora at provisioning; wins over ``lookup_token``.
    lookup_auth: str = ""
    #: The demo shop's Standard Webhooks secret (``whsec_...``, sandbox/shop.py): SHOP_TOOLS_SECRET,
    #: the variable the service signs the orders persona's tool with, else the placeholder the
    #: service uses in sandbox mode when that is unset.
    shop_tools_secret: str = SANDBOX_TOOLS_SECRET

    @property
    def lookup_authorization(self) -> str:
        """The Authorization header each lookup carries ("" for none)."""
        if self.lookup_auth:
            return self.lookup_auth
        return f"Bearer {self.lookup_token}" if self.lookup_token else ""

    @property
    def convoai_secret(self) -> str:
        """The secret ConvoAI (productId 17) events are signed with."""
        return self.convoai_ncs_secret or self.ncs_secret

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SandboxConfig:
        """Build from ``SANDBOX_<FIELD>`` variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for field in fields(cls):
            name = "SANDBOX_" + field.name.upper()
            if name not in env:
                continue
            convert = _CONVERTERS.get(field.type, str)
            try:
                values[field.name] = convert(env[name].strip())
            except ValueError:
                problems.append(f"{name} must be a {field.type}")
        if problems:
            raise ConfigError("; ".join(problems))
        if "shop_tools_secret" not in values and env.get("SHOP_TOOLS_SECRET"):
            values["shop_tools_secret"] = env["SHOP_TOOLS_SECRET"].strip()
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ConfigError naming every out-of-range value at once."""
        problems = []
        if self.concurrency_limit < 0:
            problems.append("concurrency_limit must be >= 0")
        for name in ("start_delay_s", "stop_delay_s", "ncs_timeout_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        for name in ("turn_interval_s", "tick_interval_s"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0")
        if self.max_turns < 0:
            problems.append("max_turns must be >= 0")
        if not self.customer_id or not self.customer_secret:
            problems.append("customer_id and customer_secret must not be empty")
        for name in ("webhook_url", "lookup_url"):
            url = getattr(self, name)
            if url and not url.startswith(("http://", "https://")):
                problems.append(f"{name} must start with http:// or https://")
        for name in ("outbound_answer_delay_s", "outbound_ring_timeout_s", "outbound_hang_s",
                     "call_ring_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        if self.outbound_call_duration_s is not None and self.outbound_call_duration_s < 0:
            problems.append("outbound_call_duration_s must be >= 0 (or empty: until endcall)")
        if not self.sip_auth:
            problems.append("sip_auth must not be empty")
        if problems:
            raise ConfigError("invalid sandbox config: " + "; ".join(problems))


def _optional_float(text: str) -> float | None:
    """An empty value (or "null"/"none") means "not set"."""
    return None if text.lower() in ("", "null", "none") else float(text)


_CONVERTERS: dict[Any, Callable[[str], Any]] = {
    "int": int,
    "float": float,
    "float | None": _optional_float,
    "str": str,
}
