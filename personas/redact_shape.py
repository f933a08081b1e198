"""What a persona removes from its calls' data before it is stored: ``redact`` and
``[redact_patterns]``.

:func:`read_redaction` checks both into a :class:`~personas.reader.Problems`, collecting every
problem, and builds the persona's :class:`~privacy.redaction.Redactor`: the built-in kinds it
lists (all of them when the file does not say) and its own patterns, each compiled here so a
bad one is a problem when the persona loads, not during a call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from personas.reader import Problems
from privacy.redaction import KINDS, Redactor

#: A custom pattern's name, which is also its placeholder: ``member_id`` -> ``[member_id]``.
PATTERN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_PATTERNS = 20
MAX_PATTERN_CHARS = 500


def read_redaction(reader: Problems, data: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's ``redaction``: a Redactor (the default one when the file is wrong)."""
    kinds = _kinds(reader, data.get("redact", list(KINDS)))
    patterns = _patterns(reader, data.get("redact_patterns", {}))
    return {"redaction": Redactor(kinds=kinds, patterns=patterns)}


def _kinds(reader: Problems, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        reader.problem("redact", f"must be a list of kinds ({', '.join(KINDS)})")
        return KINDS
    kinds: list[str] = []
    for kind in value:
        if kind not in KINDS:
            reader.problem("redact", f"unknown kind {kind!r} (one of {', '.join(KINDS)}; "
                                     "your own go under [redact_patterns])")
        elif kind in kinds:
            reader.problem("redact", f"{kind!r} is listed twice")
        else:
            kinds.append(kind)
    return tuple(kinds)


def _patterns(reader: Problems, value: Any) -> tuple[tuple[str, re.Pattern[str]], ...]:
    if not isinstance(value, dict):
        reader.problem("redact_patterns", "must be a table of name = \"regular expression\"")
        return ()
    if len(value) > MAX_PATTERNS:
        reader.problem("redact_patterns", f"at most {MAX_PATTERNS} patterns")
    patterns = []
    for name, source in value.items():
        field = f"redact_patterns.{name}"
        if not PATTERN_NAME.match(name):
            reader.problem(field, "the name must be lowercase letters, digits and _, starting "
                                  "with a letter (it becomes the placeholder [name])")
            continue
        if name in KINDS:
            reader.problem(field, f"{name} is a built-in kind: list it in redact instead")
            continue
        if not isinstance(source, str) or not source or len(source) > MAX_PATTERN_CHARS:
            reader.problem(field, f"must be a regular expression of 1 to {MAX_PATTERN_CHARS} "
                                  "characters")
            continue
        try:
            pattern = re.compile(source)
        except re.error as exc:
            reader.problem(field, f"not a valid regular expression ({exc})")
            continue
        if pattern.fullmatch(""):
            reader.problem(field, "matches the empty text, so it would match everywhere")
            continue
        patterns.append((name, pattern))
    return tuple(patterns)
