"""Sign and verify NCS webhook bodies. No Flask here, so tests and tools can use it directly.

Agora signs the raw request body with the Console secret of the product block that sent it:
``Agora-Signature-V2`` is hex HMAC-SHA256, ``Agora-Signature`` is hex HMAC-SHA1 (confirmed in
Agora's NCS docs; see shared/reference/ncs-sip-token.md, A.4). V2 is checked whenever it is
present; the SHA-1 header is only consulted when V2 is absent.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

V2_HEADER = "Agora-Signature-V2"
V1_HEADER = "Agora-Signature"


class SignatureError(Exception):
    """The request is not signed by a secret this service knows."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        #: a short machine-readable cause: "missing", "malformed", "mismatch"
        self.kind = kind


def _digest(secret: str, body: bytes, algorithm: str) -> str:
    return hmac.new(secret.encode("utf-8"), body, algorithm).hexdigest()


def sign(secret: str, body: bytes) -> dict[str, str]:
    """Return the two headers NCS would send for ``body`` signed with ``secret``."""
    return {
        V2_HEADER: _digest(secret, body, "sha256"),
        V1_HEADER: _digest(secret, body, "sha1"),
    }


@dataclass(frozen=True)
class NamedSecret:
    """A secret with the name of the setting it came from (the name is safe to log)."""

    name: str
    value: str


class NcsVerifier:
    """Checks a raw body against every configured secret and says which one signed it."""

    def __init__(self, secrets: list[NamedSecret]) -> None:
        usable = [s for s in secrets if s.value]
        if not usable:
            raise ValueError("NcsVerifier needs at least one non-empty secret")
        self._secrets = usable

    def verify(self, body: bytes, headers: Mapping[str, str]) -> NamedSecret:
        """Return the secret that produced the signature, or raise SignatureError."""
        v2 = _header(headers, V2_HEADER)
        if v2 is not None:
            return self._match(body, v2, "sha256", 64)
        v1 = _header(headers, V1_HEADER)
        if v1 is not None:
            return self._match(body, v1, "sha1", 40)
        raise SignatureError(f"no {V2_HEADER} or {V1_HEADER} header", kind="missing")

    def _match(self, body: bytes, received: str, algorithm: str, length: int) -> NamedSecret:
        received = received.strip().lower()
        if len(received) != length or any(c not in "0123456789abcdef" for c in received):
            raise SignatureError(f"signature is not {length} hex characters", kind="malformed")
        found = None
        # Compare against every secret, without stopping early, so timing says nothing about
        # which secret (if any) matched.
        for secret in self._secrets:
            if hmac.compare_digest(_digest(secret.value, body, algorithm), received):
                found = found or secret
        if found is None:
            raise SignatureError("signature mismatch", kind="mismatch")
        return found


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value
