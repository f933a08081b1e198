"""Check the RTC token a join carries, the way an RTC edge would before letting the agent in.

Agora does not document what ConvoAI checks at ``/join``; we ASSUME it rejects (400
InvalidFieldValue) a token that is not signed with the project's certificate, was minted for
another channel or uid, or has expired, since the agent could not join the channel with it.

Two formats are understood: AccessToken2 ("007", what convoai/tokens.py mints) and the older
AccessToken ("006"). The parsing below is written from the layout in
shared/reference/convoai-api.md 1.4 and ncs-sip-token.md C.2.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import zlib
from dataclasses import dataclass, field

JOIN_CHANNEL = 1  # RTC privilege number, the same in 006 and 007
RTC_SERVICE = 1
RTM_SERVICE = 2


class TokenInvalid(ValueError):
    """The token cannot let this agent into this channel; the message says why."""


@dataclass(frozen=True)
class RtcGrant:
    """What a token allows, as read from it."""

    version: str
    app_id: str
    uid: str  # "" means any uid (the token was minted for uid 0)
    expires_at: float  # Unix seconds; the join privilege's own expiry if earlier
    channel: str | None = None  # 006 carries only a CRC of the channel
    services: tuple[int, ...] = field(default=())


class _Reader:
    """Little-endian reader for Agora's packed token fields."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise TokenInvalid("token is truncated")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def u16(self) -> int:
        return struct.unpack("<H", self._take(2))[0]

    def i16(self) -> int:
        return struct.unpack("<h", self._take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self._take(4))[0]

    def string(self) -> bytes:
        return self._take(self.u16())

    def privileges(self) -> dict[int, int]:
        return {self.u16(): self.u32() for _ in range(self.u16())}


def _decode_b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TokenInvalid("token is not base64") from exc


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def read_007(token: str, certificate: str | None) -> RtcGrant:
    """Parse an AccessToken2 and check its signature against ``certificate`` (None: parse
    only, for a sandbox run without a certificate)."""
    try:
        raw = zlib.decompress(_decode_b64(token[3:]))
    except zlib.error as exc:
        raise TokenInvalid("token is not a valid AccessToken2") from exc
    reader = _Reader(raw)
    signature = reader.string()
    signed = raw[reader.pos :]
    app_id = reader.string().decode("utf-8", "replace")
    issued, expire, salt = reader.u32(), reader.u32(), reader.u32()
    if certificate is not None:
        key = _hmac(struct.pack("<I", salt),
                    _hmac(struct.pack("<I", issued), certificate.encode()))
        if not hmac.compare_digest(_hmac(key, signed), signature):
            raise TokenInvalid("token signature does not match the App Certificate")
    channel, uid, join_expiry, services = None, "", None, []
    for _ in range(reader.u16()):
        service = reader.u16()
        services.append(service)
        privileges = reader.privileges()
        if service == RTC_SERVICE:
            channel = reader.string().decode("utf-8", "replace")
            uid = reader.string().decode("utf-8", "replace")
            if JOIN_CHANNEL in privileges:
                relative = privileges[JOIN_CHANNEL] or expire
                join_expiry = issued + min(relative, expire)
        elif service in (RTM_SERVICE, 5):  # RTM login / chat user: one user-id string
            reader.string()
        elif service == 7:  # aPaaS: room uuid, user uuid, role
            reader.string(), reader.string(), reader.i16()
        elif service != 4:  # 4 (FPA) carries no fields; anything else we cannot skip
            raise TokenInvalid(f"token has an unknown service type {service}")
    if channel is None or join_expiry is None:
        raise TokenInvalid("token carries no RTC join-channel privilege")
    return RtcGrant("007", app_id, uid, join_expiry, channel, tuple(services))


def read_006(token: str, certificate: str, channel: str, uid: str) -> RtcGrant:
    """Parse an AccessToken and check it was signed for ``channel`` and ``uid``.

    006 only stores CRC32s of the channel and uid, so the signature can only be checked for a
    given pair; a wildcard (uid 0) token signs the empty uid.
    """
    app_id = token[3:35]
    raw = _decode_b64(token[35:])
    reader = _Reader(raw)
    signature = reader.string()
    crc_channel, crc_uid = reader.u32(), reader.u32()
    message = reader.string()
    if crc_channel != zlib.crc32(channel.encode()):
        raise TokenInvalid("token was minted for another channel")
    candidates = [uid] if uid != "0" else ["0", ""]
    signed_uid = next((u for u in candidates if zlib.crc32(u.encode()) == crc_uid), None)
    if signed_uid is None:
        raise TokenInvalid("token was minted for another uid")
    expected = hmac.new(
        certificate.encode(), (app_id + channel + signed_uid).encode() + message, hashlib.sha256
    ).digest()
    if not hmac.compare_digest(expected, signature):
        raise TokenInvalid("token signature does not match the App Certificate")
    body = _Reader(message)
    body.u32()  # salt
    expires = body.u32()
    join = body.privileges().get(JOIN_CHANNEL)
    if join is None:
        raise TokenInvalid("token carries no RTC join-channel privilege")
    if join:  # 0 means the privilege itself never expires
        expires = min(expires, join)
    return RtcGrant("006", app_id, signed_uid, float(expires), channel, (RTC_SERVICE,))


def verify_rtc_token(
    token: str, *, app_id: str, certificate: str, channel: str, uid: str, now: float
) -> RtcGrant:
    """Return the grant if ``token`` lets ``uid`` join ``channel`` now, else raise TokenInvalid.

    Stricter than RTC itself on one point, on purpose: a wildcard token (minted for uid 0) is
    only accepted for agent uid "0", so a service that mints for the wrong uid is caught.
    """
    if not isinstance(token, str) or len(token) < 4:
        raise TokenInvalid("token is empty or too short")
    if token.startswith("007"):
        grant = read_007(token, certificate)
    elif token.startswith("006") and len(token) > 35:
        grant = read_006(token, certificate, channel, uid)
    else:
        raise TokenInvalid("token is neither an AccessToken2 (007) nor an AccessToken (006)")
    if grant.app_id != app_id:
        raise TokenInvalid("token was minted for another App ID")
    if grant.channel is not None and grant.channel != channel:
        raise TokenInvalid("token was minted for another channel")
    if grant.uid != uid and not (uid == "0" and grant.uid == ""):
        raise TokenInvalid("token was minted for another uid")
    if now > grant.expires_at:
        raise TokenInvalid("token has expired")
    return grant


def verify_rest_token(token: str, *, app_id: str, certificate: str, now: float) -> RtcGrant:
    """Check the token of ``Authorization: agora token=<token>`` (reference 1.3): an AccessToken2
    for this App ID, signed with its certificate (when the sandbox has one) and not expired.

    Agora does not document what else it checks. We ASSUME the channel and uid do not matter:
    Agora's SDK mints the token for the session's channel and agent uid, but for channel "stop"
    and uid 0 when it stops an agent without a session (``Agora.stop_agent``).
    """
    if not isinstance(token, str) or not token.startswith("007"):
        raise TokenInvalid("token is not an AccessToken2 (007)")
    grant = read_007(token, certificate or None)
    if grant.app_id != app_id:
        raise TokenInvalid("token was minted for another App ID")
    if now > grant.expires_at:
        raise TokenInvalid("token has expired")
    return grant
