"""Keeping each persona's knowledge index in step with its folder: a folder whose fingerprint
differs from the one indexed is read, cut into passages and indexed again, whole.

Run by ``flask knowledge index`` and at start-up (create_app), where a fresh index costs a read
of the folder's files and one small query per persona.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from personas.model import Persona
from store import Store
from tools.knowledge_chunks import read_folder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Indexed:
    persona: str
    folder: str
    chunks: int
    files: int
    changed: bool  # False: the index was already that of these files


def index_persona(store: Store, persona: Persona, *, force: bool = False) -> Indexed:
    """Index the persona's knowledge folder if it changed since it was last indexed (or
    always, with ``force``). OSError if the folder cannot be read."""
    assert persona.knowledge is not None
    folder = read_folder(persona.knowledge.folder)
    fingerprint = folder.fingerprint
    known = store.knowledge_source(persona.name)
    if not force and known is not None and known["fingerprint"] == fingerprint:
        return Indexed(persona.name, str(folder.path), known["chunks"], len(folder.files),
                       changed=False)
    chunks = folder.chunks()
    changed = store.replace_knowledge(persona.name, folder=str(folder.path),
                                      fingerprint=fingerprint,
                                      chunks=[c.as_row() for c in chunks], force=force)
    logger.info("knowledge.indexed", extra={"persona": persona.name, "chunks": len(chunks),
                                            "files": len(folder.files)})
    return Indexed(persona.name, str(folder.path), len(chunks), len(folder.files), changed)


def index_stale(store: Store, personas: Iterable[Persona]) -> list[Indexed]:
    """Index every persona whose knowledge folder changed; a folder that cannot be read is
    logged and left as it was indexed (the service still starts)."""
    done = []
    for persona in personas:
        if persona.knowledge is None:
            continue
        try:
            done.append(index_persona(store, persona))
        except OSError as exc:
            logger.warning("knowledge.unreadable", extra={
                "persona": persona.name, "folder": persona.knowledge.folder,
                "reason": exc.strerror or str(exc)})
    return done
