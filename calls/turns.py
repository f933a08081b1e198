"""Per-turn latency from ConvoAI's notifications: event 111 (agent metrics, during the call) and
event 112 (turns finished, once at the end of the agent's session, since ConvoAI 2.7).

Two plain functions, no Flask: ``finished_turns`` checks and bounds a 112 payload before it goes
on the call's timeline; ``turn_latency`` reads the timeline back into the figures the API shows.
A piece of a payload that is not what Agora documents is left out, never an error.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

#: The per-turn figures of event 111, in milliseconds.
METRICS_FIELDS = ("asr_ttlw", "llm_ttfb", "llm_ttfs", "tts_ttfb")
#: The parts of a turn's end-to-end latency in event 112 (``metrics.segmented_latency_ms``).
SEGMENT_FIELDS = ("algorithm_processing", "asr_ttlw", "llm_ttft", "llm_ftfs", "tts_ttfb",
                  "transport")
#: Every figure a turn may carry, each with a median in ``turn_latency``'s ``median_ms``.
LATENCY_FIELDS = ("e2e_latency_ms", *SEGMENT_FIELDS,
                  *(f for f in METRICS_FIELDS if f not in SEGMENT_FIELDS))
#: ConvoAI sends at most 200 turns in one 112 and says so with ``is_truncated``; more than that
#: is not a genuine payload and is cut here (and marked truncated too).
MAX_TURNS = 200
#: A latency above a day, or a timestamp beyond what a double holds exactly, is not a real one.
_MAX_LATENCY_MS = 86_400_000
_MAX_TIMESTAMP = 2**53
_MAX_TEXT = 64


def finished_turns(payload: dict[str, Any]) -> dict[str, Any]:
    """What the timeline keeps of a 112 payload: the agent and session times, the turn count
    and truncation flag, and each well-formed turn's id, start and end, and latencies."""
    raw = payload.get("turns")
    turns = [t for t in (_turn(item) for item in (raw if isinstance(raw, list) else [])[
        :MAX_TURNS]) if t is not None]
    truncated = payload.get("is_truncated") is True or (
        isinstance(raw, list) and len(raw) > MAX_TURNS)
    detail: dict[str, Any] = {
        "agent_id": _text(payload.get("agent_id")),
        "start_ts": _whole(payload.get("start_ts"), _MAX_TIMESTAMP),
        "stop_ts": _whole(payload.get("stop_ts"), _MAX_TIMESTAMP),
        "total_turn_count": _whole(payload.get("total_turn_count"), _MAX_TIMESTAMP),
        "is_truncated": truncated, "turns": turns}
    return {k: v for k, v in detail.items() if v is not None}


def _turn(item: Any) -> dict[str, Any] | None:
    """One turn of a 112, flattened; None when it has no usable turn id."""
    if not isinstance(item, dict):
        return None
    turn_id = _turn_id(item.get("turn_id"))
    if turn_id is None:
        return None
    start = item.get("start") if isinstance(item.get("start"), dict) else {}
    end = item.get("end") if isinstance(item.get("end"), dict) else {}
    metrics = item.get("metrics") if isinstance(item.get("metrics"), dict) else {}
    segments = metrics.get("segmented_latency_ms")
    segments = segments if isinstance(segments, dict) else {}
    turn = {"turn_id": turn_id,
            "start_type": _text(start.get("type")),
            "start_at": _whole(start.get("start_at"), _MAX_TIMESTAMP),
            "end_type": _text(end.get("type")),
            "end_at": _whole(end.get("end_at"), _MAX_TIMESTAMP),
            "e2e_latency_ms": _latency(metrics.get("e2e_latency_ms"))}
    turn.update({name: _latency(segments.get(name)) for name in SEGMENT_FIELDS})
    return turn


def turn_latency(timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """Every turn's latencies and the median of each figure, from events 111 and 112.

    A turn is one row, keyed by its agent and turn id: 112's figures (end-to-end latency and its
    segments, how the turn started and ended) and 111's (``llm_ttfb``, ``llm_ttfs``) sit side
    by side; where both give ``asr_ttlw`` or ``tts_ttfb``, 112's (the later report) wins.
    ``truncated`` is ConvoAI's flag (112 holds at most 200 turns), ``total_turn_count`` the
    count it reported (None without a 112), ``sources`` the events the figures came from."""
    rows: dict[tuple[str | None, Any], dict[str, Any]] = {}
    loose: list[dict[str, Any]] = []  # 111 figures without a turn id: nothing to merge them on
    sources: list[str] = []
    truncated, total = False, None
    for event in timeline:
        detail = event.get("detail")
        if event.get("kind") not in ("agent_metrics", "turns_finished") or \
                not isinstance(detail, dict):
            continue
        agent_id = detail.get("agent_id") if isinstance(detail.get("agent_id"), str) else None
        if event["kind"] == "turns_finished":
            figures = [t for t in detail.get("turns") or [] if isinstance(t, dict)] \
                if isinstance(detail.get("turns"), list) else []
            truncated = truncated or detail.get("is_truncated") is True
            if isinstance(detail.get("total_turn_count"), int):
                total = (total or 0) + detail["total_turn_count"]
        else:
            figures = [_metrics_turn(m) for m in detail.get("metrics") or []
                       if isinstance(m, dict)] if isinstance(detail.get("metrics"), list) else []
        if event["kind"] not in sources:
            sources.append(event["kind"])
        for figure in figures:
            turn_id = _turn_id(figure.get("turn_id"))
            if turn_id is None:
                loose.append(_row(figure))
                continue
            row = rows.setdefault((agent_id, turn_id), _row({"turn_id": turn_id}))
            later = event["kind"] == "turns_finished"
            for name, value in figure.items():
                if name in row and value is not None and (later or row[name] is None):
                    row[name] = value
    turns = [*rows.values(), *loose]
    medians = {}
    for name in LATENCY_FIELDS:
        values = [t[name] for t in turns if _latency(t.get(name)) is not None]
        medians[name] = statistics.median(values) if values else None
    return {"turns": turns, "median_ms": medians, "truncated": truncated,
            "total_turn_count": total, "sources": sources}


def _metrics_turn(metric: dict[str, Any]) -> dict[str, Any]:
    """One entry of a 111's ``metrics``: its turn id and figures (stored as ConvoAI sent them,
    so checked here on the way out)."""
    return {"turn_id": _turn_id(metric.get("turn_id")),
            **{name: _latency(metric.get(name)) for name in METRICS_FIELDS}}


def _row(figures: dict[str, Any]) -> dict[str, Any]:
    """A turn as the API shows it: every field, None where nothing reported it."""
    row: dict[str, Any] = {"turn_id": figures.get("turn_id"), "start_type": None,
                           "start_at": None, "end_type": None, "end_at": None}
    row.update({name: None for name in LATENCY_FIELDS})
    row.update({k: v for k, v in figures.items() if k in row and v is not None})
    return row


def _turn_id(value: Any) -> int | str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if abs(value) < _MAX_TIMESTAMP else None
    return _text(value)


def _latency(value: Any) -> int | float | None:
    """A duration in ms: a finite, non-negative number below a day (bools and text are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if 0 <= value <= _MAX_LATENCY_MS else None


def _whole(value: Any, limit: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value < limit else None


def _text(value: Any) -> str | None:
    """Short, storable text (no NUL, no lone surrogate), or None."""
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT or "\x00" in value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value
