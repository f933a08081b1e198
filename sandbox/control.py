"""Control and introspection API under /_sandbox: faults, reset, simulated calls, logs.

This is the tests' side door: it never exists on real Agora. Answers are plain JSON; a bad
request gets 400 ``{"error": "..."}``.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from sandbox.callers import CallSpecError
from sandbox.conversation import ready_scripts
from sandbox.runtime import Sandbox
from sandbox.state import Presence

bp = Blueprint("control", __name__, url_prefix="/_sandbox")


class ControlError(ValueError):
    """A control request the sandbox cannot act on."""


def current_sandbox() -> Sandbox:
    return current_app.extensions["sandbox"]


def _body() -> dict:
    body = request.get_json(force=True, silent=True)
    if body is None and not request.get_data():
        return {}
    if not isinstance(body, dict):
        raise ControlError("body must be a JSON object")
    return body


@bp.errorhandler(ControlError)
@bp.errorhandler(CallSpecError)
def bad_request(error: ValueError) -> tuple[Response, int]:
    return jsonify(error=str(error)), 400


@bp.get("/health")
def health() -> Response:
    sandbox = current_sandbox()
    return jsonify(status="ok", app_id=sandbox.config.app_id,
                   webhook_url=sandbox.world.webhook_url, now=sandbox.clock.now())


@bp.get("/faults")
def get_faults() -> Response:
    sandbox = current_sandbox()
    with sandbox.world.lock:
        return jsonify(sandbox.world.faults.to_json())


@bp.post("/faults")
def set_faults() -> Response:
    sandbox = current_sandbox()
    update = _body()
    with sandbox.world.lock:
        try:
            sandbox.world.faults.merge(update)
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        return jsonify(sandbox.world.faults.to_json())


@bp.post("/reset")
def reset() -> Response:
    current_sandbox().reset()
    return jsonify(status="reset")


@bp.get("/webhook")
def get_webhook() -> Response:
    return jsonify(webhook_url=current_sandbox().world.webhook_url)


@bp.post("/webhook")
def set_webhook() -> Response:
    url = _body().get("webhook_url")
    if not isinstance(url, str) or (url and not url.startswith(("http://", "https://"))):
        raise ControlError("webhook_url must be an http(s) URL or empty")
    sandbox = current_sandbox()
    with sandbox.world.lock:
        sandbox.world.webhook_url = url
    return jsonify(webhook_url=url)


@bp.get("/agents")
def agents() -> Response:
    return jsonify(agents=current_sandbox().agents.summaries())


@bp.post("/agents/<agent_id>/fail")
def fail_agent(agent_id: str) -> Response:
    message = _body().get("message", "agent exits with reason: injected failure")
    current_sandbox().fail_agent(agent_id, str(message))
    return jsonify(agent_id=agent_id, status="FAILED")


@bp.post("/agents/<agent_id>/expire")
def expire_agent(agent_id: str) -> Response:
    """Send ConvoAI's 104 (token expiring) for a live agent, as Agora would before expiry."""
    current_sandbox().expire_agent(agent_id)
    return jsonify(agent_id=agent_id, sent=104)


@bp.post("/agents/<agent_id>/say")
def say(agent_id: str) -> Response:
    """A scripted caller's line: ``{"text", "tool"?, "arguments"?}``. With a tool, the agent
    calls it through its MCP server (sandbox/agent_tools.py) and the answer holds the result:
    ``is_error``, ``text``, ``structured``, and ``failed`` when the server could not be used.
    404 for an agent not running, 409 for a tool the agent has not listed."""
    body = _body()
    text, tool, arguments = body.get("text", ""), body.get("tool"), body.get("arguments", {})
    if not isinstance(text, str):
        raise ControlError("text must be a string")
    if tool is not None and (not isinstance(tool, str) or not tool):
        raise ControlError("tool must be a non-empty string")
    if not isinstance(arguments, dict):
        raise ControlError("arguments must be an object")
    return jsonify(current_sandbox().tools.say(agent_id, text, tool, arguments))


@bp.get("/shop")
def shop_requests() -> Response:
    """What the demo shop received (sandbox/shop.py): every request that reached a tool, and
    how many requests each Idempotency-Key made."""
    sandbox = current_sandbox()
    with sandbox.world.lock:
        received = list(sandbox.world.shop_requests)
    keys: dict[str, int] = {}
    for entry in received:
        keys[entry["idempotency_key"]] = keys.get(entry["idempotency_key"], 0) + 1
    return jsonify(count=len(received), idempotency_keys=keys, requests=received)


@bp.post("/shop/reset")
def reset_shop() -> Response:
    sandbox = current_sandbox()
    with sandbox.world.lock:
        sandbox.world.shop_requests.clear()
    return jsonify(count=0)


@bp.get("/requests")
def requests_log() -> Response:
    return jsonify(requests=current_sandbox().requests(request.args.get("kind") or None))


@bp.get("/calls")
def list_calls() -> Response:
    return jsonify(calls=current_sandbox().calls.listing())


@bp.get("/phone-calls")
def list_phone_calls() -> Response:
    """ConvoAI telephony's /call calls (sandbox/telephony.py): status, outcome, 202s sent."""
    return jsonify(calls=current_sandbox().telephony.listing())


@bp.post("/calls")
def start_call() -> tuple[Response, int]:
    """A simulated caller: ``{"channel"?, "uid"?, "duration_s"?, ..., "script"?}``; with the
    name of a ready script, a caller who plays it (sandbox/scripted_calls.py). 201
    ``{"channel", "uid", "id"}`` (and ``"script"``)."""
    return jsonify(current_sandbox().start_call(_body())), 201


@bp.get("/scripts")
def scripts() -> Response:
    """The ready scripts a call can play (``POST /calls`` with ``"script"``)."""
    return jsonify(scripts=[
        {"name": name, "persona": script.persona, "description": script.description,
         "tools": script.tools}
        for name, script in ready_scripts().items()])


@bp.post("/calls/<call_id>/hangup")
def hang_up(call_id: str) -> Response:
    try:
        current_sandbox().hang_up(call_id)
    except KeyError:
        return jsonify(error=f"no call {call_id}"), 404
    return jsonify(id=call_id, status="left")


@bp.post("/presence")
def set_presence() -> Response:
    """Say whether a caller is in a channel, without sending any NCS event.

    For simulators that send their own signed NCS events to the service: the sandbox's agents
    then greet and take turns while the caller is present, and idle out once they have left.
    ``since`` only moves when presence changes, so repeating a call does not reset the clocks.
    ``scripted``: the caller speaks only through ``/agents/<id>/say`` (no automatic turns).
    """
    body = _body()
    channel, uid, present = body.get("channel"), body.get("uid"), body.get("present")
    scripted = body.get("scripted", False)
    if not isinstance(channel, str) or not channel:
        raise ControlError("channel must be a non-empty string")
    if isinstance(uid, bool) or not isinstance(uid, int) or not 0 <= uid < 2**32:
        raise ControlError("uid must be an integer in [0, 2^32)")
    if not isinstance(present, bool) or not isinstance(scripted, bool):
        raise ControlError("present (and scripted, if given) must be a boolean")
    sandbox = current_sandbox()
    with sandbox.world.lock:
        key = (channel, str(uid))
        known = sandbox.world.presence.get(key)
        if known is None or known.present != present:
            sandbox.world.presence[key] = Presence(present, sandbox.clock.now(), scripted)
        else:
            known.scripted = scripted
    return jsonify(channel=channel, uid=uid, present=present)


@bp.get("/ncs")
def deliveries() -> Response:
    args = request.args
    return jsonify(deliveries=current_sandbox().deliveries(
        productId=args.get("productId", type=int), eventType=args.get("eventType", type=int),
        channel=args.get("channel"),
    ))
