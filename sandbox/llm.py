"""An OpenAI-compatible chat completions endpoint, offline: ``POST /v1/chat/completions``.

The service's post-call analysis (calls/analysis.py) sends it the transcript and a
``response_format`` of type ``json_schema``; the answer is deterministic, derived from the
transcript, and valid against the schema asked for, so ``make run`` and the tests get analyses
without any network. ``POST /_sandbox/llm {"fail": N}`` makes the next N requests answer 503;
``GET /_sandbox/llm`` shows how many requests came and the last one's body.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from sandbox.control import current_sandbox

bp = Blueprint("llm", __name__)
MODEL = "sandbox-analyst-1"
DIGITS = re.compile(r"\d[\d\s-]{2,}\d")


@bp.post("/v1/chat/completions")
def chat_completions() -> Response | tuple[Response, int]:
    world = current_sandbox().world
    body = request.get_json(silent=True)
    with world.lock:
        world.llm_requests.append(body)
        if world.llm_failures > 0:
            world.llm_failures -= 1
            return jsonify(error={"message": "sandbox: injected failure", "type": "server"}), 503
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return jsonify(error={"message": "messages is required", "type": "invalid_request"}), 400
    text = "\n".join(str(m.get("content", "")) for m in body["messages"]
                     if isinstance(m, dict) and m.get("role") == "user")
    schema = (((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
              or {"type": "object", "properties": {"summary": {"type": "string"}}})
    content = json.dumps(_fill(schema, text, ""))
    return jsonify({
        "id": f"chatcmpl-sandbox-{len(world.llm_requests)}", "object": "chat.completion",
        "model": MODEL, "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": len(text.split()), "completion_tokens": len(content.split()),
                  "total_tokens": len(text.split()) + len(content.split())}})


@bp.route("/_sandbox/llm", methods=["GET", "POST"])
def control() -> Response:
    world = current_sandbox().world
    with world.lock:
        if request.method == "POST":
            body = request.get_json(silent=True) or {}
            world.llm_failures = int(body.get("fail", 0)) if isinstance(body, dict) else 0
        return jsonify(requests=len(world.llm_requests), failing=world.llm_failures,
                       last=world.llm_requests[-1] if world.llm_requests else None)


def _caller_lines(text: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.startswith("Caller:")]


def _fill(schema: Any, text: str, name: str) -> Any:
    """A value for ``schema`` taken from the transcript ``text``, deterministically."""
    if not isinstance(schema, dict):
        return None
    lowered = text.lower()
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        for option in schema["enum"]:
            if isinstance(option, str) and option.lower() in lowered:
                return option
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {key: _fill(sub, text, key)
                for key, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return []
    if kind == "boolean":
        return name == "success" or any(w in lowered for w in ("yes", "thank", "book"))
    if kind in ("integer", "number"):
        return max(0, int(schema.get("minimum", 0)))
    if kind == "string":
        caller = _caller_lines(text)
        if name == "summary":
            said = caller[0][:120] if caller else "nothing"
            return (f"The caller said: \"{said}\". The conversation had "
                    f"{len(text.splitlines())} turns.")
        if "number" in name:
            found = DIGITS.search(" ".join(caller))
            return re.sub(r"\D", "", found.group()) if found else ""
        return caller[0][:60] if caller else ""
    return None
