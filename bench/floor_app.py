"""The floor: the least any correct webhook service must do before ConvoAI hears of a call.

Served by the service's own gunicorn configuration (``gunicorn -c gunicorn.conf.py
bench.floor_app:app``), so the web server, workers and threads are the same. Its /webhook reads
the raw body, verifies the signature, parses the JSON, builds the same join body (token
included) and sends the join inline with the service's own ConvoAI client, then answers 200.
No store, no
duplicate or ordering checks, no background pool: it is what the service's overhead is measured
against, not a service.
"""

from __future__ import annotations

import json
import secrets

from flask import Flask, jsonify, request

from convoai.client import ConvoAIClient
from convoai.errors import ConvoAIError
from convoai.payload import build_join_properties
from ncs.signature import NamedSecret, NcsVerifier, SignatureError
from personas import load_registry
from personas.startup import load_settings

settings = load_settings()


registry = load_registry(settings)
verifier = NcsVerifier([NamedSecret("AGORA_NCS_SECRET", settings.agora_ncs_secret)])
JOIN_EVENTS = (103, 105, 107)
# The same client the service uses, so both send the join the same way and the comparison
# measures only what the service adds (the store, the lifecycle rules).
convoai = ConvoAIClient(settings.convoai_api_url, settings.agora_app_id,
                        settings.agora_customer_id, settings.agora_customer_secret)

app = Flask(__name__)


@app.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify(status="ok")


@app.post("/webhook")
def webhook():  # type: ignore[no-untyped-def]
    raw = request.get_data(cache=False)
    try:
        verifier.verify(raw, request.headers)
    except SignatureError:
        return jsonify(status="error"), 401
    data = json.loads(raw)
    payload = data.get("payload") or {}
    if data.get("productId") != 1 or data.get("eventType") not in JOIN_EVENTS or \
            str(payload.get("uid")) != str(settings.pstn_uid):
        return jsonify(status="ignored")
    call_id = secrets.token_hex(8)
    channel = payload["channelName"]
    properties = build_join_properties(settings, registry.route(channel), call_id=call_id,
                                       channel=channel)
    try:
        agent = convoai.join(f"{settings.agent_name_prefix}-{call_id}", properties,
                             budget_s=settings.join_budget_s)
    except ConvoAIError as exc:
        return jsonify(status="error", upstream=exc.status), 502
    return jsonify(status="ok", agent_id=agent.agent_id)
