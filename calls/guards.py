"""Cost guards: whether a new call may have an agent, given what is already running and spent.

An agent costs money for every minute it is in a channel, so two limits apply before one starts:
MAX_CONCURRENT_CALLS (calls open at once), DAILY_AGENT_MINUTES (agent minutes spent since
midnight UTC, counting agents still running up to now) and its money twin DAILY_BUDGET (the
estimated cost of those same minutes, calls/costs.py). A call refused here is still recorded
(state ``refused``, with the reason) and counted in phone_agent_calls_refused_total."""

from __future__ import annotations

from dataclasses import dataclass, field

from calls.costs import Rates

MAX_CONCURRENT = "max_concurrent_calls"
DAILY_MINUTES = "daily_agent_minutes"
DAILY_BUDGET = "daily_budget"
DAY_S = 86_400


@dataclass(frozen=True)
class Limits:
    max_concurrent_calls: int = 0  # 0: no cap
    daily_agent_minutes: int = 0   # 0: no budget
    daily_budget: float = 0.0      # money; 0: no budget
    rates: Rates = field(default_factory=Rates)

    @property
    def active(self) -> bool:
        return bool(self.max_concurrent_calls or self.daily_agent_minutes or self.daily_budget)


@dataclass(frozen=True)
class Usage:
    open_calls: int
    agent_seconds_today: float
    spent_today: float = 0.0


def refusal_reason(usage: Usage, limits: Limits) -> str | None:
    """The limit a new call would break, or None when it may have an agent."""
    if limits.max_concurrent_calls and usage.open_calls >= limits.max_concurrent_calls:
        return MAX_CONCURRENT
    if limits.daily_agent_minutes and \
            usage.agent_seconds_today >= limits.daily_agent_minutes * 60:
        return DAILY_MINUTES
    if limits.daily_budget and usage.spent_today >= limits.daily_budget:
        return DAILY_BUDGET
    return None


def utc_day_start(now: float) -> float:
    """Midnight UTC of the day ``now`` falls in: the daily budget resets there."""
    return now - now % DAY_S
