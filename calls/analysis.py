"""Post-call analysis: once a call has ended and its transcript has had time to arrive, the
persona's own LLM is asked for a summary, a success verdict against the persona's goal, and
structured data that fits the persona's JSON Schema (``[analysis]``, docs/operations.md).

It runs in the periodic runner (calls/reconcile.py), never in an NCS answer. Each ended call is
queued once in the store (ANALYSIS_DELAY_S after it ended) and leased to one worker at a time;
a failed attempt is retried after RETRY_DELAYS_S, and after the last the call is marked
``analysis_failed``. The request goes to an OpenAI-compatible chat completions endpoint (the
persona's ``[llm]`` url and key; in sandbox mode the sandbox's ``/v1/chat/completions``) with
``response_format`` of type ``json_schema``, and the answer is checked against that schema
before it is kept.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema
import requests

from calls.records import transcript
from config import Settings
from personas.model import Persona
from store import CallRecord, Store

logger = logging.getLogger(__name__)

#: Calls that ended longer ago than this are not queued (an upgrade does not analyse history).
QUEUE_WINDOW_S = 86_400.0
#: Delays before each retry; after the last one the analysis is given up.
RETRY_DELAYS_S = (5.0, 30.0, 120.0)
#: How long a worker owns an analysis it is running before another may take it.
LEASE_S = 90.0
TIMEOUT_S = (3.05, 30.0)
#: Most transcript characters sent (the end of a very long call is kept).
MAX_TRANSCRIPT_CHARS = 60_000
DEFAULT_MODEL = "gpt-4o-mini"


class AnalysisError(Exception):
    """One attempt failed; the message (no secrets, no body) is kept as ``last_error``."""


def response_schema(persona: Persona) -> dict[str, Any]:
    """The JSON Schema the model must answer with: the summary, the verdict and the data."""
    spec = persona.analysis
    data = dict(spec.schema) if spec else {"type": "object", "properties": {}}
    return {"type": "object", "additionalProperties": False,
            "required": ["summary", "success", "data"],
            "properties": {"summary": {"type": "string"}, "success": {"type": "boolean"},
                           "data": data}}


def request_body(persona: Persona, conversation: list[dict[str, str]]) -> dict[str, Any]:
    spec = persona.analysis
    instructions = (
        f"You review a finished phone call between a caller and the voice agent "
        f"'{persona.name}' ({persona.description}). Answer in JSON only.\n"
        f"summary: {spec.summary if spec else 'Two sentences.'}\n"
        f"success: true if this goal was met, else false: "
        f"{spec.success if spec else 'the caller was helped.'}\n"
        "data: the fields of the schema, taken only from what was said; use an empty string "
        "(or the schema's nearest neutral value) for anything not said. Placeholders such as "
        "[card_number] stand for details removed for privacy: never guess them.")
    lines = "\n".join(f"{'Caller' if turn['role'] == 'user' else 'Agent'}: {turn['content']}"
                      for turn in conversation)[-MAX_TRANSCRIPT_CHARS:]
    return {
        "model": persona.llm.get("model") or DEFAULT_MODEL,
        "messages": [{"role": "system", "content": instructions},
                     {"role": "user", "content": lines}],
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "call_analysis", "schema": response_schema(persona)}},
        "temperature": 0,
    }


class Analyzer:
    """Runs the due analyses; see the module's docstring."""

    def __init__(self, settings: Settings, store: Store,
                 persona_of: Callable[[CallRecord], Persona], *,
                 session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.persona_of = persona_of
        self.session = session or requests.Session()
        # Proxies and CA settings from the environment are for people, not for this client.
        self.session.trust_env = False
        self.clock = clock

    def run_due(self, limit: int = 5) -> int:
        """Queue newly ended calls, then run up to ``limit`` due analyses; how many finished."""
        now = self.clock()
        self.store.queue_analyses(ended_before=now - self.settings.analysis_delay_s,
                                  ended_after=now - QUEUE_WINDOW_S)
        finished = 0
        for row in self.store.claim_analyses(limit=limit, lease_s=LEASE_S):
            finished += self._run(row["call_id"], row["attempts"])
        return finished

    def _run(self, call_id: str, attempt: int) -> int:
        call = self.store.get_call(call_id)
        if call is None:
            return 0  # erased meanwhile
        conversation = transcript(self.store.timeline(call_id))
        if not conversation:
            self.store.analysis_empty(call_id)
            return 1
        persona = self.persona_of(call)
        try:
            answer, model, usage = self._ask(persona, conversation)
        except AnalysisError as exc:
            retry_in = RETRY_DELAYS_S[attempt - 1] if attempt <= len(RETRY_DELAYS_S) else None
            self.store.analysis_retry(call_id, str(exc), retry_in=retry_in)
            logger.warning("analysis.failed", extra={"call_id": call_id, "attempt": attempt,
                                                     "error": str(exc),
                                                     "gave_up": retry_in is None})
            return 0 if retry_in is not None else 1
        self.store.analysis_done(call_id, summary=answer["summary"], data=answer["data"],
                                 success=answer["success"], model=model,
                                 prompt_tokens=usage.get("prompt_tokens"),
                                 completion_tokens=usage.get("completion_tokens"))
        logger.info("analysis.done", extra={"call_id": call_id, "model": model})
        return 1

    def _endpoint(self, persona: Persona) -> tuple[str, dict[str, str]]:
        if self.settings.sandbox:
            # Offline: the sandbox answers like an OpenAI-compatible endpoint.
            return f"{self.settings.sandbox_url.rstrip('/')}/v1/chat/completions", {}
        if persona.llm.get("style", "openai") != "openai":
            raise AnalysisError(f"the persona's [llm] style {persona.llm.get('style')!r} is "
                                "not OpenAI-compatible chat completions")
        headers = {str(k): str(v) for k, v in (persona.llm.get("headers") or {}).items()}
        if persona.llm.get("api_key"):
            headers["Authorization"] = f"Bearer {persona.llm['api_key']}"
        return str(persona.llm["url"]), headers

    def _ask(self, persona: Persona, conversation: list[dict[str, str]]
             ) -> tuple[dict[str, Any], str | None, Mapping[str, Any]]:
        url, headers = self._endpoint(persona)
        try:
            response = self.session.post(url, json=request_body(persona, conversation),
                                         headers=headers, timeout=TIMEOUT_S,
                                         allow_redirects=False)
        except requests.RequestException as exc:
            raise AnalysisError(f"no answer ({type(exc).__name__})") from None
        if not 200 <= response.status_code < 300:
            raise AnalysisError(f"HTTP {response.status_code}")
        try:
            body = response.json()
            content = body["choices"][0]["message"]["content"]
            answer = json.loads(content)
        except (ValueError, KeyError, IndexError, TypeError):
            raise AnalysisError("the answer is not a chat completion with JSON content") from None
        try:
            jsonschema.validate(answer, response_schema(persona))
        except jsonschema.ValidationError as exc:
            raise AnalysisError(f"the answer does not fit the schema: {exc.message[:150]}"
                                ) from None
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        model = body.get("model") if isinstance(body.get("model"), str) else None
        return answer, model, usage
