"""The agent: which persona answers (personas/), the keys personas name, and the time zone.

The persona files themselves are loaded by personas/; this group checks only what the
variables say: a persona name's form, the PERSONA_ROUTES syntax, that PERSONAS_DIR is a folder.
Those rules live here, not in personas/, so reading settings never imports a feature package.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from settings.common import ROOT

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
NAME_RULE = "a lower-case letter, then up to 31 lower-case letters, digits, '-' or '_'"


@dataclass(frozen=True)
class AgentSettings:
    """DEFAULT_PERSONA, PERSONAS_DIR, PERSONA_ROUTES, TIMEZONE, ENABLE_RTM and the keys the
    built-in personas name in their *_env fields (any persona may name others)."""

    openai_api_key: str = field(default="", repr=False)
    elevenlabs_api_key: str = field(default="", repr=False)
    elevenlabs_voice_id: str = ""
    enable_rtm: bool = False
    default_persona: str = "support"
    personas_dir: str = ""
    persona_routes: str = ""
    timezone: str = "UTC"
    #: Derived, not read: the value of every variable a persona names in a *_env field (in
    #: sandbox mode, a placeholder for those not set).
    persona_keys: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def problems(self) -> list[str]:
        found: list[str] = []
        if not NAME.match(self.default_persona):
            found.append(f"DEFAULT_PERSONA must be a persona name: {NAME_RULE}")
        if self.personas_dir and not user_dir(self.personas_dir).is_dir():
            found.append(f"PERSONAS_DIR: {user_dir(self.personas_dir)} is not a folder")
        found += route_rules(self.persona_routes)[1]
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            found.append(f"TIMEZONE: unknown time zone {self.timezone!r} (use an IANA name such "
                         "as Europe/Paris or America/New_York)")
        return found


def user_dir(value: str) -> Path:
    """PERSONAS_DIR as a path; a relative one is taken from the repository root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else ROOT / path


def route_rules(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """PERSONA_ROUTES read as (channel glob, persona) pairs, and a problem for each rule that
    cannot be read. personas.routing turns the pairs into routes."""
    rules: list[tuple[str, str]] = []
    problems: list[str] = []
    for position, rule in enumerate(text.split(","), start=1):
        rule = rule.strip()
        if not rule:
            continue
        pattern, sep, persona = (part.strip() for part in rule.partition("="))
        if not sep:
            problems.append(f"PERSONA_ROUTES: rule {position} ({rule!r}) must be glob=persona, "
                            "for example tarot_*=tarot")
        elif not pattern:
            problems.append(f"PERSONA_ROUTES: rule {position} ({rule!r}) has no channel glob")
        elif not NAME.match(persona):
            problems.append(f"PERSONA_ROUTES: rule {position} ({rule!r}): the persona name must "
                            f"be {NAME_RULE}")
        else:
            rules.append((pattern, persona))
    return rules, problems
