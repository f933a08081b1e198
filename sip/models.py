"""What the SIP/PSTN gateway client returns (sip/client.py)."""

from __future__ import annotations

from dataclasses import dataclass


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
