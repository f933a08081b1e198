"""The SIP/PSTN gateway's request body: what its fields accept and how they are encoded.

Every value is a JSON string except the boolean ``video``; phone numbers are masked for logs,
which show only :func:`log_fields` of a body. Used by sip/client.py to check its arguments and
build each action's body, and by sip/service.py to check its input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

REGIONS = frozenset(f"AREA_CODE_{code}" for code in ("NA", "EU", "AS", "JP", "IN", "CN"))
PROMPTS = frozenset({"false", "beep", "lazy", "true"})
LEGS = frozenset({"aleg", "bleg"})
#: Body fields that are phone numbers: logged with all but their last four digits masked.
NUMBER_FIELDS = ("to", "from", "did", "destination")

Value = str | int | bool | Mapping[str, Any] | None


def normalize_region(region: str) -> str:
    """``"na"``, ``"NA"`` or ``"AREA_CODE_NA"`` -> ``"AREA_CODE_NA"``; anything else is refused."""
    if not isinstance(region, str):
        raise ValueError("region must be a string such as 'NA' or 'AREA_CODE_NA'")
    code = region.strip().upper()
    if not code.startswith("AREA_CODE_"):
        code = f"AREA_CODE_{code}"
    if code not in REGIONS:
        raise ValueError(f"unknown region {region!r}; expected one of {sorted(REGIONS)}")
    return code


def mask_number(number: str) -> str:
    """A phone number for logs: only its last four digits (``+1 800 555 0142`` -> ``*******0142``).

    A ``;dtmf=``/``#`` suffix (it may be a PIN) is dropped; SIP URIs are hidden entirely.
    """
    if number.lower().startswith(("sip:", "sips:")):
        return "sip:***"
    digits = re.sub(r"[^0-9]", "", re.split(r"[;#]", number, maxsplit=1)[0])
    if len(digits) <= 4:
        return "****"
    return "*" * (len(digits) - 4) + digits[-4:]


def build_payload(action: str, app_id: str, fields: Mapping[str, Value]) -> dict[str, Any]:
    """The JSON body: every value a string except ``video``; None means "leave it out"."""
    payload: dict[str, Any] = {"action": action, "appid": app_id}
    for name, value in fields.items():
        if value is None:
            continue
        if name == "video":
            if not isinstance(value, bool):
                raise ValueError("video must be a boolean")
            payload[name] = value
        elif isinstance(value, bool):
            raise ValueError(f"{name} must not be a boolean")
        elif isinstance(value, int):
            if value < 0:
                raise ValueError(f"{name} must not be negative")
            payload[name] = str(value)
        elif isinstance(value, Mapping):
            payload[name] = json.dumps(dict(value), separators=(",", ":"))
        elif isinstance(value, str):
            payload[name] = value
        else:
            raise ValueError(f"{name} must be a string")
    return payload


def common_fields(
    webhook_url: str | None,
    audio_scenario: int | str | None,
    sdk_options: Mapping[str, Any] | str | None,
    video: bool | None,
) -> dict[str, Value]:
    """The optional fields inbound, outbound, inboundsip, bridge and rebridge share."""
    if isinstance(sdk_options, str):
        try:
            parsed = json.loads(sdk_options)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise ValueError("sdk_options must be a JSON object (a dict or its JSON text)")
    return {
        "webhook_url": webhook_url,
        "audio_scenario": audio_scenario,
        "sdk_options": sdk_options,
        "video": video,
    }


def required(name: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is required")
    return value


def required_uid(name: str, value: int | str) -> int | str:
    if value is None or value == "":
        raise ValueError(f"{name} is required")
    return value


def check_outbound(prompt: str, timeout_s: int | None) -> None:
    """The two ``outbound`` arguments that are more than required text."""
    if prompt not in PROMPTS:
        raise ValueError(f"prompt must be one of {sorted(PROMPTS)}")
    if timeout_s is not None and (
        isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s <= 0
    ):
        raise ValueError("timeout_s must be a positive number of seconds")


def check_cancel_keys(
    token: str | None,
    channel: str | None,
    uid: int | str | None,
    sip: str | None,
    did: str | None,
    pin: str | None,
) -> None:
    """``cancelcall`` takes exactly one key: ``token`` + ``channel`` (+ ``uid``), or ``sip``, or
    ``did`` + ``pin``."""
    by_channel = token is not None or channel is not None or uid is not None
    by_sip = sip is not None
    by_pin = did is not None or pin is not None
    if sum((by_channel, by_sip, by_pin)) != 1:
        raise ValueError("give exactly one of: token+channel (+uid), sip, or did+pin")
    if by_channel and not (token and channel):
        raise ValueError("cancelling by channel needs both token and channel")
    if by_sip and not sip:
        raise ValueError("sip must not be empty")
    if by_pin and not (did and pin):
        raise ValueError("cancelling by number needs both did and pin")


def log_fields(sent: Mapping[str, Any], body: Any) -> dict[str, Any]:
    """What a log line shows of a sent body and its answer (``body``, or None): the call id,
    channel, region and masked numbers."""
    fields: dict[str, Any] = {}
    callid = sent.get("callid") or (body.get("callid") if isinstance(body, dict) else None)
    if isinstance(callid, str) and callid:
        fields["callid"] = callid
    for name in ("channel", "region"):
        if name in sent:
            fields[name] = sent[name]
    for name in NUMBER_FIELDS:
        value = sent.get(name)
        if name == "did" and value is None and isinstance(body, dict):
            value = body.get("did")
        if isinstance(value, str) and value:
            fields[name] = mask_number(value)
    return fields
