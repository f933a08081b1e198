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

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from upstream.base import FailureHook, TimeoutSpec, UpstreamClient
from upstream.errors import MALFORMED_RESPONSE, UpstreamFailure
from upstream.retry import NO_RETRY, RetryPolicy

from .errors import GatewayAuthError, GatewayError, GatewayUnavailable, error_from_response
from .models import OutboundResult, Reservation
from .payload import (
    NUMBER_FIELDS,
    Value,
    build_payload,
    check_cancel_keys,
    check_outbound,
    common_fields,
    log_fields,
    normalize_region,
    required,
    required_uid,
)

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 10.0)
#: ``outbound`` returns once the call is answered or failed: allow for a full ring.
DEFAULT_OUTBOUND_TIMEOUT: tuple[float, float] = (3.05, 90.0)

#: Actions that may be sent twice: ending a call or reservation that is already gone is a 404.
RETRYABLE_ACTIONS = frozenset({"endcall", "cancelcall"})
MAX_ATTEMPTS = 2


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
                "channel": required("channel", channel),
                "region": normalize_region(region),
                "token": token,
                "uid": uid,
                **common_fields(webhook_url, audio_scenario, sdk_options, video),
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
        check_outbound(prompt, timeout_s)
        body = self._call(
            "outbound",
            {
                "channel": required("channel", channel),
                "region": normalize_region(region),
                "to": required("to", to),
                "from": required("caller_id", caller_id),
                "prompt": prompt,
                "token": token,
                "uid": uid,
                "timeout": timeout_s,
                "sip": sip,
                "sip_domain": sip_domain,
                **common_fields(webhook_url, audio_scenario, sdk_options, video),
            },
            timeout=self._outbound_timeout,
        )
        return OutboundResult(callid=self._result_str(body, "callid", "outbound"))

    # -- ending ----------------------------------------------------------------------------

    def end_call(self, callid: str) -> None:
        """Hang up a live call. CallNotFound (404) means it is already gone. Retried once."""
        self._call("endcall", {"callid": required("callid", callid)})

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
        check_cancel_keys(token, channel, uid, sip, did, pin)
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
                "callid": required("callid", callid),
                "destination": required("destination", destination),
                "leg": leg,
            },
        )

    def send_dtmf(self, callid: str, digits: str) -> None:
        """Play DTMF ``digits`` (``0-9``, ``*``, ``#``, checked by the caller: sip/service.py)
        on the phone leg. Not retried."""
        self._call("send_dtmf", {"callid": required("callid", callid), "digits": digits})

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
                "callid": required("callid", callid),
                "channel": required("channel", channel),
                "token": required("token", token),
                "uid": required_uid("uid", uid),
                **common_fields(webhook_url, audio_scenario, sdk_options, video),
            },
        )

    def unbridge(self, callid: str) -> None:
        """Detach the call from Agora and keep the phone leg up."""
        self._call("unbridge", {"callid": required("callid", callid)})

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
                "callid": required("callid", callid),
                "channel": required("channel", channel),
                "token": required("token", token),
                "uid": required_uid("uid", uid),
                "current_channel": required("current_channel", current_channel),
                "current_uid": required_uid("current_uid", current_uid),
                **common_fields(webhook_url, audio_scenario, sdk_options, video),
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
        payload = build_payload(action, self._app_id, fields)
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
        secrets = [self._auth, *(sent.get(k) for k in ("token", "sip", "pin", *NUMBER_FIELDS))]
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
        return log_fields(sent, _loose_json(resp))


def _loose_json(resp: requests.Response | None) -> Any:
    """A success's JSON for the log line, or None when there is none."""
    if resp is None or not resp.content or not 200 <= resp.status_code < 300:
        return None
    try:
        return resp.json()
    except ValueError:
        return None
