"""What the SIP API and commands accept: the one check of each input that is not a gateway
body field of its own (sip/payload.py checks those), each a ValueError saying what is wrong.
The services call them before anything is recorded; the views and the CLI only turn the error
into a 400 or a one-line message."""

from __future__ import annotations

from typing import Any

from sip.payload import LEGS, PROMPTS, check_outbound, normalize_region

DTMF_KEYS = frozenset("0123456789*#")


def text_variables(variables: Any) -> dict[str, str] | None:
    """A call's or a line's template variables: an object of strings (or None), else
    ValueError."""
    if variables is not None and not (isinstance(variables, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in variables.items())):
        raise ValueError("variables must be an object of strings")
    return variables


def label_text(label: Any) -> str | None:
    """A note for people on a line or a reservation: text (or None), else ValueError."""
    if label is not None and not isinstance(label, str):
        raise ValueError("label must be text")
    return label


def dial_options(region: str, prompt: str) -> tuple[str, str]:
    """An outbound dial's region (normalised) and prompt, or ValueError. Checked before the
    call is recorded (now, later or in a campaign): a call the gateway could not be asked to
    dial would otherwise start its agent in a channel no phone leg ever joins."""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be one of {sorted(PROMPTS)}")
    check_outbound(prompt, None)
    return normalize_region(region), prompt


def transfer_target(destination: Any, leg: Any) -> tuple[str, str | None]:
    """A transfer's destination (trimmed) and phone leg, or ValueError saying what is wrong.
    The one check of this input: the view and the gateway client rely on it."""
    if not isinstance(destination, str) or not destination.strip():
        raise ValueError("destination is required: a phone number or a SIP URI")
    if leg is not None and (not isinstance(leg, str) or leg not in LEGS):
        raise ValueError(f"leg must be one of {', '.join(sorted(LEGS))}")
    return destination.strip(), leg


def dtmf_digits(digits: Any) -> str:
    """Keypad digits to play (``0-9``, ``*``, ``#``), or ValueError. The one check of them."""
    if not isinstance(digits, str) or not digits or any(c not in DTMF_KEYS for c in digits):
        raise ValueError("digits must be one or more of 0-9, * and #")
    return digits
