"""What a call cost: an estimate from its record and the configured per-minute rates.

Every part is priced by the minute. ConvoAI bills agent minutes (the agent's join to the call's
end, or now for a call still running); the SIP gateway bills the minutes of a call with a phone
leg (outbound, or inbound through the gateway) over the same span; a persona's ``[cost]`` table
prices its LLM, TTS and ASR per agent minute. ConvoAI reports no token usage anywhere the service
stores (its notifications carry turns, errors and history, not tokens), so there are no token
rates. Pure functions: no Flask, no store, no personas import (the store prices the day's spend
for DAILY_BUDGET through :func:`spend`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Money is kept to a millionth of the currency unit: a fraction of a cent per second of agent.
PLACES = 6


@dataclass(frozen=True)
class PersonaRates:
    """A persona's ``[cost]`` table: money per agent minute for its LLM, TTS and ASR."""

    llm_per_minute: float = 0.0
    tts_per_minute: float = 0.0
    asr_per_minute: float = 0.0


class _CostedPersona(Protocol):
    name: str
    cost: Any


@dataclass(frozen=True)
class Rates:
    """Every rate in force: the settings' and each persona's (by name)."""

    convoai_per_minute: float = 0.0
    sip_per_minute: float = 0.0
    currency: str = "USD"
    personas: Mapping[str, PersonaRates] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Any, personas: Iterable[_CostedPersona]) -> Rates:
        """The rates of ``settings`` (CONVOAI_PER_MINUTE, SIP_PER_MINUTE, COST_CURRENCY) and of
        each persona's ``[cost]`` table."""
        return cls(convoai_per_minute=settings.convoai_per_minute,
                   sip_per_minute=settings.sip_per_minute, currency=settings.cost_currency,
                   personas={p.name: PersonaRates(p.cost.llm_per_minute, p.cost.tts_per_minute,
                                                  p.cost.asr_per_minute) for p in personas})

    def of(self, persona: str | None) -> PersonaRates:
        return self.personas.get(persona or "", PersonaRates())


class _Costed(Protocol):
    persona: str | None
    direction: str | None
    gateway_callid: str | None
    agent_started_at: float | None
    ended_at: float | None


def has_phone_leg(direction: str | None, gateway_callid: str | None) -> bool:
    """Whether the SIP gateway carried the call: outbound calls, and inbound ones it announced."""
    return direction == "outbound" or gateway_callid is not None


def agent_seconds(call: _Costed, now: float) -> float:
    """The agent's time in the channel: its join to the call's end (or ``now``)."""
    if call.agent_started_at is None:
        return 0.0
    end = call.ended_at if call.ended_at is not None else now
    return max(0.0, end - call.agent_started_at)


def parts(seconds: float, persona: str | None, phone: bool, rates: Rates) -> dict[str, float]:
    """The unrounded cost of ``seconds`` of agent time, by part."""
    minutes = seconds / 60
    own = rates.of(persona)
    return {"convoai": minutes * rates.convoai_per_minute,
            "sip": minutes * rates.sip_per_minute if phone else 0.0,
            "llm": minutes * own.llm_per_minute, "tts": minutes * own.tts_per_minute,
            "asr": minutes * own.asr_per_minute}


def call_cost(call: _Costed, rates: Rates, now: float) -> dict[str, Any]:
    """``{"estimated", "currency", "parts": {convoai, sip, llm, tts, asr}}`` for one call."""
    found = parts(agent_seconds(call, now), call.persona,
                  has_phone_leg(call.direction, call.gateway_callid), rates)
    return {"estimated": round(sum(found.values()), PLACES), "currency": rates.currency,
            "parts": {k: round(v, PLACES) for k, v in found.items()}}


def spend(rows: Iterable[tuple[str | None, bool, float]], rates: Rates) -> float:
    """The cost of (persona, phone leg, agent seconds) rows: the day's spend for DAILY_BUDGET."""
    return sum(sum(parts(seconds, persona, phone, rates).values())
               for persona, phone, seconds in rows)


def totals_by_persona(rows: Iterable[tuple[str | None, bool, float]],
                      rates: Rates) -> dict[str, float]:
    """The cost of (persona, phone leg, agent seconds) rows, summed per persona ("" for none)."""
    totals: dict[str, float] = {}
    for persona, phone, seconds in rows:
        name = persona or ""
        totals[name] = totals.get(name, 0.0) + spend([(persona, phone, seconds)], rates)
    return {name: round(value, PLACES) for name, value in totals.items()}


def daily_totals(calls: Iterable[_Costed], rates: Rates, now: float, *,
                 day_of: Any) -> list[dict[str, Any]]:
    """The cost of ``calls`` by day (``day_of(call)``), with totals per persona and number.
    Each call counts whole on its day, so a day's total is the sum of its calls' estimates.
    ``number`` is the service's own number on the call (called for inbound, caller for
    outbound); "" when there is none."""
    days: dict[str, dict[str, Any]] = {}
    for call in calls:
        estimated = call_cost(call, rates, now)["estimated"]
        day = days.setdefault(day_of(call), {"total": 0.0, "calls": 0, "personas": {},
                                             "numbers": {}})
        day["total"] += estimated
        day["calls"] += 1
        persona = call.persona or ""
        number = (getattr(call, "caller_number", None) if call.direction == "outbound"
                  else getattr(call, "called_number", None)) or ""
        for key, name in (("personas", persona), ("numbers", number)):
            day[key][name] = day[key].get(name, 0.0) + estimated
    return [{"day": day, "currency": rates.currency, "calls": totals["calls"],
             "total": round(totals["total"], PLACES),
             "personas": {k: round(v, PLACES) for k, v in sorted(totals["personas"].items())},
             "numbers": {k: round(v, PLACES) for k, v in sorted(totals["numbers"].items())}}
            for day, totals in sorted(days.items(), reverse=True)]
