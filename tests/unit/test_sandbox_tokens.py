"""sandbox/tokens.py: the sandbox lets an agent in only with a token for its channel and uid."""

from __future__ import annotations

import base64
import time
import warnings
import zlib

import pytest

from convoai.tokens import build_rtc_token
from sandbox.defaults import SANDBOX_APP_CERTIFICATE, SANDBOX_APP_ID
from sandbox.tokens import TokenInvalid, verify_rtc_token

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # agoraiotools' 006-era modules warn
    from agoraiotools.RtcTokenBuilder import Role_Publisher, RtcTokenBuilder

OTHER_CERT = "ffffffffffffffffffffffffffffffff"
OTHER_APP = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
NOW = time.time()


def verify(token: str, *, channel: str = "room-1", uid: str = "222", now: float = NOW,
           app_id: str = SANDBOX_APP_ID, certificate: str = SANDBOX_APP_CERTIFICATE):
    return verify_rtc_token(token, app_id=app_id, certificate=certificate, channel=channel,
                            uid=uid, now=now)


def token_007(channel: str = "room-1", uid: str | int = "222", *, lifetime_s: int = 3600,
              with_rtm: bool = True, app_id: str = SANDBOX_APP_ID,
              cert: str = SANDBOX_APP_CERTIFICATE) -> str:
    return build_rtc_token(app_id, cert, channel, uid, lifetime_s=lifetime_s, with_rtm=with_rtm)


def token_006(channel: str = "room-1", uid: int = 222, *, expires_at: int = 0,
              cert: str = SANDBOX_APP_CERTIFICATE) -> str:
    return RtcTokenBuilder.buildTokenWithUid(SANDBOX_APP_ID, cert, channel, uid, Role_Publisher,
                                             expires_at)


@pytest.mark.parametrize("with_rtm", [True, False])
def test_a_007_token_for_the_agent_is_accepted(with_rtm):
    grant = verify(token_007(with_rtm=with_rtm))
    assert (grant.version, grant.channel, grant.uid, grant.app_id) == (
        "007", "room-1", "222", SANDBOX_APP_ID)
    assert grant.services == ((1, 2) if with_rtm else (1,))


def test_a_006_token_for_the_agent_is_accepted():
    grant = verify(token_006())
    assert (grant.version, grant.uid) == ("006", "222")


@pytest.mark.parametrize(("make", "kwargs", "message"), [
    (token_007, {"channel": "room-2"}, "another channel"),
    (token_007, {"uid": "333"}, "another uid"),
    (token_007, {"cert": OTHER_CERT}, "signature"),
    (token_007, {"app_id": OTHER_APP, "cert": SANDBOX_APP_CERTIFICATE}, "another App ID"),
    (token_006, {"channel": "room-2"}, "another channel"),
    (token_006, {"uid": 333}, "another uid"),
    (token_006, {"cert": OTHER_CERT}, "signature"),
])
def test_a_token_for_something_else_is_rejected(make, kwargs, message):
    with pytest.raises(TokenInvalid, match=message):
        verify(make(**kwargs))


def test_an_expired_007_token_is_rejected():
    # Read the clock here, not at import: the suite may reach this test minutes after import.
    now = time.time()
    token = token_007(lifetime_s=60)
    verify(token, now=now + 30)
    with pytest.raises(TokenInvalid, match="expired"):
        verify(token, now=now + 120)


def test_an_expired_006_privilege_is_rejected():
    token = token_006(expires_at=int(NOW) + 60)
    verify(token, now=NOW + 30)
    with pytest.raises(TokenInvalid, match="expired"):
        verify(token, now=NOW + 120)


def test_a_wildcard_token_only_fits_agent_uid_zero():
    wildcard = token_007(uid=0, with_rtm=False)
    assert verify(wildcard, uid="0").uid == ""
    with pytest.raises(TokenInvalid, match="another uid"):
        verify(wildcard, uid="222")


@pytest.mark.parametrize("token", [
    "", "007", "007not-base64!!", "006" + SANDBOX_APP_ID + "AAAA", "abc",
    "007" + base64.b64encode(zlib.compress(b"\x05\x00abc")).decode(),
])
def test_garbage_is_rejected_not_crashing(token):
    with pytest.raises(TokenInvalid):
        verify(token)


def test_a_tampered_007_token_is_rejected():
    raw = bytearray(zlib.decompress(base64.b64decode(token_007()[3:])))
    raw[-1] ^= 0x01  # flip a bit in the signed part (the last byte of the RTM user id)
    tampered = "007" + base64.b64encode(zlib.compress(bytes(raw))).decode()
    with pytest.raises(TokenInvalid, match="signature"):
        verify(tampered)
