"""ConvoAI v2 REST stand-in, mounted at /convoai (so CONVOAI_API_URL = <sandbox>/convoai) and
again at Agora's own path, /api/conversational-ai-agent, so a client that only lets you change
the host (Agora's SDK: ``AGORA_AGENTS_API_BASE_URL=<sandbox>``) reaches it unchanged.

Views only authenticate, parse and delegate to sandbox.agents; every request is recorded (with
secrets fingerprinted) for /_sandbox/requests. Bodies and headers are never logged.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from sandbox.errors import AgoraError, bad_field
from sandbox.runtime import Sandbox
from sandbox.turns import DEFAULT_PAGE_SIZE

bp = Blueprint("convoai", __name__, url_prefix="/convoai")
#: Where the blueprint is mounted: the sandbox's own prefix, then Agora's (app.py).
PREFIXES = ("/convoai", "/api/conversational-ai-agent")
PROJECT = "/v2/projects/<app_id>"
AGENT = PROJECT + "/agents/<agent_id>"


def current_sandbox() -> Sandbox:
    return current_app.extensions["sandbox"]


def _json_body(*, required: bool) -> Any:
    """The parsed body; a body that is present but not JSON is InvalidRequestBody."""
    body = request.get_json(force=True, silent=True)
    if body is None and (required or request.get_data()):
        raise AgoraError(400, "InvalidRequestBody", "request body is not valid JSON")
    return body


@bp.before_request
def authenticate() -> None:
    sandbox = current_sandbox()
    sandbox.check_auth(request.headers.get("Authorization"))
    sandbox.check_app_id((request.view_args or {}).get("app_id", ""))


@bp.after_request
def record(response: Response) -> Response:
    kind = (request.endpoint or "convoai.unknown").rsplit(".", 1)[-1]
    current_sandbox().record_request(
        method=request.method, path=request.path, kind=kind, status=response.status_code,
        body=request.get_json(force=True, silent=True), query=request.args.to_dict(),
        authorization=request.headers.get("Authorization"),
    )
    return response


@bp.post(PROJECT + "/join")
def join(app_id: str) -> Response:
    sandbox = current_sandbox()
    return jsonify(sandbox.with_faults(
        "join", lambda: sandbox.agents.join(_json_body(required=True))))


@bp.post(AGENT + "/leave")
def leave(app_id: str, agent_id: str) -> Response:
    sandbox = current_sandbox()
    _json_body(required=False)
    return jsonify(sandbox.with_faults("leave", lambda: sandbox.agents.leave(agent_id)))


@bp.post(AGENT + "/update")
def update(app_id: str, agent_id: str) -> Response:
    return jsonify(current_sandbox().agents.update(agent_id, _json_body(required=False) or {}))


@bp.get(AGENT)
def query(app_id: str, agent_id: str) -> Response:
    return jsonify(current_sandbox().agents.query(agent_id))


@bp.get(PROJECT + "/agents")
def list_agents(app_id: str) -> Response:
    args = request.args
    limit = _int_arg("limit", 20)
    if not 1 <= limit <= 1000:
        raise bad_field("limit: Input should be between 1 and 1000")
    try:
        states = {int(part) for part in args.get("state", "2").split(",") if part.strip()}
    except ValueError:
        raise bad_field("state: Input should be comma-separated state codes") from None
    return jsonify(current_sandbox().agents.listing(
        channel=args.get("channel") or None, from_time=_number_arg("from_time"),
        to_time=_number_arg("to_time"), states=states or {2}, limit=limit,
        cursor=args.get("cursor") or None,
    ))


@bp.get(AGENT + "/history")
def history(app_id: str, agent_id: str) -> Response:
    return jsonify(current_sandbox().agents.history(agent_id))


@bp.post(AGENT + "/speak")
def speak(app_id: str, agent_id: str) -> Response:
    return jsonify(current_sandbox().agents.speak(agent_id, _json_body(required=True)))


@bp.post(AGENT + "/interrupt")
def interrupt(app_id: str, agent_id: str) -> Response:
    _json_body(required=False)
    return jsonify(current_sandbox().agents.interrupt(agent_id))


@bp.post(AGENT + "/think")
def think(app_id: str, agent_id: str) -> Response:
    return jsonify(current_sandbox().agents.think(agent_id, _json_body(required=True)))


# -- ConvoAI's telephony (sandbox/telephony.py); errors are {error_type, description} --


@bp.post(PROJECT + "/call")
def place_call(app_id: str) -> Response:
    return jsonify(current_sandbox().place_phone_call(_json_body(required=True)))


@bp.get(PROJECT + "/calls/<agent_id>")
def call_status(app_id: str, agent_id: str) -> Response:
    return jsonify(current_sandbox().telephony.status(agent_id))


@bp.post(PROJECT + "/calls/<agent_id>/hangup")
def hang_up_call(app_id: str, agent_id: str) -> Response:
    _json_body(required=False)
    current_sandbox().hang_up_phone_call(agent_id)
    return jsonify({})


@bp.get(AGENT + "/turns")
def turns(app_id: str, agent_id: str) -> Response:
    page_index = _int_arg("page_index", 1)
    page_size = _int_arg("page_size", DEFAULT_PAGE_SIZE)
    # Agora documents no bounds; what cannot be a page is refused like any bad field.
    for name, value in (("page_index", page_index), ("page_size", page_size)):
        if value < 1:
            raise bad_field(f"{name}: Input should be greater than or equal to 1")
    return jsonify(current_sandbox().agents.turns(agent_id, page_index=page_index,
                                                  page_size=page_size))


def _int_arg(name: str, default: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise bad_field(f"{name}: Input should be a valid integer") from None


def _number_arg(name: str) -> float | None:
    text = request.args.get(name)
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise bad_field(f"{name}: Input should be a valid number") from None
