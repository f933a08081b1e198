"""PERSONA_ROUTES: which persona answers a channel, by glob rules on the channel name.

``"tarot_*=tarot, support_*=support"``: rules are tried in order and the first whose glob
matches the whole channel name wins (``*`` any run of characters, ``?`` one, ``[abc]`` one of;
case-sensitive, like channel names). A channel no rule matches gets DEFAULT_PERSONA.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
NAME_RULE = "a lower-case letter, then up to 31 lower-case letters, digits, '-' or '_'"


@dataclass(frozen=True)
class Route:
    pattern: str
    persona: str

    def matches(self, channel: str) -> bool:
        return fnmatchcase(channel, self.pattern)


def parse_routes(text: str) -> tuple[list[Route], list[str]]:
    """The rules in ``text`` and a problem for each rule that cannot be read."""
    routes: list[Route] = []
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
            routes.append(Route(pattern, persona))
    return routes, problems


def match(routes: list[Route], channel: str) -> str | None:
    """The persona of the first rule that matches ``channel``, or None."""
    return next((route.persona for route in routes if route.matches(channel)), None)
