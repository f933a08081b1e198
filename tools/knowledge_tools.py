"""``search_knowledge``: the agent looks a question up in its persona's knowledge folder.

The answer is the few best passages, each with its file and heading, for the agent to answer
from; when nothing matches, a plain (non-error) answer telling it that the FAQ does not say, so
it tells the caller it does not know and offers a person instead of guessing. The caller's words
are searched as plain terms (tools/knowledge_chunks.py), never as query syntax.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from personas.model import KNOWLEDGE_TOOL_NAME, Persona
from store import CallRecord, Store
from tools.knowledge_chunks import query_terms
from tools.spec import Done, ToolSpec

logger = logging.getLogger(__name__)

#: How many passages an answer holds.
PASSAGES = 3
#: A search is one indexed query on the service's own database.
KNOWLEDGE_TIMEOUT_S = 5.0

DESCRIPTION = ("Search this business's own FAQ and help articles. Use it before you answer a "
               "question about the business (opening hours, prices, policies, how to do "
               "something), and before you offer to transfer the caller. Answer only from the "
               "passages it returns; if it finds nothing, say you do not know.")
SCHEMA = {
    "type": "object",
    "properties": {"query": {
        "type": "string", "minLength": 1, "maxLength": 500,
        "description": "The caller's question, in a few words (e.g. how long do refunds take)."}},
    "required": ["query"],
    "additionalProperties": False,
}
NOTHING_FOUND = ("The FAQ has nothing about that. Tell the caller you do not know the answer; "
                 "do not guess. Offer to transfer them to a person, or to take a message.")


def knowledge_specs(persona: Persona) -> list[ToolSpec]:
    """``search_knowledge`` for a persona with a ``[knowledge]`` folder; nothing otherwise.
    A search changes nothing, so it is not run-once."""
    if persona.knowledge is None:
        return []
    return [ToolSpec(KNOWLEDGE_TOOL_NAME, DESCRIPTION, SCHEMA, once=False,
                     timeout_s=KNOWLEDGE_TIMEOUT_S, family="knowledge")]


class KnowledgeTools:
    def __init__(self, store: Store) -> None:
        self.store = store

    def run(self, name: str, call: CallRecord, persona: Persona,
            arguments: Mapping[str, Any]) -> Done:
        if name != KNOWLEDGE_TOOL_NAME:
            raise KeyError(name)
        return self.search(persona, str(arguments["query"]))

    def search(self, persona: Persona, query: str) -> Done:
        passages = self.store.search_knowledge(persona.name, query_terms(query),
                                               limit=PASSAGES)
        if not passages:
            return Done("ok", NOTHING_FOUND, {"passages": []})
        said = "\n\n".join(
            f"[{i}] {p['heading'] or p['source']} ({p['source']}):\n{p['text']}"
            for i, p in enumerate(passages, 1))
        return Done("ok", "From the FAQ (answer from these passages only, in your own "
                          f"words):\n\n{said}", {"passages": passages})
