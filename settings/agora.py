"""Agora: the project's credentials, the NCS secrets, ConvoAI's address and the channel uids."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from settings.common import is_http_url

DEFAULT_CONVOAI_API_URL = "https://api.agora.io/api/conversational-ai-agent"
SANDBOX_PORT = 8090
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"

_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")


@dataclass(frozen=True)
class AgoraSettings:
    """AGORA_*, CONVOAI_API_URL, the uids, and the mode that follows from AGORA_APP_ID."""

    agora_app_id: str = ""
    agora_app_certificate: str = ""
    agora_customer_id: str = ""
    agora_customer_secret: str = field(default="", repr=False)
    agora_ncs_secret: str = field(default="", repr=False)
    agora_ncs_secret_previous: str = field(default="", repr=False)
    agora_convoai_ncs_secret: str = field(default="", repr=False)
    convoai_api_url: str = DEFAULT_CONVOAI_API_URL
    pstn_uid: int = 111
    agent_uid: int = 222
    #: Where the sandbox listens; in sandbox mode it stands in for Agora.
    sandbox_url: str = SANDBOX_URL
    #: Derived, not read: no AGORA_APP_ID means sandbox mode (placeholders fill the rest).
    sandbox: bool = False

    def problems(self) -> list[str]:
        """What is wrong with these fields alone, in this mode."""
        found: list[str] = []
        if not self.sandbox:
            required = {
                "AGORA_APP_CERTIFICATE": self.agora_app_certificate,
                "AGORA_CUSTOMER_ID": self.agora_customer_id,
                "AGORA_CUSTOMER_SECRET": self.agora_customer_secret,
                "AGORA_NCS_SECRET": self.agora_ncs_secret,
            }
            # The LLM and TTS keys are checked with the personas that name them.
            found += [f"{name} is required when AGORA_APP_ID is set" for name, v in
                      required.items() if not v]
            if not _HEX32.match(self.agora_app_id):
                found.append("AGORA_APP_ID must be 32 hexadecimal characters")
            if self.agora_app_certificate and not _HEX32.match(self.agora_app_certificate):
                found.append("AGORA_APP_CERTIFICATE must be 32 hexadecimal characters")
        if not is_http_url(self.convoai_api_url):
            found.append("CONVOAI_API_URL must be an http(s) URL")
        if not self.sandbox and urlsplit(self.convoai_api_url).scheme != "https":
            found.append("CONVOAI_API_URL must use https in production (Agora refuses plain HTTP)")
        for name in ("PSTN_UID", "AGENT_UID"):
            if not 0 < getattr(self, name.lower()) < 2**31 - 1:
                found.append(f"{name} must be between 1 and 2147483646")
        if self.pstn_uid == self.agent_uid:
            found.append("PSTN_UID and AGENT_UID must differ (the agent listens to the caller)")
        return found
