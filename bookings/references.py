"""Booking references: short, read aloud over a phone line without ambiguity (``BK-7H3Q9``).

The alphabet leaves out the characters people confuse when they hear or read them (0 and O;
1, I and L; 5 and S; U and V), all of them, so no reference has two readings.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

ALPHABET = "2346789ABCDEFGHJKMNPQRTWXYZ"
LENGTH = 5
PREFIX = "BK-"
REFERENCE = re.compile(rf"^{PREFIX}[{ALPHABET}]{{{LENGTH}}}$")


def new_reference(choice: Callable[[str], str] = secrets.choice) -> str:
    """A random reference; the store's key refuses the rare repeat, and the caller draws again."""
    return PREFIX + "".join(choice(ALPHABET) for _ in range(LENGTH))


def normalise(text: str) -> str:
    """A reference as a caller or an agent may give it (``bk 7h3q9``, ``7H3Q9``) in its one
    written form; a string that cannot be one comes back as it is, upper-cased, and matches
    nothing."""
    compact = re.sub(r"[\s\-_.]", "", text.upper())
    if compact.startswith("BK"):
        compact = compact[2:]
    return PREFIX + compact
