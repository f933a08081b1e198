"""A real 78-card tarot deck: the 22 major arcana and four suits of 14."""

from __future__ import annotations

MAJOR_ARCANA = (
    "The Fool", "The Magician", "The High Priestess", "The Empress", "The Emperor",
    "The Hierophant", "The Lovers", "The Chariot", "Strength", "The Hermit",
    "Wheel of Fortune", "Justice", "The Hanged Man", "Death", "Temperance", "The Devil",
    "The Tower", "The Star", "The Moon", "The Sun", "Judgement", "The World",
)
RANKS = ("Ace", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten",
         "Page", "Knight", "Queen", "King")
SUITS = ("Wands", "Cups", "Swords", "Pentacles")

DECK: tuple[str, ...] = MAJOR_ARCANA + tuple(f"{rank} of {suit}" for suit in SUITS
                                             for rank in RANKS)
assert len(DECK) == 78 and len(set(DECK)) == 78

#: Position names for the usual spreads, so a reading can say which card means what.
SPREADS: dict[str, tuple[str, ...]] = {
    "past_present_future": ("past", "present", "future"),
    "situation_action_outcome": ("situation", "action", "outcome"),
    "celtic_cross": ("present", "challenge", "foundation", "past", "crown", "future", "self",
                     "environment", "hopes and fears", "outcome"),
}


def positions(spread: str | None, count: int) -> list[str | None]:
    """The position of each drawn card in ``spread`` (None where the spread names none)."""
    key = "_".join((spread or "").lower().replace("-", " ").split())
    names = SPREADS.get(key, ())
    return [names[i] if i < len(names) else None for i in range(count)]
