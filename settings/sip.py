"""The SIP gateway: its API, the hooks it calls, outbound dialling and the public try page."""

from __future__ import annotations

from dataclasses import dataclass, field

from settings.common import is_http_url

DEFAULT_SIP_API_URL = "https://sipcm.agora.io/v1/api/pstn"
#: OUTBOUND_BACKEND's values: the SIP gateway dials, or ConvoAI's own telephony does.
OUTBOUND_BACKENDS = ("gateway", "convoai")


@dataclass(frozen=True)
class SipSettings:
    """SIP_*, the lookup hook's agent start, OUTBOUND_* and TRY_*."""

    sip_api_url: str = DEFAULT_SIP_API_URL
    sip_auth: str = field(default="", repr=False)
    # The SIP gateway's hooks (sip/views.py).
    #: The whole Authorization header the gateway sends to the lookup hook, as agreed with Agora
    #: at provisioning ("Bearer x", "Basic x", a bare key); SIP_LOOKUP_TOKEN is short for
    #: "Bearer <token>".
    sip_lookup_auth: str = field(default="", repr=False)
    sip_lookup_token: str = field(default="", repr=False)
    sip_events_token: str = field(default="", repr=False)
    start_agent_on_lookup: bool = True
    lookup_join_timeout_s: int = 30
    outbound_caller_id: str = ""
    #: Who dials outbound calls: ``gateway`` (the SIP gateway's ``outbound``, numbers
    #: provisioned there) or ``convoai`` (ConvoAI's own telephony, ``POST .../call``, numbers
    #: imported into Agora). docs/sip.md.
    outbound_backend: str = "gateway"
    try_page: bool = False
    try_daily_limit: int = 50
    try_per_address_limit: int = 2

    def problems(self) -> list[str]:
        found: list[str] = []
        if not is_http_url(self.sip_api_url):
            found.append("SIP_API_URL must be an http(s) URL")
        if self.outbound_backend not in OUTBOUND_BACKENDS:
            found.append("OUTBOUND_BACKEND must be 'gateway' or 'convoai'")
        if not 5 <= self.lookup_join_timeout_s <= 600:
            found.append("LOOKUP_JOIN_TIMEOUT_S must be between 5 and 600")
        if self.try_daily_limit < 0 or self.try_per_address_limit < 0:
            found.append("TRY_DAILY_LIMIT and TRY_PER_ADDRESS_LIMIT must be 0 or more")
        for name in ("SIP_LOOKUP_AUTH", "SIP_LOOKUP_TOKEN", "SIP_EVENTS_TOKEN"):
            value = getattr(self, name.lower())
            if value and len(value) < 16:
                found.append(f"{name} must be at least 16 characters (it is a credential)")
        if not all(" " <= c <= "~" for c in self.sip_lookup_auth) \
                or self.sip_lookup_auth != self.sip_lookup_auth.strip():
            found.append("SIP_LOOKUP_AUTH must be printable ASCII with no space at either end "
                         "(it is compared with an HTTP header)")
        return found

    @property
    def sip_lookup_on(self) -> bool:
        """Whether POST /sip/lookup answers (it is closed, 404, without a credential)."""
        return bool(self.sip_lookup_auth or self.sip_lookup_token)
