"""A persona's ``[outbound]``: how its agent introduces itself on calls the service places.

A person who picks up did not call: they must hear at once that an AI is calling, and for
whom. So a persona with ``[outbound]`` names who it calls for (``on_behalf_of``), and the
greeting it says first on an outbound call (``greeting`` here, else the persona's own) must say
it is an AI and name them; otherwise the file has a problem, like any other, and
``flask personas check`` reports it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from personas.model import OutboundSpec
from personas.reader import Problems

OUTBOUND_FIELDS = ("greeting", "on_behalf_of")
#: Words that tell the person they are talking to a machine (matched case-insensitively, as
#: whole words, so "said" or "wait" never count as "AI").
AI_DISCLOSURE = re.compile(r"\b(ai|artificial intelligence|automated|virtual assistant)\b",
                           re.IGNORECASE)
VARIABLE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
MAX_NAME_CHARS = 100


def read_outbound(reader: Problems, data: Mapping[str, Any],
                  greeting: str | None) -> dict[str, Any]:
    """``{"outbound": OutboundSpec | None}``; ``greeting`` is the persona's own (normalised)."""
    if "outbound" not in data:
        return {"outbound": None}
    table = data["outbound"]
    if not isinstance(table, Mapping):
        reader.problem("outbound", "must be a table")
        return {"outbound": None}
    for key in table:
        if key not in OUTBOUND_FIELDS:
            reader.problem(f"outbound.{key}", "unknown field (greeting or on_behalf_of)")
    name = _text(reader, table, "on_behalf_of")
    if "on_behalf_of" not in table:
        reader.problem("outbound.on_behalf_of", "missing: say who the calls are made for")
    elif name is not None and len(name) > MAX_NAME_CHARS:
        reader.problem("outbound.on_behalf_of", f"must be at most {MAX_NAME_CHARS} characters")
    own = _text(reader, table, "greeting")
    said = own or greeting
    if name and said:
        _check_disclosure(reader, "outbound.greeting" if own else "greeting", said, name,
                          data.get("variables"))
    return {"outbound": OutboundSpec(on_behalf_of=name or "", greeting=own)}


def _text(reader: Problems, table: Mapping[str, Any], key: str) -> str | None:
    """A spoken text of the table, on one line (None if absent or not usable)."""
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        reader.problem(f"outbound.{key}", "must be text")
        return None
    return " ".join(value.split())


def _check_disclosure(reader: Problems, field: str, greeting: str, name: str,
                      variables: Any) -> None:
    defaults = variables if isinstance(variables, Mapping) else {}
    if not AI_DISCLOSURE.search(_filled(greeting, defaults)):
        reader.problem(field, 'on an outbound call it must say the agent is an AI ("AI", '
                              '"artificial intelligence", "automated" or "virtual assistant")')
    # Either as written ({{business_name}} in both) or with the file's defaults filled in.
    if name.lower() not in greeting.lower() and \
            _filled(name, defaults).lower() not in _filled(greeting, defaults).lower():
        reader.problem(field, f"on an outbound call it must name who the call is for "
                              f"(outbound.on_behalf_of: {name!r})")


def _filled(text: str, defaults: Mapping[str, Any]) -> str:
    """``text`` with each ``{{variable}}`` the file gives a default for filled in."""
    return VARIABLE.sub(lambda m: str(defaults.get(m.group(1), m.group(0))), text)
