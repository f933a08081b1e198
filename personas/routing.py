"""PERSONA_ROUTES: which persona answers a channel, by glob rules on the channel name.

``"tarot_*=tarot, support_*=support"``: rules are tried in order and the first whose glob
matches the whole channel name wins (``*`` any run of characters, ``?`` one, ``[abc]`` one of;
case-sensitive, like channel names). A channel no rule matches gets DEFAULT_PERSONA.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

# The name rule and the rules' syntax are settings (DEFAULT_PERSONA, PERSONA_ROUTES), checked
# when they are read; re-exported here for the persona files, which follow the same rule.
from settings.agent import NAME, NAME_RULE, route_rules

__all__ = ["NAME", "NAME_RULE", "Route", "match", "parse_routes"]


@dataclass(frozen=True)
class Route:
    pattern: str
    persona: str

    def matches(self, channel: str) -> bool:
        return fnmatchcase(channel, self.pattern)


def parse_routes(text: str) -> tuple[list[Route], list[str]]:
    """The rules in ``text`` and a problem for each rule that cannot be read."""
    rules, problems = route_rules(text)
    return [Route(pattern, persona) for pattern, persona in rules], problems


def match(routes: list[Route], channel: str) -> str | None:
    """The persona of the first rule that matches ``channel``, or None."""
    return next((route.persona for route in routes if route.matches(channel)), None)
