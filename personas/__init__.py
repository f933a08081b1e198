"""Personas: who the agent is on each number, and which LLM, voice and ears it uses.

One TOML file per persona (docs/personas.md). ``load_registry(settings)`` loads them all;
``Registry.route(channel)`` picks the persona for a call; ``convoai.payload.build_join_properties``
turns it into the join body.
"""

from personas.model import EnvRef, Persona
from personas.reader import Problem
from personas.registry import (
    Inspection,
    Registry,
    UnknownPersona,
    inspect_personas,
    load_registry,
)
from personas.routing import Route, parse_routes

__all__ = [
    "EnvRef", "Inspection", "Persona", "Problem", "Registry", "Route", "UnknownPersona",
    "inspect_personas", "load_registry", "parse_routes",
]
