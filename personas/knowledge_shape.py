"""A persona's ``[knowledge]``: the folder of Markdown and plain-text files (an FAQ, say) that
its agent searches with ``search_knowledge`` (tools/knowledge_tools.py).

:func:`read_knowledge` checks the table into a :class:`~personas.reader.Problems` and resolves
the folder: relative to the persona file, or absolute. A folder that is not there is a problem
in every mode, like any other mistake in the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from personas.model import KNOWLEDGE_TOOL_NAME, KnowledgeSpec
from personas.reader import Problems

KNOWLEDGE_FIELDS = ("folder",)


def read_knowledge(reader: Problems, data: Mapping[str, Any]) -> dict[str, Any]:
    """``{"knowledge": KnowledgeSpec | None}``; problems go to ``reader``."""
    if "knowledge" not in data:
        return {"knowledge": None}
    table = data["knowledge"]
    if not isinstance(table, Mapping):
        reader.problem("knowledge", 'must be a table such as [knowledge] folder = "faq"')
        return {"knowledge": None}
    for key in table:
        if key not in KNOWLEDGE_FIELDS:
            reader.problem(f"knowledge.{key}", "unknown field (known: folder)")
    folder = table.get("folder")
    if folder is None:
        reader.problem("knowledge.folder", "missing")
        return {"knowledge": None}
    if not isinstance(folder, str) or not folder.strip():
        reader.problem("knowledge.folder", "must be the path of a folder")
        return {"knowledge": None}
    path = Path(folder).expanduser()
    if not path.is_absolute():
        path = (reader.base or Path.cwd()) / path
    path = path.resolve()
    if not path.is_dir():
        reader.problem("knowledge.folder", f"{path} is not a folder")
        return {"knowledge": None}
    tools = data.get("tools")
    for entry in tools if isinstance(tools, list) else []:
        if isinstance(entry, Mapping) and entry.get("name") == KNOWLEDGE_TOOL_NAME:
            reader.problem(f"tools.{KNOWLEDGE_TOOL_NAME}.name",
                           "is the knowledge base's own tool ([knowledge]); name this one "
                           "differently")
    return {"knowledge": KnowledgeSpec(str(path))}
