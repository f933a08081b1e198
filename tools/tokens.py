"""The MCP endpoint's per-call bearer tokens: random, kept in the store only as SHA-256, and
checked by looking the hash up (a keyed lookup of a uniformly random value leaks nothing by its
timing); the found row's hash is compared again in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

#: 32 random bytes: the token is unguessable, so an unsalted hash is enough to keep.
TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 256:
        return None
    return token
