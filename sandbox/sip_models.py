"""What the SIP/PSTN gateway stand-in remembers: number reservations, calls, their numbering.

Plain records, mutated only under the world lock. Reference: ncs-sip-token.md Part B.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from convoai.tokens import MAX_TOKEN_LIFETIME_S
from sandbox.redact import fingerprint
from sandbox.sip_hooks import Hook

#: The callee's (or caller's) RTC uid when a request names none, as in Agora's own sample.
DEFAULT_UID = "111"
#: How long an unused ``inbound``/``inboundsip`` reservation stays valid. Agora does not say; we
#: ASSUME as long as the longest token it can carry (24 h): the service (sip/service.py,
#: ``provision``) dates its reservations' expiry with this same constant.
RESERVATION_TTL_S = float(MAX_TOKEN_LIFETIME_S)

#: One dial-in number per region (digits, and how the gateway prints it). A reservation is this
#: number plus a PIN, so several reservations share a region's number.
REGION_NUMBERS = {
    "AREA_CODE_NA": ("18005550142", "+1 (800) 555-0142"),
    "AREA_CODE_EU": ("442071838750", "+44 20 7183 8750"),
    "AREA_CODE_AS": ("6531651234", "+65 3165 1234"),
    "AREA_CODE_JP": ("81345789012", "+81 3-4578-9012"),
    "AREA_CODE_IN": ("918046801234", "+91 80 4680 1234"),
    "AREA_CODE_CN": ("861058001234", "+86 10 5800 1234"),
}
PIN_NUMBERS = frozenset(did for did, _ in REGION_NUMBERS.values())
LIVE = ("bridged", "unbridged")


class SipError(Exception):
    """A gateway API failure: the HTTP status and the text of the ``{"error": ...}`` body.

    Agora documents the statuses (401, 404, 500, 503) but no error body; ``{"error": str}`` is
    our assumption (Agora's AI-Phone-Agent sample reads an ``error`` key when there is one).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def bad_parameters(detail: str) -> SipError:
    """500, the gateway's one documented answer to a request it cannot use."""
    return SipError(500, f"Missing Parameters: {detail}")


def unknown_call(callid: str) -> SipError:
    return SipError(404, f"call {callid} not found or already ended")


def is_decimal(text: str) -> bool:
    """Only ASCII digits, at least one (str.isdigit also accepts "²")."""
    return re.fullmatch(r"[0-9]+", text) is not None


def digits_of(number: str) -> str:
    """``"+1 (800) 555-0100;dtmf=12"`` -> ``"18005550100"`` (DTMF suffixes dropped)."""
    number = number.split(";", 1)[0].split("#", 1)[0]
    return "".join(re.findall(r"[0-9]", number))


def e164(number: str) -> str:
    """Phone numbers get a ``+`` in webhooks; SIP URIs and empty values stay as they are."""
    digits = digits_of(number)
    return "+" + digits if digits and not number.startswith("sip") else number


@dataclass
class Reservation:
    """A pending way into a channel: a number plus PIN (``inbound``) or a SIP URI."""

    id: str
    kind: str  # "pin" | "sip"
    region: str
    channel: str
    uid: str
    token: str
    webhook_url: str
    video: bool
    created_at: float
    expires_at: float
    did: str = ""
    display: str = ""
    pin: str = ""
    sip: str = ""
    state: str = "pending"  # pending | used | cancelled (expiry is read from the clock)
    callid: str = ""

    def state_at(self, now: float) -> str:
        return "expired" if self.state == "pending" and now > self.expires_at else self.state

    def public(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "region": self.region, "did": self.did,
            "display": self.display, "pin": self.pin, "sip": self.sip, "channel": self.channel,
            "uid": self.uid, "token": fingerprint(self.token) if self.token else "",
            "webhook_url": self.webhook_url, "created_at": self.created_at,
            "expires_at": self.expires_at, "state": self.state_at(now), "callid": self.callid,
        }


@dataclass
class GatewayCall:
    """One phone leg and, while it is bridged, the RTC leg it has in a channel."""

    callid: str
    direction: str  # inbound | outbound
    to: str
    from_: str
    channel: str
    uid: str
    token: str
    webhook_url: str
    video: bool
    created_at: float
    state: str = "initiated"  # initiated|bridged|unbridged|ended|transferred|failed|rejected
    reason: str = ""
    pin: str = ""
    sip_headers: dict[str, str] = field(default_factory=dict)
    reservation_id: str = ""
    answered_at: float | None = None
    bridged_at: float | None = None
    ended_at: float | None = None
    hangup_due: float | None = None
    hangup_by: str = ""  # who ends the call at hangup_due: "phone" or "timeout"
    rtc_call_id: str | None = None  # the sandbox.callers.Call of the current bridge
    rtc_legs: list[str] = field(default_factory=list)
    dtmf: list[str] = field(default_factory=list)
    transfer: dict[str, Any] | None = None
    lookup: dict[str, Any] | None = None
    hooks: list[Hook] = field(default_factory=list)
    #: "" when a person answered; else where the answering machine is (sandbox/voicemail.py):
    #: waiting (for the agent), played (its greeting) or missed (hung up before any agent).
    voicemail: str = ""

    @property
    def live(self) -> bool:
        return self.state in LIVE

    def public(self) -> dict[str, Any]:
        return {
            "callid": self.callid, "direction": self.direction, "to": self.to,
            "from": self.from_, "channel": self.channel, "uid": self.uid, "state": self.state,
            "reason": self.reason, "pin": self.pin, "sip_headers": dict(self.sip_headers),
            "reservation": self.reservation_id, "created_at": self.created_at,
            "answered_at": self.answered_at, "ended_at": self.ended_at,
            "hangup_due": self.hangup_due, "rtc_legs": list(self.rtc_legs),
            "dtmf": "".join(self.dtmf), "transfer": self.transfer, "lookup": self.lookup,
            "webhook_url": self.webhook_url, "voicemail": self.voicemail,
            "events": [hook.public() for hook in self.hooks],
        }
