"""Structured logs to stdout, one JSON object a line, with every configured secret redacted.

Log events, not prose: ``logger.info("agent.started", extra={"call_id": ..., "agent_id": ...})``.
Redaction is a last line of defence; code should never pass a secret to a logger at all.
"""

from __future__ import annotations

import base64
import json
import logging
import string
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from config import Settings

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
REDACTED = "***"


#: Forms derived from a secret (encodings, pieces of base64) shorter than this are not redacted:
#: they could match ordinary text.
_MIN_DERIVED_CHARS = 8


def secret_forms(secrets: Iterable[str], basic_pairs: Iterable[tuple[str, str]] = ()) -> set[str]:
    """Every form in which a secret could leak: raw, JSON-escaped, URL-encoded, hex, base64 (on
    its own or inside a longer base64 text, such as a Basic header carrying it), and the whole
    Basic credential of each (user, password) pair."""
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) < 4:
            continue
        forms.add(secret)
        forms.add(json.dumps(secret)[1:-1])
        raw = secret.encode()
        derived = {quote(secret, safe=""), quote(secret), quote_plus(secret), raw.hex(),
                   raw.hex().upper(), *base64_fragments(raw)}
        if all(c in string.hexdigits for c in secret):
            # A hex secret (the app certificate) may be printed in either case.
            derived |= {secret.lower(), secret.upper()}
        if secret.startswith("whsec_"):
            derived.add(secret[len("whsec_"):])  # the key's base64, as Standard Webhooks uses it
        forms |= {f for f in derived if len(f) >= _MIN_DERIVED_CHARS}
    for user, password in basic_pairs:
        if password:
            forms.add(base64.b64encode(f"{user}:{password}".encode()).decode())
    return {f for f in forms if f}


def base64_fragments(data: bytes) -> set[str]:
    """The base64 characters that encode ``data`` whatever precedes it, for each of the three
    alignments it can have inside a longer encoded text, in the standard and URL-safe alphabets.

    A base64 character carries 6 bits; only those whose bits all come from ``data`` are kept.
    """
    fragments: set[str] = set()
    for offset in range(3):
        first = -(-8 * offset // 6)  # ceil: the first character with no bit of the prefix
        last = 8 * (offset + len(data)) // 6  # floor: the end of those with no bit after data
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            fragments.add(encode(bytes(offset) + data).decode()[first:last])
    return {f for f in fragments if f}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; ``extra`` fields become keys."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set(secrets)

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(out, default=str))

    def redact(self, text: str) -> str:
        # Longest first, so a secret that contains another is replaced whole.
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def configure(level: str, secrets: Iterable[str], *, command: bool = False,
              stream: TextIO | None = None) -> None:
    """Send every logger's records to stdout as redacted JSON. Safe to call again (tests do):
    the one handler is kept and learns the new secrets.

    For a one-shot ``flask`` command (``command``), stdout is the command's own output and
    start-up chatter (migrations, the mode banner) is noise: records go to stderr, warnings and
    errors only. ``stream`` overrides where they go.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    if command and root.level < logging.WARNING:
        root.setLevel(logging.WARNING)
    stream = stream or (sys.stderr if command else sys.stdout)
    handler = next((h for h in root.handlers if getattr(h, "_phone_agent", False)), None)
    if handler is None:
        handler = logging.StreamHandler(stream)
        handler._phone_agent = True  # type: ignore[attr-defined]
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    else:
        handler.setStream(stream)
    formatter = handler.formatter
    assert isinstance(formatter, JsonFormatter)
    formatter.secrets |= set(secrets)
    # urllib3 logs full URLs at DEBUG, and requests' own debug output can include headers.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def redactable(settings: Settings) -> list[str]:
    """Every form of every configured secret the logs must not show: the service's (configure)
    and gunicorn's own loggers (factory/gunicorn.py) get the same list."""
    return sorted(secret_forms(
        settings.secret_values(),
        basic_pairs=[(settings.agora_customer_id, settings.agora_customer_secret)],
    ))
