"""Validate ConvoAI request bodies and turn the first problem into Agora's 400 answer.

Join bodies are checked against convoai/join_schema.json. The ``detail`` names the field by its
dotted path and never echoes the submitted value (it may be a secret).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from sandbox.errors import AgoraError

_TYPE_WORDS = {"string": "string", "integer": "integer", "number": "number",
               "boolean": "boolean", "object": "object", "array": "list"}


@lru_cache(maxsize=1)
def join_validator() -> Draft202012Validator:
    """The compiled join schema (loaded once; the file ships inside the convoai package)."""
    text = resources.files("convoai").joinpath("join_schema.json").read_text("utf-8")
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def field_path(parts: Any) -> str:
    """``["properties", "remote_rtc_uids", 0]`` -> ``properties.remote_rtc_uids[0]``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: ValidationError) -> tuple[str, str, str]:
    """(reason, field path, message) for one jsonschema error, pydantic-style wording."""
    path = list(error.absolute_path)
    kind, expected = error.validator, error.validator_value
    if kind == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        missing = next((name for name in expected if name not in instance), expected[0])
        return "MissingRequiredField", field_path([*path, missing]), "Field required"
    if kind == "type":
        names = expected if isinstance(expected, list) else [expected]
        words = " or ".join(_TYPE_WORDS.get(name, name) for name in names)
        return "InvalidFieldValue", field_path(path), f"Input should be a valid {words}"
    messages = {
        "enum": lambda: "Input should be one of: " + ", ".join(map(str, expected)),
        "const": lambda: f"Input should be {expected!r}",
        "pattern": lambda: f"String should match pattern '{expected}'",
        "minLength": lambda: f"String should have at least {expected} characters",
        "maxLength": lambda: f"String should have at most {expected} characters",
        "minItems": lambda: f"List should have at least {expected} items",
        "maxItems": lambda: f"List should have at most {expected} items",
        "minimum": lambda: f"Input should be greater than or equal to {expected}",
        "maximum": lambda: f"Input should be less than or equal to {expected}",
        "exclusiveMinimum": lambda: f"Input should be greater than {expected}",
        "exclusiveMaximum": lambda: f"Input should be less than {expected}",
    }
    message = messages.get(kind, lambda: f"Input is not valid ({kind})")()
    return "InvalidFieldValue", field_path(path), message


def schema_error(body: Any, validator: Draft202012Validator | None = None) -> AgoraError | None:
    """The 400 Agora would answer for ``body``, or None when it is acceptable."""
    error = best_match((validator or join_validator()).iter_errors(body))
    if error is None:
        return None
    reason, path, message = _describe(error)
    return AgoraError(400, reason, f"{path}: {message}" if path else message)


def validate_join(body: Any) -> None:
    """Raise the Agora 400 for a join body the schema rejects."""
    if not isinstance(body, dict):
        raise AgoraError(400, "InvalidRequestBody", "request body must be a JSON object")
    error = schema_error(body)
    if error is not None:
        raise error
