"""Every persona the service knows, and which one answers a call.

Built-ins live in personas/*.toml; PERSONAS_DIR adds the user's own, and a user persona with a
built-in's name replaces it. A call's persona is, in order: the persona its number carries (when
the caller passes it), the first PERSONA_ROUTES rule matching its channel, DEFAULT_PERSONA.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from config import ConfigError, Settings
from personas.loader import BUILTIN_DIR, Resolver, load_file
from personas.model import Persona
from personas.reader import Problem
from personas.routing import NAME, Route, match, parse_routes
from settings.agent import user_dir


class UnknownPersona(KeyError):
    """No persona has this name."""

    def __str__(self) -> str:
        return f"no persona named {self.args[0]!r}"


class Registry:
    """The loaded personas and the routing rules; read-only, shared by every request."""

    def __init__(self, personas: Mapping[str, Persona], *, default: str,
                 routes: list[Route] | None = None) -> None:
        self._personas = dict(personas)
        self.default = default
        self.routes = list(routes or [])

    def get(self, name: str) -> Persona:
        try:
            return self._personas[name]
        except KeyError:
            raise UnknownPersona(name) from None

    def names(self) -> list[str]:
        return sorted(self._personas)

    def known(self, name: object) -> str | None:
        """``name`` if a persona has it (None stays None: routing decides), else ValueError.
        The one check of a persona named in a request or a command."""
        if name is not None and (not isinstance(name, str) or name not in self._personas):
            raise ValueError(f"unknown persona {name!r}")
        return name

    def __contains__(self, name: object) -> bool:
        return name in self._personas

    def __iter__(self) -> Iterator[Persona]:
        return iter(self._personas[name] for name in self.names())

    def route(self, channel: str, *, persona: str | None = None) -> Persona:
        """The persona for a call into ``channel``: ``persona`` (the one its number carries)
        when given, else the persona named in a reservation's channel (see
        reservation_channel), else the first matching PERSONA_ROUTES rule, else
        DEFAULT_PERSONA."""
        reserved = reserved_persona(channel)
        if reserved not in self._personas:
            reserved = None
        return self.get(persona or reserved or match(self.routes, channel) or self.default)

    def in_use(self) -> set[str]:
        """The personas calls can reach through the settings alone."""
        return {self.default, *(route.persona for route in self.routes)}

    def secret_values(self) -> list[str]:
        return sorted({s for p in self._personas.values() for s in p.secret_values()})


RESERVATION_PREFIX = "pstn_"


def reservation_channel(persona: str, suffix: str) -> str:
    """The channel of a reserved number and PIN: it names its persona, so the caller's join
    picks the persona with no lookup on the webhook's hot path."""
    return f"{RESERVATION_PREFIX}{persona}_{suffix}"


def reserved_persona(channel: str) -> str | None:
    if not channel.startswith(RESERVATION_PREFIX) or "_" not in channel[len(RESERVATION_PREFIX):]:
        return None
    return channel[len(RESERVATION_PREFIX):].rsplit("_", 1)[0]


@dataclass
class Inspection:
    """What loading every persona file found."""

    personas: dict[str, Persona] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    file_problems: list[Problem] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)  # variable -> value read for a persona
    routes: list[Route] = field(default_factory=list)


def persona_dirs(settings: Settings) -> list[tuple[Path, bool]]:
    """(folder, built-in?) in load order: built-ins first, so the user's own win."""
    dirs = [(BUILTIN_DIR, True)]
    if settings.personas_dir:
        dirs.append((user_dir(settings.personas_dir), False))
    return dirs


def resolver(settings: Settings, env: Mapping[str, str] | None = None) -> Resolver:
    """Reads a ``*_env`` field's variable: a setting of that name (so OPENAI_API_KEY given to
    Settings wins), then ``env``, then the keys read at start-up; in sandbox mode a placeholder
    stands in for a missing one."""
    env = env or {}
    string_fields = {name for name, value in vars(settings).items() if isinstance(value, str)}

    def resolve(var: str) -> tuple[str, str]:
        value = getattr(settings, var.lower(), "") if var.lower() in string_fields else ""
        value = value or (env.get(var) or "").strip() or settings.persona_keys.get(var, "")
        if value:
            placeholder = settings.sandbox and value.startswith("sandbox-")
            return value, "placeholder" if placeholder else "set"
        if settings.sandbox:
            return f"sandbox-{var.lower()}", "placeholder"
        return "", "missing"

    return resolve


def inspect_personas(settings: Settings, env: Mapping[str, str] | None = None, *,
                     strict: bool = False) -> Inspection:
    """Load every persona file and list every problem, formatted ``file: field: problem``.

    Structural problems count for every file in both modes. A key variable that is not set
    counts in production only, and only for the personas in use (DEFAULT_PERSONA and those
    PERSONA_ROUTES names) unless ``strict`` (``flask personas check``: every persona).
    """
    out = Inspection()
    resolve = resolver(settings, env)
    broken: set[str] = set()
    for folder, builtin in persona_dirs(settings):
        if not folder.is_dir():
            continue  # Settings.problems() reports a PERSONAS_DIR that is not a folder
        for path in sorted(folder.glob("*.toml")):
            persona, problems = load_file(path, builtin=builtin, resolve=resolve,
                                          sandbox_url=settings.sandbox_url)
            out.file_problems += problems
            if persona is None:
                broken.add(path.stem)
                out.personas.pop(path.stem, None)
            else:
                broken.discard(path.stem)
                out.personas[persona.name] = persona

    out.routes, _ = parse_routes(settings.persona_routes)  # Settings reports parse errors
    in_use = {settings.default_persona, *(route.persona for route in out.routes)}
    for persona in out.personas.values():
        for ref in persona.missing_keys:
            if strict or persona.name in in_use:
                why = "this persona is in use" if persona.name in in_use else \
                    "a call given this persona would fail"
                out.file_problems.append(Problem(
                    persona.source, ref.field,
                    f"{ref.var} is required when AGORA_APP_ID is set ({why})", kind="key"))
        resolved = {ref.var: value for ref in persona.env
                    if ref.status != "missing" and (value := resolve(ref.var)[0])}
        out.keys.update(resolved)

    known = ", ".join(sorted(out.personas)) or "none"
    for persona in out.personas.values():
        # A reminder persona is another file: checked once every file is loaded.
        reminders = persona.booking.reminders if persona.booking else None
        if reminders and reminders.persona and reminders.persona not in out.personas \
                and reminders.persona not in broken:
            out.file_problems.append(Problem(
                persona.source, "booking.reminders.persona",
                f"no persona named {reminders.persona!r} (known: {known})"))
    out.problems = [str(p) for p in out.file_problems]
    default = settings.default_persona
    if NAME.match(default) and default not in out.personas and default not in broken:
        out.problems.append(f"DEFAULT_PERSONA: no persona named {settings.default_persona!r} "
                            f"(known: {known})")
    for route in out.routes:
        if route.persona not in out.personas and route.persona not in broken:
            out.problems.append(f"PERSONA_ROUTES: {route.pattern}={route.persona}: no persona "
                                f"named {route.persona!r} (known: {known})")
    return out


def load_registry(settings: Settings, env: Mapping[str, str] | None = None) -> Registry:
    """The personas for ``settings``; raises ConfigError listing every problem."""
    inspection = inspect_personas(settings, env)
    if inspection.problems:
        raise ConfigError(inspection.problems)
    return Registry(inspection.personas, default=settings.default_persona,
                    routes=inspection.routes)
