"""Operations: costs and budgets, the call cap, the events webhook, metrics and logging."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class OperationsSettings:
    """What running the service costs and may spend, and how it reports on itself."""

    max_concurrent_calls: int = 20
    #: Agent minutes per UTC day, across all calls; 0: no budget (calls/guards.py).
    daily_agent_minutes: int = 0
    # Costs (calls/costs.py, docs/operations.md): money per minute, in COST_CURRENCY.
    #: ConvoAI's price per agent minute.
    convoai_per_minute: float = 0.0
    #: The SIP gateway's price per minute of a call with a phone leg.
    sip_per_minute: float = 0.0
    cost_currency: str = "USD"
    #: Estimated money per UTC day, across all calls; 0: no budget (calls/guards.py).
    daily_budget: float = 0.0
    events_webhook_url: str = ""
    events_webhook_secret: str = field(default="", repr=False)
    metrics_token: str = field(default="", repr=False)
    log_level: str = "INFO"

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.max_concurrent_calls < 0:
            found.append("MAX_CONCURRENT_CALLS must be 0 (no cap) or more")
        if self.daily_agent_minutes < 0:
            found.append("DAILY_AGENT_MINUTES must be 0 (no budget) or more")
        # `0 <= x < inf` also refuses NaN, which float() accepts.
        found += [f"{name} must be a number, 0 or more" for name in
                  ("CONVOAI_PER_MINUTE", "SIP_PER_MINUTE")
                  if not 0 <= getattr(self, name.lower()) < float("inf")]
        if not 0 <= self.daily_budget < float("inf"):
            found.append("DAILY_BUDGET must be 0 (no budget) or more")
        if not _CURRENCY.match(self.cost_currency):
            found.append("COST_CURRENCY must be a three-letter ISO 4217 code such as USD")
        if self.events_webhook_url:
            if urlsplit(self.events_webhook_url).scheme not in ("http", "https"):
                found.append("EVENTS_WEBHOOK_URL must be an http(s) URL")
            if not self.events_webhook_secret:
                found.append("EVENTS_WEBHOOK_SECRET is required when EVENTS_WEBHOOK_URL is set")
        if self.events_webhook_secret and not webhook_secret_ok(self.events_webhook_secret):
            found.append("EVENTS_WEBHOOK_SECRET must be whsec_ followed by base64 of 24 to 64 "
                         "random bytes (Standard Webhooks); `python -c \"import base64,os; "
                         "print('whsec_'+base64.b64encode(os.urandom(32)).decode())\"` makes one")
        return found


def webhook_secret_ok(secret: str) -> bool:
    """Whether ``secret`` is a Standard Webhooks secret: whsec_, then base64 of 24-64 bytes."""
    if not secret.startswith("whsec_"):
        return False
    try:
        key = base64.b64decode(secret[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError):
        return False
    return 24 <= len(key) <= 64
