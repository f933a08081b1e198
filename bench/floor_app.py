"""The floor: the least any correct webhook service must do before ConvoAI hears of a call.

Served by the service's own gunicorn configuration (``gunicorn -c gunicorn.conf.py
bench.floor_app:app``), so the web server, workers and threads are the same. Its /webhook reads
the raw body, verifies the signature, parses the JSON, builds the same join body (token
included) and POSTs the join inline on a keep-alive session, then answers 200. No store, no
duplicate or ordering checks, no background pool: it is what the service's overhead is measured
against, not a service.
"""

from __future__ import annotations

import inspect
import json
import secrets

import requests
from flask import Flask, jsonify, request
from requests.auth import HTTPBasicAuth

from config import Settings
from convoai.payload import build_join_properties
from ncs.signature import NamedSecret, NcsVerifier, SignatureError

settings = Settings.from_env()


def _join_properties_builder():  # type: ignore[no-untyped-def]
    """build_join_properties as the service calls it: with the call's persona (routed by
    channel, as the service picks it) once personas exist, else from the settings alone."""
    if "persona" not in inspect.signature(build_join_properties).parameters:
        return lambda call_id, channel: build_join_properties(
            settings, call_id=call_id, channel=channel)
    from personas.registry import load_registry

    registry = load_registry(settings)
    return lambda call_id, channel: build_join_properties(
        settings, registry.route(channel), call_id=call_id, channel=channel)


join_properties = _join_properties_builder()
verifier = NcsVerifier([NamedSecret("AGORA_NCS_SECRET", settings.agora_ncs_secret)])
JOIN_URL = f"{settings.convoai_api_url.rstrip('/')}/v2/projects/{settings.agora_app_id}/join"
JOIN_EVENTS = (103, 105, 107)

session = requests.Session()
session.auth = HTTPBasicAuth(settings.agora_customer_id, settings.agora_customer_secret)
session.headers["Accept"] = "application/json"

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
    properties = join_properties(call_id, channel)
    resp = session.post(JOIN_URL, json={"name": f"{settings.agent_name_prefix}-{call_id}",
                                        "properties": properties}, timeout=(3.05, 5.0))
    if resp.status_code != 200:
        return jsonify(status="error", upstream=resp.status_code), 502
    return jsonify(status="ok", agent_id=resp.json()["agent_id"])
