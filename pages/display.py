"""How the dashboard writes figures, times and event details (plain functions, no Flask)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from observability.logs import REDACTED

#: An event's detail is shown on one line of the timeline, cut at this length.
DETAIL_CHARS = 300


def duration(seconds: float | None) -> str:
    """``4.2 s``, ``3 min 05 s``, ``1 h 02 min``; an em dash for no value."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def milliseconds(value: float | None) -> str:
    """``850 ms`` below two seconds, else seconds: ``2.35 s``."""
    if value is None:
        return "—"
    if value < 2000:
        return f"{value:.0f} ms"
    return f"{value / 1000:.2f} s"


def clock(iso: str | None) -> str:
    """An ISO time from the API (``2026-11-23T22:34:11.123Z``) as ``2026-11-23 22:34:11``."""
    if not iso:
        return "—"
    return iso.replace("T", " ")[:19]


def describe(detail: Mapping[str, Any] | None, secrets: Iterable[str] = ()) -> str:
    """An event's detail on one line, ``key=value`` pairs. A conversation history and the turns
    of event 112 are counted, not printed (the transcript and the turn latency show them), and
    configured secrets are masked in case an upstream error message ever echoed one."""
    if not detail:
        return ""
    pairs = []
    for key, value in detail.items():
        if key in ("contents", "turns") and isinstance(value, list):
            value = f"{len(value)} turns"
        elif not isinstance(value, str):
            value = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
        pairs.append(f"{key}={value}")
    text = mask(" ".join(pairs), secrets)
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS - 1] + "…"


def mask(value: object, secrets: Iterable[str]) -> str | None:
    """``value`` as text with every configured secret replaced by ``***``, longest first."""
    if value is None:
        return None
    text = str(value)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def ms_edge(value: float) -> str:
    """A bin edge of milliseconds, short: ``250 ms``, ``1.5 s``."""
    return f"{value:g} ms" if value < 1000 else f"{value / 1000:g} s"


def seconds_edge(value: float) -> str:
    """A bin edge of seconds, short: ``30 s``, ``2 min``."""
    return f"{value:g} s" if value < 60 else f"{value / 60:g} min"
