"""Vendor checks: a persona's join properties against ConvoAI's join schema.

convoai/join_schema.json is the one list of vendors and of the parameters each needs; this
module validates the body a persona would produce and says, for each schema error, which field
of the persona file to fix. Messages never echo a value (the body checked here carries
stand-ins for keys, and any key written into the file is masked first).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from convoai.payload import (
    is_secret_field,
    persona_properties,
    redact_properties,
    template_variables,
)
from personas.model import Persona
from personas.verdicts import kept_by_json

#: llm.vendor values ConvoAI documents (reference section 3.5); the schema leaves it open.
LLM_VENDORS = ("openai", "azure", "xai", "custom")

_REQUIRED = re.compile(r"^'(?P<name>.+)' is a required property$")
_KIND = {"tts": "TTS", "asr": "ASR", "llm": "LLM"}


@lru_cache(maxsize=1)
def join_validator() -> Draft202012Validator:
    schema = json.loads(resources.files("convoai").joinpath("join_schema.json")
                        .read_text("utf-8"))
    return Draft202012Validator(schema)


def schema_enum(*path: str) -> list[str]:
    """An enum of the join schema, e.g. ``schema_enum("tts", "properties", "vendor")``."""
    node: Any = join_validator().schema["$defs"]
    for part in path:
        node = node[part]
    return list(node["enum"])


def check_body(persona: Persona) -> dict[str, Any]:
    """The join body the schema sees for ``persona``: the persona's own part, with the call's
    part filled by stand-ins of the right shape."""
    properties = {
        "channel": "persona-check", "token": "check-token", "agent_rtc_uid": "1",
        "remote_rtc_uids": ["2"], "enable_string_uid": False, "idle_timeout": persona.idle_timeout,
        "labels": {**persona.labels, "call_id": "0", "service": "check", "persona": persona.name},
        **persona_properties(persona, template_variables(persona)),
    }
    return {"name": "persona-check", "properties": redact_properties(properties)}


def schema_problems(persona: Persona, field_of: Callable[[list[Any]], str]) -> list[
        tuple[str, str]]:
    """Each schema error for ``persona`` as (persona file field, message), without repeats."""
    out: dict[tuple[str, str], None] = {}
    for error in _join_errors(check_body(persona)):
        path = list(error.absolute_path)[1:]  # drop the leading "properties"
        for field, message in _describe(error, path, persona, field_of):
            out[(field, message)] = None
    return list(out)


@kept_by_json(maxsize=256)
def _join_errors(body: dict[str, Any]) -> tuple[ValidationError, ...]:
    """The join schema's errors for ``body``. Bodies carry the minute's date and time as
    stand-ins, so the verdicts kept are those of start-up and of tests."""
    return tuple(join_validator().iter_errors(body))


def _describe(error: ValidationError, path: list[Any], persona: Persona,
              field_of: Callable[[list[Any]], str]) -> list[tuple[str, str]]:
    kind, expected = error.validator, error.validator_value
    section = str(path[0]) if path else ""
    if kind == "required":
        match = _REQUIRED.match(error.message)
        names = [match.group("name")] if match else [
            n for n in expected if not isinstance(error.instance, Mapping) or n not in
            error.instance][:1]
        return [(field_of([*path, name]), _missing(section, name, persona)) for name in names]
    if kind in ("anyOf", "oneOf") and error.context and all(
            e.validator == "required" for e in error.context):
        options = sorted({n for e in error.context for n in e.validator_value})
        return [(field_of(path), f"missing: the {_vendor(section, persona)} needs one of "
                                 + ", ".join(options))]
    if kind == "enum":
        if path in (["tts", "vendor"], ["asr", "vendor"]):
            return [(field_of(path), f"unknown {_KIND[section]} vendor {error.instance!r}; "
                                     f"ConvoAI knows {', '.join(map(str, expected))}")]
        if path == ["llm", "style"]:
            return [(field_of(path), f"unknown LLM style {error.instance!r}; ConvoAI knows "
                                     f"{', '.join(map(str, expected))}")]
        return [(field_of(path), "must be one of " + ", ".join(map(str, expected)))]
    words = {
        "type": lambda: "must be " + " or ".join(
            _TYPE_WORDS.get(t, t) for t in (expected if isinstance(expected, list) else
                                            [expected])),
        "const": lambda: f"must be {expected!r}",
        "minimum": lambda: f"must be at least {expected}",
        "maximum": lambda: f"must be at most {expected}",
        "exclusiveMinimum": lambda: f"must be above {expected}",
        "exclusiveMaximum": lambda: f"must be below {expected}",
        "minLength": lambda: "must not be empty" if expected == 1 else
        f"must have at least {expected} characters",
        "maxLength": lambda: f"must have at most {expected} characters",
        "minItems": lambda: f"must have at least {expected} items",
        "maxItems": lambda: f"must have at most {expected} items",
        "pattern": lambda: "is not in the expected form",
    }
    return [(field_of(path), words.get(kind, lambda: f"is not valid ({kind})")())]


_TYPE_WORDS = {"string": "text", "integer": "a whole number", "number": "a number",
               "boolean": "true or false", "object": "a table", "array": "a list"}


def _vendor(section: str, persona: Persona) -> str:
    vendor = {"tts": persona.tts, "asr": persona.asr}.get(section, {}).get("vendor")
    return f"{vendor} {_KIND[section]} vendor" if vendor else "ConvoAI join schema"


def _missing(section: str, name: str, persona: Persona) -> str:
    hint = (f"name the environment variable that holds it in {name}_env"
            if is_secret_field(name) else f"set {name} (or {name}_env to read it from the "
                                              "environment)")
    if section in ("tts", "asr"):
        return f"missing: the {_vendor(section, persona)} requires it; {hint}"
    return "missing: ConvoAI requires it"
