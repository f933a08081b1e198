"""A persona's ``[analysis]``: what the service asks its LLM about each call once it has ended
(calls/analysis.py). Every persona has one; a file without the table gets the defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from personas.model import AnalysisSpec
from personas.reader import Problems
from personas.verdicts import kept_by_json

ANALYSIS_FIELDS = ("summary", "success", "schema")
DEFAULT_SUMMARY = "Two sentences: why the caller called, and what happens next."
DEFAULT_SUCCESS = "The caller's request was handled, or passed to a person who can handle it."
MAX_TEXT_CHARS = 2000


def read_analysis(reader: Problems, data: Mapping[str, Any]) -> dict[str, Any]:
    table = data.get("analysis", {})
    if not isinstance(table, Mapping):
        reader.problem("analysis", "must be a table")
        return {"analysis": AnalysisSpec(DEFAULT_SUMMARY, DEFAULT_SUCCESS, _empty())}
    for key in table:
        if key not in ANALYSIS_FIELDS:
            reader.problem(f"analysis.{key}", "unknown field (summary, success or schema)")
    texts = {}
    for key, default in (("summary", DEFAULT_SUMMARY), ("success", DEFAULT_SUCCESS)):
        value = table.get(key, default)
        if not isinstance(value, str) or not value.strip():
            reader.problem(f"analysis.{key}", "must be text")
            value = default
        elif len(value) > MAX_TEXT_CHARS:
            reader.problem(f"analysis.{key}", f"must be at most {MAX_TEXT_CHARS} characters")
        texts[key] = " ".join(value.split())
    schema = table.get("schema", _empty())
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        reader.problem("analysis.schema", 'must be a JSON Schema with type = "object"')
        schema = _empty()
    elif (error := _schema_error(schema)) is not None:
        reader.problem("analysis.schema", f"is not a valid JSON Schema: {error}")
        schema = _empty()
    return {"analysis": AnalysisSpec(texts["summary"], texts["success"], dict(schema))}


@kept_by_json(maxsize=64)
def _schema_error(schema: Mapping[str, Any]) -> str | None:
    """Why ``schema`` is not a JSON Schema, or None."""
    try:
        Draft202012Validator.check_schema(dict(schema))
    except SchemaError as exc:
        return exc.message
    return None


def _empty() -> dict[str, Any]:
    return {"type": "object", "properties": {}}
