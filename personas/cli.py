"""``flask personas list | check | show NAME [--json]``: the personas from the shell."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from config import Settings
from convoai.payload import build_join_properties, redact_properties
from personas.booking_shape import hours_text
from personas.model import Persona
from personas.registry import Registry, inspect_personas, load_registry
from personas.reminder_shape import reminders_text

#: The call id `show --json` labels its example body with.
EXAMPLE_CALL_ID = "0123456789abcdef"


def init_app(app: Flask) -> None:
    """Register the ``personas`` command group."""
    app.cli.add_command(personas_group)


def _settings() -> Settings:
    return current_app.extensions["settings"]


def _registry() -> Registry:
    registry = current_app.extensions.get("personas")
    return registry if isinstance(registry, Registry) else load_registry(_settings())


personas_group = AppGroup("personas", help="The agent personas: list them, check them, show the "
                                           "join body one would send.")


@personas_group.command("list")
def list_command() -> None:
    """One line per persona: name, where it comes from, its vendors, and how calls reach it."""
    registry = _registry()
    width = max(len(name) for name in registry.names())
    for persona in registry:
        reach = []
        if persona.name == registry.default:
            reach.append("default")
        reach += [f"channels {r.pattern}" for r in registry.routes if r.persona == persona.name]
        origin = "built-in" if persona.builtin else persona.source
        click.echo(f"{persona.name:<{width}}  {_vendors(persona)}  ({origin})"
                   + (f"  [{', '.join(reach)}]" if reach else ""))
        click.echo(f"{'':<{width}}  {persona.description}")


@personas_group.command("check")
def check_command() -> None:
    """Check every persona file; print `file: field: problem` lines and exit 1 if any."""
    lines, ok = check_report(_settings())
    for line in lines:
        click.echo(line)
    if not ok:
        raise SystemExit(1)


def check_report(settings: Settings) -> tuple[list[str], bool]:
    """What `personas check` prints, and whether every persona is usable."""
    inspection = inspect_personas(settings, strict=True)
    if inspection.problems:
        return list(inspection.problems), False
    placeholders = sorted({ref.var for p in inspection.personas.values() for ref in p.env
                           if ref.status == "placeholder"})
    lines = [f"{len(inspection.personas)} personas OK ({settings.mode} mode)"]
    if placeholders:
        lines.append("sandbox placeholders stand in for: " + ", ".join(placeholders))
    return lines, True


@personas_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True,
              help="Print the exact join properties, with every secret replaced by ***.")
@click.option("--channel", default="example-channel", show_default=True,
              help="Channel name to build the body for.")
@click.option("--call-id", default=EXAMPLE_CALL_ID, show_default=True,
              help="Call id for the labels.")
@click.option("--caller", "caller_number", default=None, help="Caller's number, if known.")
@click.option("--called", "called_number", default=None, help="Number dialled, if known.")
@click.option("--direction", type=click.Choice(["inbound", "outbound"]), default="inbound",
              show_default=True, help="The call's direction (outbound: the [outbound] greeting).")
def show_command(name: str, as_json: bool, channel: str, call_id: str, caller_number: str | None,
                 called_number: str | None, direction: str) -> None:
    """One persona: its settings, or (--json) the join properties the service would send."""
    registry = _registry()
    if name not in registry:
        raise click.ClickException(f"no persona named {name!r} (known: "
                                   f"{', '.join(registry.names())})")
    persona = registry.get(name)
    if not as_json:
        _describe(persona, registry)
        return
    settings = _settings()
    variables = {"caller_number": caller_number or "", "called_number": called_number or ""}
    properties = build_join_properties(settings, persona, call_id=call_id,
                                       channel=channel, variables=variables,
                                       direction=direction)
    masked = redact_properties(properties, [*persona.secret_values(),
                                            *settings.secret_values()])
    click.echo(json.dumps(masked, indent=2, ensure_ascii=False))


def _vendors(persona: Persona) -> str:
    llm = persona.llm.get("model") or persona.llm.get("style")
    return f"llm {llm}, tts {persona.tts.get('vendor')}, asr {persona.asr.get('vendor')}"


def _describe(persona: Persona, registry: Registry) -> None:
    rows = [
        ("persona", persona.name),
        ("file", persona.source + (" (built-in)" if persona.builtin else "")),
        ("about", persona.description),
        ("greeting", persona.greeting),
        ("vendors", _vendors(persona)),
        ("llm url", persona.llm.get("url", "")),
        ("idle timeout", f"{persona.idle_timeout} s"),
        ("longest call", f"{persona.max_call_s} s"),
        ("opt out", "yes: Agora keeps no text or audio of the session" if persona.opt_out
         else "no"),
    ]
    if persona.outbound is not None:
        rows.append(("outbound", f"on behalf of {persona.outbound.on_behalf_of}: "
                                 f"{persona.greeting_for('outbound')}"))
    if persona.silence_reminder:
        rows.append(("silence", f"after {persona.silence_timeout_s} s: "
                                f"{persona.silence_reminder}"))
    for key, value in sorted(persona.variables.items()):
        rows.append((f"var {key}", value))
    if persona.tool_names:
        rows.append(("tools", ", ".join(persona.tool_names)))
    for key, target in persona.transfer_destinations.items():
        rows.append((f"transfer {key}", target))
    for tool in persona.tools:
        effects = "side effects: exactly once" if tool.side_effects else "no side effects"
        rows.append((f"tool {tool.name}", f"{tool.url} ({effects}, {tool.timeout_s:g} s)"))
    if persona.knowledge is not None:
        rows.append(("knowledge", persona.knowledge.folder))
    if persona.booking is not None:
        diary = persona.booking
        rows.append(("booking", f"{diary.backend} diary in {diary.timezone}: " + ", ".join(
            f"{name} {minutes} min" for name, minutes in diary.services.items())
            + f"; buffer {diary.buffer_minutes} min, up to {diary.max_days_ahead} days ahead"))
        rows.append(("hours", hours_text(diary) + (
            f"; closed {', '.join(sorted(d.isoformat() for d in diary.closed))}"
            if diary.closed else "")))
        if diary.reminders is not None:
            rows.append(("reminders", reminders_text(diary.reminders, persona.name)))
    for ref in persona.env:
        state = {"set": "set", "placeholder": "sandbox placeholder",
                 "missing": "NOT SET"}[ref.status]
        rows.append((ref.field, f"{ref.var} ({state})"))
    routes = [r.pattern for r in registry.routes if r.persona == persona.name]
    if routes:
        rows.append(("channels", ", ".join(routes)))
    if persona.name == registry.default:
        rows.append(("default", "yes"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")
