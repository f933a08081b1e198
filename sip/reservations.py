"""Dial-in reservations: a number and PIN from the SIP gateway (``inbound``) into one fresh
channel, whose callers reach that channel's persona."""

from __future__ import annotations

import secrets
from typing import Any

from config import Settings
from convoai.tokens import MAX_TOKEN_LIFETIME_S, build_rtc_token
from personas import Registry
from personas.registry import reservation_channel
from sip.client import GatewayClient
from sip.errors import CallNotFound
from sip.inputs import label_text
from sip.payload import normalize_region
from store import Store


class Reservations:
    """Provisioning, releasing and renewing reservations, kept in the store."""

    def __init__(self, settings: Settings, store: Store, personas: Registry,
                 gateway: GatewayClient) -> None:
        self.settings = settings
        self.store = store
        self.personas = personas
        self.gateway = gateway

    def provision(self, *, region: str, persona: str | None, label: str | None,
                  events_url: str | None) -> dict[str, Any]:
        """Reserve a dial-in number and PIN with the gateway (``inbound``) for a fresh channel
        and a token minted for PSTN_UID, and store the reservation. ValueError: a wrong
        region, persona or label."""
        label = label_text(label)
        region = normalize_region(region)
        chosen = self.personas.route("", persona=self.personas.known(persona))
        channel = reservation_channel(chosen.name, secrets.token_hex(6))
        # The gateway does not document how long a reservation lasts; we assume as long as its
        # token can (24 h), and so does the sandbox's gateway (sandbox/sip_models.py).
        lifetime = MAX_TOKEN_LIFETIME_S
        token = build_rtc_token(self.settings.agora_app_id, self.settings.agora_app_certificate,
                                channel, self.settings.pstn_uid, lifetime_s=lifetime)
        reserved = self.gateway.inbound(channel, region, token=token, uid=self.settings.pstn_uid,
                                        webhook_url=events_url, audio_scenario="10")
        now = self.store.clock()
        return self.store.add_reservation({
            "id": secrets.token_hex(6), "did": reserved.did, "display": reserved.display,
            "pin": reserved.pin, "channel": channel, "region": region,
            "persona": chosen.name, "label": label, "created_at": now,
            # Every caller with this PIN joins with this token: it lasts at most 24 hours.
            "expires_at": now + lifetime,
        })

    def release(self, reservation: dict[str, Any]) -> None:
        """Cancel the reservation at the gateway (by number and PIN) and mark it released."""
        try:
            self.gateway.cancel_call(did=reservation["did"], pin=reservation["pin"])
        except CallNotFound:
            pass  # already gone at the gateway (expired or used)
        self.store.release_reservation(reservation["id"])

    def renew_expiring(self, *, within_s: float, events_url: str | None) -> list[dict[str, Any]]:
        """Re-issue the reservations that expire within ``within_s`` (a new number and PIN
        each, same persona, region and label), releasing the old ones."""
        deadline = self.store.clock() + within_s
        renewed = []
        for old in self.store.list_reservations():
            if old["expires_at"] <= deadline:
                renewed.append(self.provision(region=old["region"], persona=old["persona"],
                                              label=old["label"], events_url=events_url))
                self.release(old)
        return renewed
