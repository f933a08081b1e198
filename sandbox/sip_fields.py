"""Check a gateway API body the way the real gateway is documented to (reference B.1).

Every body value is a JSON string except the boolean ``video``; anything missing, mistyped or
unusable is a 500 "Missing Parameters" (the doc's only status for bad input); an action we do
not know is a 400. Messages name fields, never their values (a value may be a token).
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.sip_models import REGION_NUMBERS, SipError, bad_parameters, is_decimal

#: Fields each action requires (non-empty), beyond ``action`` and ``appid``.
REQUIRED: dict[str, tuple[str, ...]] = {
    "inbound": ("channel", "region"),
    "inboundsip": ("channel", "region"),
    "outbound": ("channel", "region", "to", "from", "prompt"),
    "endcall": ("callid",),
    "cancelcall": (),  # one of three keys; see _check_cancel_key
    "bridge": ("callid", "channel", "token", "uid"),
    "unbridge": ("callid",),
    "rebridge": ("callid", "channel", "token", "uid", "current_channel", "current_uid"),
    "send_dtmf": ("callid", "digits"),
    "transfer": ("callid", "destination"),
}
PROMPTS = ("false", "beep", "lazy", "true")
LEGS = ("aleg", "bleg")


def parse_request(body: Any, *, app_id: str) -> dict[str, Any]:
    """Return the body if the gateway would act on it, else raise the SipError it answers."""
    if not isinstance(body, dict):
        raise bad_parameters("the body must be a JSON object")
    mistyped = sorted(
        name for name, value in body.items()
        if not isinstance(value, bool if name == "video" else str)
    )
    if mistyped:
        raise bad_parameters(", ".join(mistyped) + " must be JSON strings"
                             + (" (video a boolean)" if "video" in mistyped else ""))
    action = body.get("action")
    if not action:
        raise bad_parameters("action")
    if action not in REQUIRED:
        raise SipError(400, f"unknown action {action!r}")
    missing = [name for name in ("appid", *REQUIRED[action]) if not body.get(name)]
    if missing:
        raise bad_parameters(", ".join(missing))
    if body["appid"] != app_id:
        raise SipError(401, "Unauthorized: this credential is not provisioned for that appid")
    if action == "cancelcall":
        _check_cancel_key(body)
    _check_values(body)
    return body


def _check_cancel_key(body: dict[str, Any]) -> None:
    if not (body.get("sip") or (body.get("did") and body.get("pin"))
            or (body.get("token") and body.get("channel"))):
        raise bad_parameters("cancelcall needs token and channel, or sip, or did and pin")


def _check_values(body: dict[str, Any]) -> None:
    """Values that are present must be usable; the first bad one is reported."""
    checks = {
        "region": lambda v: v in REGION_NUMBERS,
        "uid": _is_uid,
        "current_uid": _is_uid,
        "webhook_url": lambda v: v.startswith(("http://", "https://")),
        "sdk_options": _is_json_object,
        "audio_scenario": is_decimal,
        "prompt": lambda v: v in PROMPTS,
        "timeout": lambda v: is_decimal(v) and int(v) > 0,
        "digits": lambda v: all(ch in "0123456789*#" for ch in v),
        "leg": lambda v: v in LEGS,
    }
    for name, ok in checks.items():
        value = body.get(name)
        if value and not ok(value):
            raise bad_parameters(f"{name} is not valid")


def _is_uid(value: str) -> bool:
    return is_decimal(value) and int(value) < 2**32


def _is_json_object(value: str) -> bool:
    try:
        return isinstance(json.loads(value), dict)
    except ValueError:
        return False
