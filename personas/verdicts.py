"""Schema verdicts kept per process.

Judging a persona's join body against ConvoAI's schema, or its analysis schema against the
metaschema, takes milliseconds, and every process loads every persona (each worker, each
command, each app a test builds), mostly the same ones. The verdicts are pure, so a value that
is JSON is judged once, by its JSON text; one that is not (a TOML date or time) is judged as it
is, every time.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

Verdict = TypeVar("Verdict")


def kept_by_json(maxsize: int) -> Callable[[Callable[[Any], Verdict]], Callable[[Any], Verdict]]:
    """Decorate a pure judge of one JSON-like value so that its verdicts are kept (see above)."""

    def decorate(judge: Callable[[Any], Verdict]) -> Callable[[Any], Verdict]:
        @functools.lru_cache(maxsize=maxsize)
        def judge_text(text: str) -> Verdict:
            return judge(json.loads(text))

        @functools.wraps(judge)
        def judged(value: Any) -> Verdict:
            try:
                text = json.dumps(value, sort_keys=True)
            except (TypeError, ValueError):
                return judge(value)
            return judge_text(text)

        return judged

    return decorate
