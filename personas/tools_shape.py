"""The tools a persona gives its agent: ``builtin_tools``, ``[transfer.destinations]`` and
``[[tools]]``.

:func:`read_tools` checks their shape into a :class:`~personas.reader.Problems`, collecting every
problem; :func:`resolve_tools` turns the ``[[tools]]`` specs into OperatorTools once the loader
reads their ``url_env`` and ``secret_env`` variables, and checks the values it read.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from config import SANDBOX_SHOP_TOOLS_PATH, SANDBOX_TOOLS_SECRET
from convoai.payload import is_secret_field
from personas.model import BUILTIN_TOOL_NAMES, OperatorTool
from personas.reader import Problems
from sip.numbers import e164

TOOL_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
DESTINATION_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
SIP_URI = re.compile(r"^sip:[A-Za-z0-9._~+-]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
TOOL_FIELDS = ("name", "description", "url", "url_env", "secret_env", "timeout_s",
               "side_effects", "parameters")
MAX_DESCRIPTION_CHARS = 1024
TIMEOUT_S = (1, 30, 5.0)  # low, high, default
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
SECRET_PREFIX = "whsec_"

#: Reads a variable for a field: (value, "set" | "placeholder" | "missing"), and records it.
Read = Callable[[str, str], tuple[str, str]]


def read_tools(reader: Problems, data: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's ``builtin_tools``, ``transfer_destinations`` and ``tools`` (dicts that still
    name their ``url_env`` and ``secret_env``); problems go to ``reader``."""
    builtin = _builtin_tools(reader, data.get("builtin_tools", []))
    destinations, named = _destinations(reader, data.get("transfer"))
    if "transfer_call" in builtin and not named:
        reader.problem("builtin_tools", "transfer_call needs at least one destination under "
                                        "[transfer.destinations]")
    if named and "transfer_call" not in builtin:
        reader.problem("transfer.destinations", "destinations are only used by transfer_call; "
                                                "add it to builtin_tools")
    return {"builtin_tools": builtin, "transfer_destinations": destinations,
            "tools": _operator_tools(reader, data.get("tools", []))}


def _builtin_tools(reader: Problems, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        reader.problem("builtin_tools", "must be a list of tool names")
        return ()
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            reader.problem("builtin_tools", "must be a list of tool names")
        elif item not in BUILTIN_TOOL_NAMES:
            reader.problem("builtin_tools", f"unknown built-in tool {item!r}; the built-ins are "
                                            f"{', '.join(BUILTIN_TOOL_NAMES)}")
        elif item in out:
            reader.problem("builtin_tools", f"{item} is listed twice")
        else:
            out.append(item)
    return tuple(out)


def _destinations(reader: Problems, value: Any) -> tuple[dict[str, str], bool]:
    """The valid destinations, and whether the file names any at all."""
    if value is None:
        return {}, False
    if not isinstance(value, dict):
        reader.problem("transfer", "must be a table")
        return {}, False
    for key in value:
        if key != "destinations":
            reader.problem(f"transfer.{key}", "unknown field (docs/personas.md lists the fields)")
    table = value.get("destinations", {})
    if not isinstance(table, dict):
        reader.problem("transfer.destinations", "must be a table of name = number")
        return {}, False
    out: dict[str, str] = {}
    for name, number in table.items():
        where = f"transfer.destinations.{name}"
        if not DESTINATION_NAME.match(name):
            reader.problem(where, "a destination name is a lower-case letter, then up to 31 "
                                  "lower-case letters, digits, '-' or '_'")
            continue
        target, message = destination(number)
        if target is None:
            reader.problem(where, message)
        else:
            out[name] = target
    return out, bool(table)


def destination(value: Any) -> tuple[str | None, str]:
    """A transfer target as the gateway takes it (``+<digits>`` or ``sip:user@host``), or None
    and why not."""
    rule = "must be a phone number in E.164 (+18005550199) or a SIP URI (sip:desk@pbx.example.com)"
    if not isinstance(value, str):
        return None, rule
    if value.startswith("sip:"):
        return (value, "") if SIP_URI.match(value) else (None, rule)
    if not value.strip().startswith("+"):
        return None, rule
    try:
        return e164(value), ""
    except ValueError as exc:
        return None, str(exc)


def _operator_tools(reader: Problems, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        reader.problem("tools", "must be [[tools]] tables")
        return []
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, entry in enumerate(value, 1):
        name = entry.get("name")
        valid = isinstance(name, str) and bool(TOOL_NAME.match(name))
        label = f"tools.{name}" if valid else f"tools[{number}]"
        tool = _operator_tool(reader, entry, label)
        if name is None:
            reader.problem(f"{label}.name", "missing")
        elif not valid:
            reader.problem(f"{label}.name", "a tool name is 1 to 64 letters, digits or '_'")
        elif name in BUILTIN_TOOL_NAMES:
            reader.problem(f"{label}.name", "is the name of a built-in tool; enable that in "
                                            "builtin_tools, or name this one differently")
        elif name in seen:
            reader.problem(f"{label}.name", "another [[tools]] entry has this name")
        else:
            seen.add(name)
            out.append({"name": name, **tool})
    return out


def _operator_tool(reader: Problems, entry: Mapping[str, Any], label: str) -> dict[str, Any]:
    for key in entry:
        if key not in TOOL_FIELDS:
            reader.problem(f"{label}.{key}",
                           "a key must not be written in the file; name the environment "
                           "variable that holds it in secret_env" if is_secret_field(key) else
                           "unknown field (docs/personas.md lists the fields)")
    tool: dict[str, Any] = {}
    description = entry.get("description")
    if description is None:
        reader.problem(f"{label}.description", "missing")
    elif not isinstance(description, str) or not description.strip():
        reader.problem(f"{label}.description", "must be text, not empty")
    elif len(description.strip()) > MAX_DESCRIPTION_CHARS:
        reader.problem(f"{label}.description", f"must be at most {MAX_DESCRIPTION_CHARS} "
                                               "characters")
    else:
        tool["description"] = " ".join(description.split())
    if ("url" in entry) == ("url_env" in entry):
        reader.problem(f"{label}.url", "set either url or url_env (exactly one)")
    elif "url" in entry:
        message = url_problem(entry["url"])
        if message:
            reader.problem(f"{label}.url", message)
        tool["url"] = entry["url"]
    else:
        tool["url_env"] = _env_field(reader, entry["url_env"], f"{label}.url_env")
    if "secret_env" not in entry:
        reader.problem(f"{label}.secret_env", "missing: name the environment variable that "
                                              "holds the tool's whsec_ signing secret")
    else:
        tool["secret_env"] = _env_field(reader, entry["secret_env"], f"{label}.secret_env")
    low, high, default = TIMEOUT_S
    timeout = entry.get("timeout_s", default)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) \
            or not low <= timeout <= high:
        reader.problem(f"{label}.timeout_s", f"must be a number of seconds from {low} to {high}")
        timeout = default
    tool["timeout_s"] = float(timeout)
    tool["side_effects"] = entry.get("side_effects", False)
    if not isinstance(tool["side_effects"], bool):
        reader.problem(f"{label}.side_effects", "must be true or false")
    tool["parameters"] = _parameters(reader, entry.get("parameters"), f"{label}.parameters")
    return tool


def _env_field(reader: Problems, value: Any, where: str) -> str:
    if not isinstance(value, str):
        reader.problem(where, "must be the name of an environment variable")
        return ""
    reader.env_name(where, value)
    return value


def _parameters(reader: Problems, value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {"type": "object", "properties": {}}
    if not isinstance(value, dict):
        reader.problem(where, "must be a table (a JSON Schema)")
        return {}
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        reader.problem(where, f"not a valid JSON Schema: {exc.message}")
        return value
    if value.get("type") != "object":
        reader.problem(f"{where}.type", 'must be "object": a tool takes named arguments')
    return value


def url_problem(url: Any) -> str | None:
    """Why ``url`` cannot be a tool's endpoint, or None: https, or http to a loopback host."""
    rule = "must be an https URL (http only for localhost, 127.0.0.1 or ::1)"
    if not isinstance(url, str):
        return rule
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return rule
    if not host or parts.scheme not in ("http", "https"):
        return rule
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        return rule
    return None


def secret_problem(value: str) -> str | None:
    """Why ``value`` is not a Standard Webhooks secret (``whsec_`` then base64), or None. The
    message never includes the value."""
    rule = "is not a Standard Webhooks secret (whsec_ followed by base64)"
    if not value.startswith(SECRET_PREFIX):
        return rule
    try:
        raw = base64.b64decode(value[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return rule
    return None if raw else rule


def resolve_tools(specs: list[Mapping[str, Any]], read: Read, sandbox_url: str) -> tuple[
        tuple[OperatorTool, ...], list[tuple[str, str]]]:
    """The OperatorTools, with ``url_env`` and ``secret_env`` read, and (field, message) for
    each value that is set but unusable. In sandbox mode an unset ``url_env`` points at the
    sandbox's demo shop and an unset ``secret_env`` gives the sandbox's tool secret."""
    tools: list[OperatorTool] = []
    problems: list[tuple[str, str]] = []
    for spec in specs:
        label = f"tools.{spec['name']}"
        url = spec.get("url", "")
        if "url_env" in spec:
            url, status = read(f"{label}.url_env", spec["url_env"])
            if status == "placeholder":
                url = f"{sandbox_url.rstrip('/')}{SANDBOX_SHOP_TOOLS_PATH}{spec['name']}"
            elif url and (message := url_problem(url)):
                problems.append((f"{label}.url_env", f"{spec['url_env']} {message}"))
        secret, status = read(f"{label}.secret_env", spec["secret_env"])
        if status == "placeholder":
            secret = SANDBOX_TOOLS_SECRET
        elif secret and (message := secret_problem(secret)):
            problems.append((f"{label}.secret_env", f"{spec['secret_env']} {message}"))
        tools.append(OperatorTool(
            name=spec["name"], description=spec["description"], url=url,
            secret_env=spec["secret_env"], secret=secret, timeout_s=spec["timeout_s"],
            side_effects=spec["side_effects"], parameters=spec["parameters"]))
    return tuple(tools), problems
