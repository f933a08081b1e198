"""The first check of a persona file: its shape, read into a normalised spec.

Known fields, types and ranges, no key written in the file, every ``{{variable}}`` defined.
:class:`Reader` collects every problem it finds rather than stopping at the first; the spec it
returns still holds the ``*_env`` fields, which personas/loader.py replaces by their values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from convoai.payload import CALL_VARIABLES, OPTIONAL_CALL_VARIABLES, is_secret_field
from personas.analysis_shape import read_analysis
from personas.booking_shape import read_booking
from personas.cost_shape import read_cost
from personas.knowledge_shape import read_knowledge
from personas.outbound_shape import read_outbound
from personas.reader import Problems
from personas.redact_shape import read_redaction
from personas.routing import NAME, NAME_RULE
from personas.tools_shape import read_tools
from personas.vendors import LLM_VENDORS

VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_LABELS = ("call_id", "service", "persona")

TOP_FIELDS = ("name", "description", "prompt", "greeting", "failure_message",
              "silence_reminder", "silence_timeout_s", "idle_timeout", "max_call_s", "goodbye",
              "opt_out", "builtin_tools", "transfer", "tools", "analysis", "redact",
              "redact_patterns", "cost", "knowledge", "booking", "outbound",
              "variables", "labels", "llm", "tts", "asr", "turn_detection", "interruption")
REQUIRED = ("name", "description", "prompt", "greeting", "failure_message", "llm", "tts")
LLM_FIELDS = ("style", "vendor", "url", "api_key_env", "model", "max_history", "params",
              "headers")
TTS_FIELDS = ("vendor", "params", "url", "headers", "skip_patterns", "credential_mode")
ASR_FIELDS = ("vendor", "language", "params", "keywords", "credential_mode")

#: Spoken when a call reaches the persona's max_call_s, before the agent leaves.
DEFAULT_GOODBYE = ("We have reached the time limit for this call. Thank you for calling, "
                   "and goodbye.")

#: (low, high, default) for the whole-number fields.
RANGES = {
    "silence_timeout_s": (1, 60, 10),
    "idle_timeout": (0, 259_200, 30),
    "max_call_s": (10, 86_400, 1800),  # a call's token lasts at most 24 hours
    "llm.max_history": (1, 1000, 32),
}



class Reader(Problems):
    """Checks a file's shape and normalises it, collecting every problem on the way."""

    def __init__(self, source: str, base: Path | None = None) -> None:
        super().__init__(source, base)
        #: join body path (``tts.params.key``) -> file field (``tts.params.key_env``)
        self.env_fields: dict[str, str] = {}

    # -- the file ------------------------------------------------------------------------------

    def read(self, data: Mapping[str, Any], stem: str) -> dict[str, Any]:
        for key in data:
            if key not in TOP_FIELDS:
                self.problem(key, "unknown field (docs/personas.md lists the fields)")
        for key in REQUIRED:
            if key not in data:
                self.problem(key, "missing")
        spec: dict[str, Any] = {}
        name = self.text(data, "name")
        if name is not None:
            if not NAME.match(name):
                self.problem("name", f"must be {NAME_RULE}")
            elif name != stem:
                self.problem("name", f"must match the file's name ({name}.toml holds "
                                     f"persona {name!r})")
        spec["name"] = name
        spec["description"] = self.text(data, "description", spoken=True)
        spec["prompt"] = self.text(data, "prompt", prompt=True)
        spec["greeting"] = self.text(data, "greeting", spoken=True)
        spec["failure_message"] = self.text(data, "failure_message", spoken=True)
        spec["silence_reminder"] = self.text(data, "silence_reminder", spoken=True,
                                             allow_empty=True) or ""
        for key in ("silence_timeout_s", "idle_timeout", "max_call_s"):
            spec[key] = self.number(data, key, key)
        spec["goodbye"] = self.text(data, "goodbye", spoken=True, allow_empty=True) \
            or DEFAULT_GOODBYE
        if VARIABLE.search(spec["goodbye"]):
            # Spoken through the speak endpoint, which fills in no template variables.
            self.problem("goodbye", "cannot use {{variables}}")
        spec["opt_out"] = self.flag(data, "opt_out", default=False)
        spec["variables"] = self.strings(data, "variables", "variables")
        spec["labels"] = self.strings(data, "labels", "labels")
        self.check_variables(spec["variables"])
        self.check_labels(spec["labels"])
        spec["llm"] = self.llm(data.get("llm"))
        spec["tts"] = self.vendor_section(data.get("tts"), "tts", TTS_FIELDS)
        asr = data.get("asr", {"vendor": "ares"})
        spec["asr"] = self.vendor_section(asr, "asr", ASR_FIELDS)
        if isinstance(spec["asr"], dict):
            spec["asr"].setdefault("vendor", "ares")
            spec["asr"].setdefault("language", "en-US")
        for key in ("turn_detection", "interruption"):
            spec[key] = self.table(data, key) if key in data else None
        spec.update(read_tools(self, data))
        spec.update(read_analysis(self, data))
        spec.update(read_redaction(self, data))
        spec["cost"] = read_cost(self, data)
        spec.update(read_knowledge(self, data))
        spec.update(booking=read_booking(self, data))
        spec.update(read_outbound(self, data, spec["greeting"]))
        self.check_placeholders(spec)
        return spec

    # -- fields ------------------------------------------------------------------------------

    def text(self, data: Mapping[str, Any], key: str, *, spoken: bool = False,
             prompt: bool = False, allow_empty: bool = False) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(key, "must be text")
            return None
        if prompt:
            # Line breaks inside a paragraph are layout; a blank line starts a new paragraph.
            paragraphs = re.split(r"\n\s*\n", value.strip())
            value = "\n\n".join(" ".join(p.split()) for p in paragraphs)
        elif spoken:
            value = " ".join(value.split())
        if not value and not allow_empty:
            self.problem(key, "must not be empty")
        return value

    def number(self, data: Mapping[str, Any], key: str, field: str) -> int:
        low, high, default = RANGES[field]
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(field, "must be a whole number")
            return default
        if not low <= value <= high:
            self.problem(field, f"must be between {low} and {high}")
        return value

    def flag(self, data: Mapping[str, Any], key: str, *, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return default
        return value

    def table(self, data: Mapping[str, Any], key: str, field: str | None = None) -> dict[
            str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.problem(field or key, "must be a table")
            return {}
        return dict(value)

    def strings(self, data: Mapping[str, Any], key: str, field: str) -> dict[str, str]:
        table = self.table(data, key, field)
        for name, value in table.items():
            if not isinstance(value, str):
                self.problem(f"{field}.{name}", "must be text")
        return {k: v for k, v in table.items() if isinstance(v, str)}

    def check_variables(self, variables: Mapping[str, str]) -> None:
        for name, value in variables.items():
            if not VARIABLE_NAME.match(name):
                self.problem(f"variables.{name}", "a variable name is letters, digits and '_'")
            elif name in CALL_VARIABLES:
                self.problem(f"variables.{name}", "is set by the service on every call")
            if "{{" in value:
                self.problem(f"variables.{name}", "a value cannot use other variables")

    def check_labels(self, labels: Mapping[str, str]) -> None:
        for name in labels:
            if name in RESERVED_LABELS:
                self.problem(f"labels.{name}", "is set by the service on every agent")

    def check_placeholders(self, spec: Mapping[str, Any]) -> None:
        """Every {{variable}} the caller could hear, or the model read, must have a value:
        ConvoAI leaves an unknown one as it is, braces and all."""
        defined = set(spec["variables"]) | set(CALL_VARIABLES)
        outbound = spec.get("outbound")
        texts = {field: spec.get(field) for field in ("prompt", "greeting", "failure_message",
                                                        "silence_reminder")}
        if outbound is not None:
            texts.update({"outbound.greeting": outbound.greeting,
                          "outbound.on_behalf_of": outbound.on_behalf_of})
        for field, text in texts.items():
            for name in VARIABLE.findall(text or ""):
                if name in defined:
                    continue
                hint = (f"; {name} is set only when the number is known, so give it a "
                        "default under [variables], such as \"not known\""
                        if name in OPTIONAL_CALL_VARIABLES else
                        "; give it a default under [variables]")
                self.problem(field, f"uses {{{{{name}}}}}, which has no value{hint}")

    # -- vendor sections -----------------------------------------------------------------------

    def llm(self, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem("llm", "must be a table")
            return {}
        for key in value:
            if key == "api_key":
                self.problem("llm.api_key", "a key must not be written in the file; name the "
                                            "environment variable that holds it in "
                                            "llm.api_key_env")
            elif key not in LLM_FIELDS:
                self.problem(f"llm.{key}", "unknown field (docs/personas.md lists the fields)")
        out: dict[str, Any] = {}
        for key in ("style", "vendor", "url", "api_key_env", "model"):
            if key in value and not isinstance(value[key], str):
                self.problem(f"llm.{key}", "must be text")
            elif key in value:
                out[key] = value[key].strip()
        out.setdefault("style", "openai")
        url = out.get("url")
        if url is None:
            self.problem("llm.url", "missing")
        elif urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            self.problem("llm.url", "must be an http(s) URL")
        if "vendor" in out and out["vendor"] not in LLM_VENDORS:
            self.problem("llm.vendor", f"unknown LLM vendor {out['vendor']!r}; ConvoAI knows "
                                       f"{', '.join(LLM_VENDORS)} (or leave it out)")
        if "api_key_env" in out:
            self.env_name("llm.api_key_env", out["api_key_env"])
            self.env_fields["llm.api_key"] = "llm.api_key_env"
        out["max_history"] = self.number(value, "max_history", "llm.max_history")
        out["params"] = self.table(value, "params", "llm.params")
        if "model" in out["params"]:
            self.problem("llm.params.model", "set the model in llm.model")
        self.no_literal_keys(out["params"], "llm.params")
        headers = self.table(value, "headers", "llm.headers")
        out["headers"] = self.env_walk(headers, "llm.headers")
        return out

    def vendor_section(self, value: Any, field: str, known: tuple[str, ...]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(field, "must be a table")
            return {}
        for key in value:
            if key not in known and not (key.endswith("_env") and key[:-4] in known):
                self.problem(f"{field}.{key}", "unknown field (docs/personas.md lists the "
                                               "fields)")
        if "vendor" in value and not isinstance(value["vendor"], str):
            self.problem(f"{field}.vendor", "must be text")
        elif field == "tts" and "vendor" not in value:
            self.problem("tts.vendor", "missing")
        if "params" in value and not isinstance(value["params"], dict):
            self.problem(f"{field}.params", "must be a table")
            return {}
        return self.env_walk(dict(value), field)

    def env_walk(self, table: Mapping[str, Any], field: str) -> dict[str, Any]:
        """Check a table's ``*_env`` fields and literal keys, recursively; the result keeps
        the ``*_env`` fields, which the loader's _build replaces by their values."""
        out: dict[str, Any] = {}
        for key, value in table.items():
            where = f"{field}.{key}"
            if isinstance(value, dict):
                out[key] = self.env_walk(value, where)
                continue
            if key.endswith("_env"):
                target = key[:-4]
                if target in table:
                    self.problem(where, f"set either {target} or {key}, not both")
                if isinstance(value, str):
                    self.env_name(where, value)
                else:
                    self.problem(where, "must be the name of an environment variable")
                self.env_fields[f"{field}.{target}"] = where
            elif is_secret_field(key) and isinstance(value, str):
                self.problem(where, "a key must not be written in the file; name the "
                                    f"environment variable that holds it in {key}_env")
            out[key] = value
        return out

    def no_literal_keys(self, table: Mapping[str, Any], field: str) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                self.no_literal_keys(value, f"{field}.{key}")
            elif is_secret_field(key) and isinstance(value, str):
                self.problem(f"{field}.{key}", "a key must not be written in the file")

    # -- schema paths back to file fields ------------------------------------------------------

    def field_of(self, path: list[Any]) -> str:
        """The file field behind a join body path (``["llm", "params", "model"]`` ->
        ``llm.model``)."""
        dotted = ".".join(str(p) for p in path)
        if dotted in self.env_fields:
            return self.env_fields[dotted]
        head, rest = (str(path[0]), [str(p) for p in path[1:]]) if path else ("", [])
        if head == "llm" and rest:
            simple = {"system_messages": "prompt", "greeting_message": "greeting",
                      "failure_message": "failure_message", "api_key": "llm.api_key_env"}
            if rest[0] in simple:
                return simple[rest[0]]
            if rest[0] == "template_variables":
                return ".".join(["variables", *rest[1:]])
            if rest[:2] == ["params", "model"]:
                return "llm.model"
        if head == "parameters" and rest:
            if rest[0] == "opt_out":
                return "opt_out"
            if rest[0] == "silence_config":
                return "silence_timeout_s" if rest[1:] == ["timeout_ms"] else "silence_reminder"
        return dotted or "(file)"
