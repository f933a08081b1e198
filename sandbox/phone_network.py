"""The sandbox's phone network: who answers an outbound call, by the number dialled.

Numbers in the North American fictional range (NPA-555-0100 to NPA-555-0199, reserved for
fiction and tests by the NANPA) behave by their last two digits, so every disposition and retry
path of outbound/ runs offline; any other number keeps the older rule (digits ending "0000"
are busy, the rest answer). Both sandbox dialers use it: the SIP gateway's ``outbound``
(sandbox/sip_outbound.py) and ConvoAI's ``/call``.

=========  ===========  =================================================================
 0100-19    answered     a person picks up
 0120-39    busy         the line is busy (the gateway's ``Busy``, hangup cause USER_BUSY)
 0140-59    no_answer    it rings out (hangup cause NO_ANSWER)
 0160-79    voicemail    a machine answers and plays a greeting
 0180-99    failed       the number does not exist (``Invalid``, INVALID_NUMBER_FORMAT)
=========  ===========  =================================================================
"""

from __future__ import annotations

import re

ANSWERED, BUSY, NO_ANSWER, VOICEMAIL, FAILED = (
    "answered", "busy", "no_answer", "voicemail", "failed")
OUTCOMES = (ANSWERED, BUSY, NO_ANSWER, VOICEMAIL, FAILED)
_FICTIONAL = re.compile(r"^1\d{3}5550(1\d\d)$")


def outcome(number: str) -> str:
    """What happens when ``number`` is dialled (one of :data:`OUTCOMES`)."""
    digits = "".join(re.findall(r"[0-9]", number.split(";", 1)[0].split("#", 1)[0]))
    fictional = _FICTIONAL.match(digits)
    if fictional is None:
        return BUSY if digits.endswith("0000") else ANSWERED
    return OUTCOMES[(int(fictional.group(1)) - 100) // 20]


def example(kind: str, index: int = 0, area: str = "202") -> str:
    """A fictional number with outcome ``kind`` (index 0-19 within its block)."""
    return f"+1{area}5550{100 + OUTCOMES.index(kind) * 20 + index}"
