"""A client for Agora's SIP/PSTN gateway API (reference B.1): one URL, the action in the body.

On the shared upstream transport (upstream/base.py): ``Authorization: Basic <the value Agora
issued>`` on every request, an explicit timeout on every call, and every body value a JSON string
except the boolean ``video``. ``outbound`` gets a long read timeout because the gateway answers
it only once the phone is answered or the call has failed.

Retries: only ``endcall`` and ``cancelcall`` are repeated (once, after no answer or a 503),
because ending something twice is harmless. Nothing that acts on a live phone call
(``outbound``, ``transfer``, ``send_dtmf``, the bridges) is, and neither are reservations.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from upstream.base import FailureHook, TimeoutSpec, UpstreamClient
from upstream.errors import MALFORMED_RESPONSE, UpstreamFailure
from upstream.retry import NO_RETRY, RetryPolicy

from .errors import GatewayAuthError, GatewayError, GatewayUnavailable, error_from_response

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 10.0)
#: ``outbound`` returns once the call is answered or failed: allow for a full ring.
DEFAULT_OUTBOUND_TIMEOUT: tuple[float, float] = (3.05, 90.0)

REGIONS = frozenset(f"AREA_CODE_{code}" for code in ("NA", "EU", "AS", "JP", "IN", "CN"))
PROMPTS = frozenset({"false", "beep", "lazy", "true"})
LEGS = frozenset({"aleg", "bleg"})
#: Actions that may be sent twice: ending a call or reservation that is already gone is a 404.
RETRYABLE_ACTIONS = frozenset({"endcall", "cancelcall"})
MAX_ATTEMPTS = 2
#: Body fields that are phone numbers: logged with all but their last four digits masked.
_NUMBER_FIELDS = ("to", "from", "did", "destination")

Value = str | int | bool | Mapping[str, Any] | None


@dataclass(frozen=True)
class Reservation:
    """A dial-in number plus PIN that leads into a channel (``inbound``)."""

    did: str
    display: str
    pin: str


@dataclass(frozen=True)
class OutboundResult:
    """An answered outbound call; ``callid`` is what ``endcall``/``transfer`` etc. take."""

    callid: str


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


def retry_policy(action: str, delay_s: float = 0.5) -> RetryPolicy:
    """How ``action`` is retried: once after ``delay_s`` if it may repeat, else never."""
    if action not in RETRYABLE_ACTIONS:
        return NO_RETRY
    return RetryPolicy(max_attempts=MAX_ATTEMPTS, base_delay_s=delay_s, max_delay_s=delay_s,
                       budget_s=math.inf, jitter=False)


def should_retry(action: str, error: GatewayError, attempt: int) -> bool:
    """Whether to send ``action`` again after ``error`` ended attempt number ``attempt``."""
    return retry_policy(action).next_delay(attempt, error, 0.0, 0.0) is not None


class GatewayClient(UpstreamClient):
    """SIP/PSTN gateway calls for one App ID."""

    log_name = "sip"
    logger = logger

    def __init__(
        self,
        api_url: str,
        auth: str,
        app_id: str,
        *,
        timeout: TimeoutSpec = DEFAULT_TIMEOUT,
        outbound_timeout: TimeoutSpec = DEFAULT_OUTBOUND_TIMEOUT,
        session: requests.Session | None = None,
        retry_delay_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_failure: FailureHook | None = None,
    ) -> None:
        if not api_url:
            raise ValueError("api_url is required")
        # The gateway is optional (provisioned per App ID on request), so an empty credential
        # or App ID is allowed here; every call then fails with GatewayAuthError unsent.
        if auth != auth.strip() or any(ch in auth for ch in "\r\n"):
            raise ValueError("auth must not have surrounding whitespace or line breaks")
        if auth.lower().startswith("basic "):
            raise ValueError("auth is the value Agora issued, without the 'Basic ' scheme")
        super().__init__(api_url, timeout=timeout, session=session, retry=NO_RETRY,
                         sleep=sleep, clock=clock, on_failure=on_failure)
        self._url = api_url
        self._app_id = app_id
        self._auth = auth
        self._outbound_timeout = outbound_timeout
        self._retry_delay_s = retry_delay_s

    @property
    def configured(self) -> bool:
        """Whether there is a credential and an App ID to call the gateway with."""
        return bool(self._auth and self._app_id)

    def __repr__(self) -> str:
        return f"GatewayClient({self._url!r}, app_id={self._app_id!r})"

    # -- into a channel --------------------------------------------------------------------

    def inbound(self, channel: str, region: str, **leg: Any) -> Reservation:
        """Reserve a dial-in number and PIN that lead into ``channel``. Not retried. ``leg``:
        token, uid, webhook_url, audio_scenario, sdk_options, video."""
        body = self._into_channel("inbound", channel, region, **leg)
        return Reservation(
            did=self._result_str(body, "did", "inbound"),
            display=body.get("display") if isinstance(body.get("display"), str) else "",
            pin=self._result_str(body, "pin", "inbound"),
        )

    def inbound_sip(self, channel: str, region: str, **leg: Any) -> str:
        """A one-off SIP URI that leads into ``channel``. Not retried. ``leg`` as for
        :meth:`inbound`."""
        body = self._into_channel("inboundsip", channel, region, **leg)
        return self._result_str(body, "sip", "inboundsip")

    def _into_channel(
        self,
        action: str,
        channel: str,
        region: str,
        *,
        token: str | None = None,
        uid: int | str | None = None,
        webhook_url: str | None = None,
        audio_scenario: int | str | None = None,
        sdk_options: Mapping[str, Any] | str | None = None,
        video: bool | None = None,
    ) -> dict[str, Any]:
        """The gateway's two reservations into a channel share one request shape."""
        return self._call(
            action,
            {
                "channel": _required("channel", channel),
                "region": normalize_region(region),
                "token": token,
                "uid": uid,
                **_common(webhook_url, audio_scenario, sdk_options, video),
            },
        )

    def outbound(
        self,
        *,
        channel: str,
        region: str,
        to: str,
        caller_id: str,
        prompt: str = "false",
        token: str | None = None,
        uid: int | str | None = None,
        timeout_s: int | None = None,
        sip: str | None = None,
        sip_domain: str | None = None,
        webhook_url: str | None = None,
        audio_scenario: int | str | None = None,
        sdk_options: Mapping[str, Any] | str | None = None,
        video: bool | None = None,
    ) -> OutboundResult:
        """Dial ``to`` and bridge it into ``channel`` once answered.

        Blocks until the call is answered or has failed (hence ``outbound_timeout``). A busy or
        invalid number raises GatewayRejected. Never retried: a second request rings twice.
        """
        if prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {sorted(PROMPTS)}")
        if timeout_s is not None and (
            isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s <= 0
        ):
            raise ValueError("timeout_s must be a positive number of seconds")
        body = self._call(
            "outbound",
            {
                "channel": _required("channel", channel),
                "region": normalize_region(region),
                "to": _required("to", to),
                "from": _required("caller_id", caller_id),
                "prompt": prompt,
                "token": token,
                "uid": uid,
                "timeout": timeout_s,
                "sip": sip,
                "sip_domain": sip_domain,
                **_common(webhook_url, audio_scenario, sdk_options, video),
            },
            timeout=self._outbound_timeout,
        )
        return OutboundResult(callid=self._result_str(body, "callid", "outbound"))

    # -- ending ----------------------------------------------------------------------------

    def end_call(self, callid: str) -> None:
        """Hang up a live call. CallNotFound (404) means it is already gone. Retried once."""
        self._call("endcall", {"callid": _required("callid", callid)})

    def cancel_call(
        self,
        *,
        token: str | None = None,
        channel: str | None = None,
        uid: int | str | None = None,
        sip: str | None = None,
        did: str | None = None,
        pin: str | None = None,
    ) -> None:
        """Cancel a reservation (or stop the call that came through it). Exactly one key:
        ``token`` + ``channel`` (+ ``uid``), or ``sip``, or ``did`` + ``pin``. Retried once."""
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
        self._call(
            "cancelcall",
            {"token": token, "channel": channel, "uid": uid, "sip": sip, "did": did, "pin": pin},
        )

    # -- control of a live call ------------------------------------------------------------

    def transfer(self, callid: str, destination: str, *, leg: str | None = None) -> None:
        """SIP REFER the phone leg to ``destination``; success means only that the REFER was
        accepted. The Agora bridge ends. Not retried. ``leg`` is checked by the caller
        (sip/service.py)."""
        self._call(
            "transfer",
            {
                "callid": _required("callid", callid),
                "destination": _required("destination", destination),
                "leg": leg,
            },
        )

    def send_dtmf(self, callid: str, digits: str) -> None:
        """Play DTMF ``digits`` (``0-9``, ``*``, ``#``, checked by the caller: sip/service.py)
        on the phone leg. Not retried."""
        self._call("send_dtmf", {"callid": _required("callid", callid), "digits": digits})

    def bridge(
        self,
        callid: str,
        channel: str,
        token: str,
        uid: int | str,
        *,
        webhook_url: str | None = None,
        audio_scenario: int | str | None = None,
        sdk_options: Mapping[str, Any] | str | None = None,
        video: bool | None = None,
    ) -> None:
        """Attach a live call to ``channel`` (``token`` is the App ID when tokens are off)."""
        self._call(
            "bridge",
            {
                "callid": _required("callid", callid),
                "channel": _required("channel", channel),
                "token": _required("token", token),
                "uid": _required_uid("uid", uid),
                **_common(webhook_url, audio_scenario, sdk_options, video),
            },
        )

    def unbridge(self, callid: str) -> None:
        """Detach the call from Agora and keep the phone leg up."""
        self._call("unbridge", {"callid": _required("callid", callid)})

    def rebridge(
        self,
        callid: str,
        channel: str,
        token: str,
        uid: int | str,
        current_channel: str,
        current_uid: int | str,
        *,
        webhook_url: str | None = None,
        audio_scenario: int | str | None = None,
        sdk_options: Mapping[str, Any] | str | None = None,
        video: bool | None = None,
    ) -> None:
        """Move a bridged call to another channel without dropping the phone leg. A refusal
        ("current channel/uid mismatch", "join failed: ...") raises GatewayRejected."""
        self._call(
            "rebridge",
            {
                "callid": _required("callid", callid),
                "channel": _required("channel", channel),
                "token": _required("token", token),
                "uid": _required_uid("uid", uid),
                "current_channel": _required("current_channel", current_channel),
                "current_uid": _required_uid("current_uid", current_uid),
                **_common(webhook_url, audio_scenario, sdk_options, video),
            },
        )

    # -- transport -------------------------------------------------------------------------

    def _call(
        self, action: str, fields: Mapping[str, Value], *, timeout: TimeoutSpec | None = None
    ) -> dict[str, Any]:
        """Send one action (retried only per :func:`retry_policy`); return the success body.
        Logged as ``sip.request`` without the credential, tokens or full phone numbers."""
        if not self.configured:
            raise GatewayAuthError("no gateway credential or App ID configured", action=action)
        payload = _payload(action, self._app_id, fields)
        resp = self._send(
            "POST", self._url, {"action": action},
            policy=retry_policy(action, self._retry_delay_s), timeout=timeout, json=payload,
            headers={"Authorization": f"Basic {self._auth}", "Accept": "application/json"},
        )
        return self._json_object(resp, action)

    def _result_str(self, body: dict[str, Any], key: str, action: str) -> str:
        value = body.get(key)
        if not isinstance(value, str) or not value:
            raise self._malformed(action, f"missing {key}")
        return value

    def _error_for(self, resp: requests.Response, sent: Any) -> UpstreamFailure | None:
        # Any value we sent that the gateway might echo back is blanked out of the reason.
        secrets = [self._auth, *(sent.get(k) for k in ("token", "sip", "pin", *_NUMBER_FIELDS))]
        return error_from_response(resp, action=sent["action"], secrets=secrets)

    def _unavailable(self, exc: Exception, context: Mapping[str, Any]) -> UpstreamFailure:
        # Not str(exc): keep the message to what we chose to say.
        return GatewayUnavailable(type(exc).__name__, action=context["action"],
                                  reason="no response")

    def _malformed_error(
        self, what: str, problem: str, resp: requests.Response | None
    ) -> UpstreamFailure:
        """A 2xx we cannot use: the gateway's fault, and not one a retry would fix."""
        return GatewayError(
            problem,
            status=resp.status_code if resp is not None else 200,
            reason=MALFORMED_RESPONSE,
            action=what,
            response=resp,
        )

    def _log_extra(self, sent: Any, resp: requests.Response | None) -> dict[str, Any]:
        """The call id, channel, region and masked numbers: never the credential, a token, a
        SIP URI or a full number."""
        body = _loose_json(resp)
        fields: dict[str, Any] = {}
        callid = sent.get("callid") or (body.get("callid") if isinstance(body, dict) else None)
        if isinstance(callid, str) and callid:
            fields["callid"] = callid
        for name in ("channel", "region"):
            if name in sent:
                fields[name] = sent[name]
        for name in _NUMBER_FIELDS:
            value = sent.get(name)
            if name == "did" and value is None and isinstance(body, dict):
                value = body.get("did")
            if isinstance(value, str) and value:
                fields[name] = mask_number(value)
        return fields


def _payload(action: str, app_id: str, fields: Mapping[str, Value]) -> dict[str, Any]:
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


def _common(
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


def _required(name: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is required")
    return value


def _required_uid(name: str, value: int | str) -> int | str:
    if value is None or value == "":
        raise ValueError(f"{name} is required")
    return value


def _loose_json(resp: requests.Response | None) -> Any:
    """A success's JSON for the log line, or None when there is none."""
    if resp is None or not resp.content or not 200 <= resp.status_code < 300:
        return None
    try:
        return resp.json()
    except ValueError:
        return None
