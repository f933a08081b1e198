"""A persona's tools as the agent sees them: names, descriptions and input schemas.

Built-in tools act on the call itself (tools/builtin.py); operator tools are declared in the
persona's ``[[tools]]`` and relayed to the operator's endpoint (tools/relay.py).
"""

from __future__ import annotations

from typing import Any

from personas.model import Persona
from tools.booking_tools import booking_specs
from tools.knowledge_tools import knowledge_specs
from tools.spec import ToolSpec

__all__ = ["BUILTIN_DESCRIPTIONS", "ONCE_BUILTINS", "builtin_schema", "catalog"]

#: How long a built-in tool may take (a gateway transfer is the slowest).
BUILTIN_TIMEOUT_S = 10.0
#: The built-in tools whose side effects must happen once per request: ending, transferring
#: flagging and opting out twice would be wrong. A second draw of cards is a new draw.
ONCE_BUILTINS = frozenset({"end_call", "transfer_call", "flag_urgent", "opt_out"})

BUILTIN_DESCRIPTIONS = {
    "end_call": "End the call and hang up. Use it only after you have said goodbye and the "
                "caller has nothing more to ask.",
    "transfer_call": "Transfer the caller to a person at one of the named destinations. Tell "
                     "the caller who you are transferring them to before you use it.",
    "flag_urgent": "Flag this call as urgent so a person follows it up at once. Give a short "
                   "summary: what happened, where, and why it is urgent.",
    "draw_tarot_cards": "Draw cards from a shuffled 78-card tarot deck, each upright or "
                        "reversed. Read only the cards this returns; no card comes up twice in "
                        "one call.",
    "opt_out": "Put the other person's number on the do-not-call list, when they ask not to be "
               "called again. Then tell them they will not be called again, and say goodbye.",
}


def builtin_schema(name: str, persona: Persona) -> dict[str, Any]:
    if name == "end_call":
        properties: dict[str, Any] = {"reason": {
            "type": "string", "maxLength": 200,
            "description": "Why the call is ending, in a few words."}}
        required: list[str] = []
    elif name == "transfer_call":
        properties = {"destination": {
            "type": "string", "enum": sorted(persona.transfer_destinations),
            "description": "Who to transfer the caller to."}}
        required = ["destination"]
    elif name == "flag_urgent":
        properties = {"summary": {
            "type": "string", "minLength": 1, "maxLength": 500,
            "description": "Two or three sentences for the person who follows up."}}
        required = ["summary"]
    elif name == "draw_tarot_cards":
        properties = {
            "count": {"type": "integer", "minimum": 1, "maximum": 10,
                      "description": "How many cards to draw."},
            "spread": {"type": "string", "maxLength": 64,
                       "description": "The spread, e.g. past_present_future or celtic_cross."},
        }
        required = ["count"]
    elif name == "opt_out":
        properties = {"reason": {
            "type": "string", "maxLength": 200,
            "description": "What the person said, in a few words."}}
        required = []
    else:
        raise KeyError(name)
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def catalog(persona: Persona) -> dict[str, ToolSpec]:
    """The persona's tools by name: its built-ins in file order, its operator tools, its booking
    tools (when it has a ``[booking]``), then ``search_knowledge`` (when it has a
    ``[knowledge]`` folder)."""
    tools: dict[str, ToolSpec] = {}
    for name in persona.builtin_tools:
        tools[name] = ToolSpec(name, BUILTIN_DESCRIPTIONS[name], builtin_schema(name, persona),
                               once=name in ONCE_BUILTINS, timeout_s=BUILTIN_TIMEOUT_S)
    for tool in persona.tools:
        tools[tool.name] = ToolSpec(tool.name, tool.description, dict(tool.parameters),
                                    once=tool.side_effects, timeout_s=tool.timeout_s,
                                    operator=tool, family="operator")
    tools.update((spec.name, spec) for spec in booking_specs(persona))
    for spec in knowledge_specs(persona):
        tools[spec.name] = spec
    return tools
