"""When to retry a failed upstream call, and how long to wait first.

A pure policy: no clock, no randomness, no sleeping of its own. The client passes in how long the
call has taken so far and a random number, which keeps the policy testable without the network.
Which failures are worth another try is each error class's ``transient`` (upstream/errors.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import UpstreamFailure


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter, bounded by attempts and by a time budget."""

    max_attempts: int = 4
    base_delay_s: float = 0.2
    max_delay_s: float = 2.0
    budget_s: float = 7.0
    #: Spread the backoff over [50 %, 100 %) of its value; without, wait exactly that.
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("delays must not be negative")
        if not self.budget_s > 0 or math.isnan(self.budget_s):
            raise ValueError("budget_s must be positive")

    def next_delay(
        self, attempt: int, error: Exception, elapsed_s: float, rand: float
    ) -> float | None:
        """Seconds to sleep before the next attempt, or None to give up.

        ``attempt`` is the 1-based number of the attempt that just failed, ``elapsed_s`` the time
        spent on the call so far, ``rand`` a number in [0, 1) used for jitter. Only failures that
        may go away by themselves are retried (for ConvoAI: no response, 429, and 5xx
        gateway/startup errors); a 4xx (bad request, auth, not found, conflict, quota) is final.
        """
        if attempt >= self.max_attempts or not is_retryable(error):
            return None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            # The server told us when; jittering that would only make us early.
            delay = retry_after
        else:
            delay = self.backoff(attempt, rand)
        if elapsed_s + delay > self.budget_s:
            return None
        return delay

    def backoff(self, attempt: int, rand: float) -> float:
        """``base * 2^(attempt-1)`` capped at ``max_delay_s``, jittered into [50 %, 100 %)."""
        exponent = min(max(attempt - 1, 0), 32)  # past this the cap has long applied
        capped = min(self.max_delay_s, self.base_delay_s * 2.0**exponent)
        return capped * (0.5 + 0.5 * rand) if self.jitter else capped


def is_retryable(error: Exception) -> bool:
    """Whether a retry could plausibly succeed where this attempt failed."""
    return isinstance(error, UpstreamFailure) and bool(error.transient)


#: A policy that makes exactly one attempt (for calls that must not repeat, like ``speak``).
NO_RETRY = RetryPolicy(max_attempts=1)
