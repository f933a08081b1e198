"""What a call's persona removes from its conversation before the conversation is stored
(``redact`` and ``[redact_patterns]``, privacy/redaction.py): the history the service saves
when it stops an agent, and the history ConvoAI sends itself (event 103)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from personas import Persona
from privacy.redaction import Redactor
from store import CallRecord, Store


class ConversationRedaction:
    def __init__(self, store: Store, persona_of: Callable[[CallRecord], Persona]) -> None:
        self.store = store
        self.persona_of = persona_of

    def redactor_for(self, call_id: str | None, agent_id: str | None) -> Redactor:
        """What the call's persona removes before its data is stored; every built-in kind when
        the call is not found (so nothing is kept verbatim by default)."""
        call = self.store.get_call(call_id) if call_id else \
            self.store.call_by_agent_id(agent_id) if agent_id else None
        return self.persona_of(call).redaction if call is not None else Redactor()

    def contents(self, contents: Any, call_id: str | None, agent_id: str | None
                 ) -> tuple[Any, dict[str, int] | None]:
        """A conversation's ``contents`` redacted for the call's persona, and how many of each
        kind were removed (None when the persona redacts nothing)."""
        redactor = self.redactor_for(call_id, agent_id)
        if not redactor.active:
            return contents, None
        return redactor.value(contents)

    def history_detail(self, detail: dict[str, Any], call_id: str | None,
                       agent_id: str | None) -> dict[str, Any]:
        """ConvoAI's history notification (event 103), its ``contents`` redacted (the counts
        under ``redacted``)."""
        if "contents" not in detail:
            return detail
        contents, found = self.contents(detail["contents"], call_id, agent_id)
        return detail if found is None else {**detail, "contents": contents, "redacted": found}
