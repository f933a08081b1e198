"""Lines: numbers of the operator's own that the gateway's ring-time lookup routes (POST
/sip/lookup), each to a persona, with template variables and, optionally, PINs that choose
another persona. The one check of a line's fields, for the API and `flask sip lines`."""

from __future__ import annotations

from typing import Any

from personas import Registry
from sip.inputs import label_text, text_variables
from sip.numbers import number_key
from store import Store


class Lines:
    """Adding and removing lines, kept in the store."""

    def __init__(self, store: Store, personas: Registry) -> None:
        self.store = store
        self.personas = personas

    def add(self, number: Any, *, persona: Any = None, label: Any = None,
            variables: Any = None, pins: Any = None) -> dict[str, Any]:
        """Store (or replace) the line; ValueError says which field is wrong."""
        number = _line_key(number)
        persona = self.personas.known(persona)
        if pins is not None and not (isinstance(pins, dict) and all(
                isinstance(k, str) and k.isdigit() and isinstance(v, str)
                and v in self.personas
                for k, v in pins.items())):
            raise ValueError("pins must map digits to known personas, e.g. {\"1\": \"tarot\"}")
        return self.store.put_line(number, persona=persona, label=label_text(label),
                                   variables=text_variables(variables), pins=pins)

    def remove(self, number: Any) -> str | None:
        """Stop routing ``number``: its key, or None if no line had it. ValueError: it is no
        number."""
        key = _line_key(number)
        return key if self.store.remove_line(key) else None


def _line_key(number: Any) -> str:
    try:
        return number_key(number)
    except ValueError as exc:
        raise ValueError(f"number: {exc}") from None
