"""A persona's ``[cost]`` table: what its LLM, TTS and ASR cost per agent minute.

:func:`read_cost` checks its shape into a :class:`~personas.reader.Problems`, collecting every
problem; calls/costs.py prices calls with it. Rates are money per minute in COST_CURRENCY.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from personas.model import CostRates
from personas.reader import Problems

COST_FIELDS = ("llm_per_minute", "tts_per_minute", "asr_per_minute")


def read_cost(reader: Problems, data: Mapping[str, Any]) -> CostRates:
    """The persona's rates (0 for each one left out); problems go to ``reader``."""
    table = data.get("cost", {})
    if not isinstance(table, dict):
        reader.problem("cost", "must be a table such as [cost] llm_per_minute = 0.002")
        return CostRates()
    rates: dict[str, float] = {}
    for key, value in table.items():
        if key not in COST_FIELDS:
            reader.problem(f"cost.{key}", f"unknown field (known: {', '.join(COST_FIELDS)})")
        elif isinstance(value, bool) or not isinstance(value, int | float) \
                or not 0 <= value < math.inf:
            reader.problem(f"cost.{key}", "must be a number, 0 or more (money per minute)")
        else:
            rates[key] = float(value)
    return CostRates(**rates)
