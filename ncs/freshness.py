"""Which deliveries are too old (or too far ahead) to act on, by their ``notifyMs``.

The notices table recognises a copy of a delivery only for NOTICE_RETENTION_HOURS; after that
a captured, correctly signed join could be sent again and start a paid agent. NCS sets
``notifyMs`` afresh on every attempt and retries for minutes, so a genuine delivery is never
nearly that old: refusing anything older than the ledger's memory closes the gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: How far ahead of our clock a delivery may be dated: the clock skew tolerated between Agora
#: and this host.
MAX_AHEAD_S = 5 * 60
#: How much younger than the retention the oldest accepted delivery is. A notice is forgotten
#: once the pruning instance's clock passes its arrival (by the recording instance's clock) plus
#: NOTICE_RETENTION_HOURS, and a delivery's age is our clock less Agora's ``notifyMs``: without
#: a margin, a pruning clock running ahead of the recording one, or Agora's ahead of ours, would
#: leave a gap in which a replay is neither refused nor recognised. The margin absorbs up to
#: this much of both together; half the retention when that is shorter (the 1 h minimum).
SKEW_MARGIN_S = 60 * 60
#: notifyMs values beyond this (285,000 years) are judged as this: no float overflows.
_FARTHEST_MS = 2**53


def max_age_s(retention_s: float) -> float:
    """The age past which a delivery is refused: the retention less the margin."""
    return retention_s - min(SKEW_MARGIN_S, retention_s / 2)


class ReplayWindow:
    """Refuses deliveries dated outside what the notices table can still vouch for."""

    def __init__(self, retention_s: float, *, clock: Callable[[], float] = time.time) -> None:
        self.max_age_s = max_age_s(retention_s)
        self.clock = clock

    def stale_age_s(self, notify_ms: int | None) -> float | None:
        """The delivery's age in seconds (negative when dated ahead of us) if it is outside the
        window, else None. Without a ``notifyMs`` there is nothing to judge: None."""
        if notify_ms is None:
            return None
        notify_ms = max(-_FARTHEST_MS, min(_FARTHEST_MS, notify_ms))
        age_s = self.clock() - notify_ms / 1000
        if age_s > self.max_age_s or age_s < -MAX_AHEAD_S:
            return round(age_s, 3)
        return None
