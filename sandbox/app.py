"""The sandbox Flask app: a local stand-in for Agora ConvoAI REST, the SIP/PSTN gateway API
and NCS webhooks."""

from __future__ import annotations

import random

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from sandbox.agent_tools import Spawn, in_thread
from sandbox.clock import Clock
from sandbox.config import SandboxConfig
from sandbox.errors import DEFAULT_REASONS, AgoraError
from sandbox.ncs_sender import Transport
from sandbox.runtime import Sandbox
from sandbox.sip_hooks import HttpPoster
from sandbox.telephony import TelephonyError


def create_sandbox_app(
    config: SandboxConfig | None = None,
    *,
    clock: Clock | None = None,
    transport: Transport | None = None,
    rng: random.Random | None = None,
    start_background: bool = True,
    sip_http: HttpPoster | None = None,
    spawn: Spawn = in_thread,
) -> Flask:
    """Build the app. Unit tests inject a fake clock and a recording transport and pass
    ``start_background=False``, then drive time with ``app.extensions["sandbox"].tick()``.
    ``sip_http`` (default: ``requests``) carries the gateway's lookups and lifecycle webhooks;
    ``spawn`` runs an agent's MCP connection (default: a thread; tests run it inline)."""
    config = config or SandboxConfig.from_env()
    config.validate()
    app = Flask("sandbox")
    app.json.sort_keys = False
    sandbox = Sandbox(config, clock=clock, transport=transport, rng=rng, sip_http=sip_http,
                      spawn=spawn)
    app.extensions["sandbox"] = sandbox

    from sandbox import control, convoai_api, llm, shop, sip_api, sip_control

    app.register_blueprint(convoai_api.bp)
    app.register_blueprint(convoai_api.bp, url_prefix=convoai_api.PREFIXES[1],
                           name="convoai_agora")
    app.register_blueprint(sip_api.bp)
    app.register_blueprint(control.bp)
    app.register_blueprint(sip_control.bp)
    app.register_blueprint(shop.bp)
    app.register_blueprint(llm.bp)

    @app.errorhandler(AgoraError)
    def agora_error(error: AgoraError) -> tuple[Response, int]:
        return jsonify(error.body()), error.status

    @app.errorhandler(TelephonyError)
    def telephony_error(error: TelephonyError) -> tuple[Response, int]:
        return jsonify(error.body()), error.status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        if request.path.startswith(tuple(f"{p}/" for p in convoai_api.PREFIXES)):
            reason = DEFAULT_REASONS.get(status, "InternalError")
            return jsonify(detail=error.description or error.name, reason=reason), status
        return jsonify(error=error.description or error.name), status

    if start_background:
        sandbox.start()
    return app
