"""Replace secret values by fingerprints before the sandbox stores anything it received.

A fingerprint is ``"***"`` + the first 8 hex characters of sha256(value): tests can check that
the right key was sent by comparing fingerprints, and no secret is ever readable back.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: Exact key names (case-insensitive) whose values are secrets.
SECRET_KEYS = frozenset(
    {"key", "api_key", "token", "secret", "password", "credentials", "authorization",
     "access_key_id", "api_subscription_key", "adc_credentials_string"}
)
#: Suffixes that also mark a secret (secret_access_key, aws_secret_access_key, rtc_token, ...).
SECRET_SUFFIXES = ("_key", "_secret", "_token", "_password", "_credentials")


def fingerprint(value: Any) -> str:
    """``***`` + 8 hex chars of sha256 of the value (JSON-encoded unless it is a string)."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return "***" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def is_secret_key(name: str) -> bool:
    """Whether a field called ``name`` holds a secret."""
    lowered = name.lower()
    return lowered in SECRET_KEYS or lowered.endswith(SECRET_SUFFIXES)


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret-bearing field's value fingerprinted."""
    if isinstance(value, dict):
        return {
            k: (fingerprint(v) if is_secret_key(str(k)) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value
