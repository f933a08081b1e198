"""The turns of a simulated agent, as ``GET /agents/<id>/turns`` reports them (reference 2.10).

A turn is one exchange the agent took part in: its greeting, each scripted caller utterance and
reply, a ``/speak`` or a ``/think``. Its latencies are fixed, plausible figures: the sandbox has no
ASR, LLM or TTS whose speed it could measure. Callers hold the world lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

#: Simulated latency segments (ms) of a turn that went through the whole cascade, in the order
#: Agora lists them for text input; a greeting or ``/speak`` only goes through TTS and transport.
CASCADE_SEGMENTS = (("algorithm_processing", 20), ("asr_ttlw", 180), ("llm_ttft", 350),
                    ("llm_ftfs", 120), ("tts_ttfb", 100), ("transport", 50))
SPOKEN_SEGMENTS = (("tts_ttfb", 100), ("transport", 50))
#: How long the caller speaks, and how long the agent's answer plays (ms).
SPEECH_MS = 1200
PLAYBACK_MS = 1500
#: Start types that went through ASR and the LLM. Agora's event 112 lists an ``api_think`` start
#: type; the ``/turns`` docs (older than /think) list none for a /think turn: we ASSUME that one.
CASCADE_STARTS = ("voice_input", "api_think")
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class Turn:
    """One finished (or, until ``end_at``, still playing) turn; times in Unix seconds."""

    turn_id: int
    start_type: str  # voice_input | greeting | api_speak | api_think
    start_at: float
    end_at: float
    end_type: str = "ok"  # ok | interrupted
    caused_by: str = ""  # why an interrupted turn ended, e.g. api_interrupt

    @property
    def segments(self) -> tuple[tuple[str, int], ...]:
        return CASCADE_SEGMENTS if self.start_type in CASCADE_STARTS else SPOKEN_SEGMENTS

    @property
    def e2e_ms(self) -> int:
        return sum(latency for _, latency in self.segments)

    def public(self, agent_id: str, channel: str) -> dict[str, Any]:
        """The turn as Agora's ``turns[]`` entry."""
        start_meta: dict[str, Any] = {
            "voice_input": {"speech_duration_ms": SPEECH_MS, "interrupt_duration_ms": 160},
            "greeting": {"greeting_nth": 1},
            "api_speak": {"transport": "http"},
            "api_think": {"transport": "http"},
        }.get(self.start_type, {})
        if self.end_type == "ok":
            speech = SPEECH_MS if self.start_type == "voice_input" else 0
            played = _ms(self.end_at) - _ms(self.start_at) - speech - self.e2e_ms
            end_meta: dict[str, Any] = {"playback_duration_ms": max(0, played)}
        else:
            end_meta = {"caused_by": self.caused_by, "transport": "http"}
        return {
            "turn_id": self.turn_id, "agent_id": agent_id, "channel": channel,
            "start": {"start_at": _ms(self.start_at), "type": self.start_type,
                      "metadata": start_meta},
            "end": {"end_at": _ms(self.end_at), "type": self.end_type, "metadata": end_meta},
            "metrics": {
                "e2e_latency_ms": self.e2e_ms,
                "segmented_latency_ms": [{"name": name, "latency": latency}
                                         for name, latency in self.segments],
            },
        }


def record(log: list[Turn], start_type: str, at: float) -> Turn:
    """Append the turn that starts at ``at`` (Unix seconds) and return it. It lasts the
    caller's speech (voice input only), the latency, then the answer's playback; a turn still
    playing at ``at`` ends there (the sandbox's script is faster than real speech)."""
    if log and log[-1].end_at > at:
        log[-1] = replace(log[-1], end_at=max(at, log[-1].start_at))
    turn = Turn(len(log) + 1, start_type, at, at)
    speech = SPEECH_MS if start_type == "voice_input" else 0
    turn = replace(turn, end_at=at + (speech + turn.e2e_ms + PLAYBACK_MS) / 1000)
    log.append(turn)
    return turn


def interrupt(log: list[Turn], at: float, caused_by: str = "api_interrupt") -> None:
    """End the turn still playing at ``at``, if any, as interrupted."""
    if log and log[-1].end_at > at and log[-1].end_type == "ok":
        log[-1] = replace(log[-1], end_at=at, end_type="interrupted", caused_by=caused_by)


def page(log: list[Turn], *, agent_id: str, name: str, channel: str, page_index: int,
         page_size: int) -> dict[str, Any]:
    """One page of the turns (``page_index`` from 1), shaped as Agora's ``/turns`` answer."""
    total_pages = max(1, math.ceil(len(log) / page_size))
    chosen = log[(page_index - 1) * page_size : page_index * page_size]
    return {
        "agent_id": agent_id, "name": name, "channel": channel, "total_turn_count": len(log),
        "pagination": {"page_index": page_index, "total_pages": total_pages,
                       "is_last_page": page_index >= total_pages},
        "turns": [turn.public(agent_id, channel) for turn in chosen],
    }


def _ms(at: float) -> int:
    return int(round(at * 1000))
