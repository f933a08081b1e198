"""Reading one persona file (TOML) into a Persona, or into the problems that stop it.

A file is checked in three steps: its shape (known fields, types, ranges, no key written in
the file, every ``{{variable}}`` defined), then the join body it would produce against
ConvoAI's join schema (vendors and their required parameters), then its ``*_env`` fields are
read. Whether a missing key is a problem depends on the mode and on whether the persona is in
use, so that is left to the caller (personas/registry.py); everything else is a problem here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from config import SANDBOX_URL
from personas.booking_shape import with_password
from personas.model import EnvRef, Persona
from personas.reader import Problem
from personas.shape import Reader
from personas.tools_shape import resolve_tools
from personas.vendors import schema_problems

BUILTIN_DIR = Path(__file__).resolve().parent
ROOT = BUILTIN_DIR.parent

#: Reads an environment variable for a ``*_env`` field: (value, "set" | "placeholder" | "missing").
Resolver = Callable[[str], tuple[str, str]]


def display_path(path: Path) -> str:
    """``personas/support.toml`` for files in the repository, the full path otherwise."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def load_file(path: Path, *, builtin: bool, resolve: Resolver,
              sandbox_url: str = SANDBOX_URL) -> tuple[Persona | None, list[Problem]]:
    """The persona in ``path``, or None and every problem found in it. ``sandbox_url`` is the
    sandbox's address, which serves operator tools whose ``url_env`` is unset in sandbox mode."""
    source = display_path(path)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        return None, [Problem(source, "file", f"cannot be read ({exc.strerror})")]
    except UnicodeDecodeError:
        return None, [Problem(source, "file", "is not UTF-8 text")]
    except tomllib.TOMLDecodeError as exc:
        return None, [Problem(source, "toml", f"not valid TOML: {exc}")]
    return parse(data, source=source, stem=path.stem, builtin=builtin, resolve=resolve,
                 sandbox_url=sandbox_url, base=path.resolve().parent)


def parse(data: Mapping[str, Any], *, source: str, stem: str, builtin: bool,
          resolve: Resolver, sandbox_url: str = SANDBOX_URL,
          base: Path | None = None) -> tuple[Persona | None, list[Problem]]:
    """A persona from the parsed TOML ``data`` of the file ``source`` (named ``stem``.toml),
    whose relative paths start from ``base`` (the file's folder)."""
    reader = Reader(source, base)
    spec = reader.read(data, stem)
    problems = list(reader.problems)
    # Check the vendors with stand-ins for keys, so a key that is not set (a question of mode)
    # never hides or causes a vendor problem. Done even when the file has other problems, so
    # that one run lists them all; a spec too broken to build is left to those problems.
    try:
        checked, _ = _build(spec, source, builtin, lambda var: (f"{var}-value", "set"),
                            sandbox_url)
    except (KeyError, TypeError, ValueError, AttributeError):
        checked = None
    if checked is not None:
        seen = {p.field for p in problems}
        problems += [Problem(source, field, message) for field, message in
                     schema_problems(checked, reader.field_of) if field not in seen]
    # Values read from the environment that are set but unusable (a tool's secret that is not
    # whsec_...): a problem in every mode, reported with the file's other problems.
    try:
        persona, value_problems = _build(spec, source, builtin, resolve, sandbox_url)
    except (KeyError, TypeError, ValueError, AttributeError):
        persona, value_problems = None, []
    problems += value_problems
    if problems or persona is None:
        return None, problems
    return persona, []




def _build(spec: Mapping[str, Any], source: str, builtin: bool, resolve: Resolver,
           sandbox_url: str) -> tuple[Persona, list[Problem]]:
    """The Persona, with every ``*_env`` field replaced by what ``resolve`` reads, and the
    problems with values read that are set but unusable."""
    refs: list[EnvRef] = []
    values: list[str] = []

    def read_status(field: str, var: str) -> tuple[str, str]:
        value, status = resolve(var)
        refs.append(EnvRef(field, var, status))
        if value:
            values.append(value)
        return value, status

    def read(field: str, var: str) -> str:
        return read_status(field, var)[0]

    def fill(table: Mapping[str, Any], field: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in table.items():
            if isinstance(value, dict):
                out[key] = fill(value, f"{field}.{key}")
            elif key.endswith("_env"):
                out[key[:-4]] = read(f"{field}.{key}", value)
            else:
                out[key] = value
        return out

    llm = dict(spec["llm"])
    env_var = llm.pop("api_key_env", None)
    llm["api_key"] = read("llm.api_key_env", env_var) if env_var else None
    llm["headers"] = fill(llm.get("headers", {}), "llm.headers")
    tools, tool_problems = resolve_tools(spec["tools"], read_status, sandbox_url)
    values += [tool.secret for tool in tools if tool.secret]  # the sandbox's, when it stood in
    booking = with_password(spec["booking"], read)  # read before secrets= below is built
    persona = Persona(
        name=spec["name"], description=spec["description"], source=source, builtin=builtin,
        prompt=spec["prompt"], greeting=spec["greeting"],
        failure_message=spec["failure_message"], silence_reminder=spec["silence_reminder"],
        silence_timeout_s=spec["silence_timeout_s"], llm=llm,
        tts=fill(spec["tts"], "tts"), asr=fill(spec["asr"], "asr"),
        turn_detection=spec["turn_detection"], interruption=spec["interruption"],
        idle_timeout=spec["idle_timeout"], max_call_s=spec["max_call_s"],
        goodbye=spec["goodbye"], variables=spec["variables"], labels=spec["labels"],
        opt_out=spec["opt_out"], builtin_tools=spec["builtin_tools"],
        transfer_destinations=spec["transfer_destinations"], tools=tools,
        analysis=spec["analysis"], env=tuple(refs), secrets=tuple(dict.fromkeys(values)),
        redaction=spec["redaction"], cost=spec["cost"], knowledge=spec["knowledge"],
        booking=booking, outbound=spec["outbound"],
    )
    return persona, [Problem(source, field, message, kind="key")
                     for field, message in tool_problems]
