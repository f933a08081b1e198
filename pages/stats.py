"""Figures for the dashboard's charts: calls per hour, time to agent, call length, and what
calls cost per day (calls/costs.py prices them).

One bounded read of the calls table (a few columns per call, at most ``MAX_CALLS`` rows), then
plain functions over those rows, so the arithmetic is tested without a database and works the
same on SQLite and PostgreSQL. No Flask here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store import StoreUnavailable
from store.schema import calls

HOUR_S = 3600
#: The most calls one chart reads; beyond it the charts cover the newest calls and say so.
MAX_CALLS = 20_000


@dataclass(frozen=True)
class CallTimes:
    """The timestamps of one call that the charts use (Unix seconds)."""

    created_at: float
    agent_started_at: float | None
    ended_at: float | None
    caller_joined_at: float | None = None
    # What prices the call (calls/costs.py) and the number it counts under.
    persona: str | None = None
    direction: str | None = None
    gateway_callid: str | None = None
    caller_number: str | None = None
    called_number: str | None = None


@dataclass(frozen=True)
class CallSample:
    """The calls made since ``since``, newest first; ``truncated`` when older ones were left
    out to stay within the row limit."""

    since: float
    calls: list[CallTimes]
    truncated: bool


@dataclass(frozen=True)
class HourCount:
    start: float
    count: int


@dataclass(frozen=True)
class Bin:
    """Values in ``[low, high)``; ``high`` is None for the last, open-ended bin."""

    low: float
    high: float | None
    count: int


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None


def window_start(now: float, hours: int = 24) -> float:
    """The start of the first of ``hours`` whole-hour buckets, the last holding ``now``."""
    return (math.floor(now / HOUR_S) - hours + 1) * HOUR_S


def recent_calls(engine: Engine, *, since: float, limit: int = MAX_CALLS) -> CallSample:
    """The timestamps of calls created at or after ``since``: one indexed, bounded query."""
    query = (sa.select(calls.c.created_at, calls.c.agent_started_at, calls.c.ended_at,
                       calls.c.caller_joined_at, calls.c.persona, calls.c.direction,
                       calls.c.gateway_callid, calls.c.caller_number, calls.c.called_number)
             .where(calls.c.created_at >= since)
             .order_by(calls.c.created_at.desc()).limit(limit + 1))
    try:
        # readonly: on SQLite a plain BEGIN, not the write lock the store's writes take.
        with engine.connect().execution_options(readonly=True) as conn, conn.begin():
            rows = conn.execute(query).all()
    except sa.exc.OperationalError as exc:
        raise StoreUnavailable(str(exc.orig or exc).splitlines()[0][:200]) from exc
    sample = [CallTimes(*r) for r in rows[:limit]]
    return CallSample(since=since, calls=sample, truncated=len(rows) > limit)


def utc_day(call: CallTimes) -> str:
    """The UTC date a call was made on (YYYY-MM-DD): the day its cost counts for."""
    return time.strftime("%Y-%m-%d", time.gmtime(call.created_at))


def calls_per_hour(sample: Iterable[CallTimes], *, now: float,
                   hours: int = 24) -> list[HourCount]:
    """Calls started in each of the last ``hours`` clock hours, oldest first; the last bucket
    is the current, partial hour."""
    first = window_start(now, hours)
    counts = [0] * hours
    for call in sample:
        index = math.floor((call.created_at - first) / HOUR_S)
        if 0 <= index < hours:
            counts[index] += 1
    return [HourCount(first + i * HOUR_S, n) for i, n in enumerate(counts)]


def times_to_agent_ms(sample: Iterable[CallTimes]) -> list[float]:
    """For calls whose agent started: from the caller reaching the channel (else the call's
    creation) to the agent running; 0 when the agent was there first (started at ring time).
    The API's ``time_to_agent_ms`` (calls.records) by the same rule; a test keeps them equal."""
    return [max(0.0, (c.agent_started_at - (c.caller_joined_at or c.created_at)) * 1000)
            for c in sample if c.agent_started_at is not None]


def call_lengths_s(sample: Iterable[CallTimes]) -> list[float]:
    """How long each finished call lasted; calls still open are left out."""
    return [c.ended_at - c.created_at for c in sample if c.ended_at is not None]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile ``q`` (0 < q <= 100): the smallest value with at least q % of
    the values at or below it. None for no values."""
    if not 0 < q <= 100:
        raise ValueError("q must be in (0, 100]")
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def summarize(values: Sequence[float]) -> Summary:
    return Summary(count=len(values), p50=percentile(values, 50), p90=percentile(values, 90),
                   p99=percentile(values, 99), max=max(values) if values else None)


def histogram(values: Iterable[float], edges: Sequence[float]) -> list[Bin]:
    """Count values into ``[edges[i], edges[i+1])`` and a last bin from ``edges[-1]`` up. Values
    below ``edges[0]`` (a clock step backwards) count in the first bin."""
    if not edges or list(edges) != sorted(set(edges)):
        raise ValueError("edges must be strictly increasing")
    counts = [0] * len(edges)
    for value in values:
        index = 0
        while index + 1 < len(edges) and value >= edges[index + 1]:
            index += 1
        counts[index] += 1
    highs: list[float | None] = [*edges[1:], None]
    return [Bin(low, high, n) for low, high, n in zip(edges, highs, counts, strict=True)]
