"""RTC tokens for the agent and the SIP gateway leg: AccessToken2 ("007").

We mint with Agora's maintained builder (PyPI ``agoraiotools``, ``RtcTokenBuilder2``) rather than
the ``agora-token-builder`` package named on the design card: that package only makes the
deprecated 006 format, which cannot carry RTC and RTM privileges in one token, and Agora's ConvoAI
docs now mint 007 tokens for agents (shared/reference/ncs-sip-token.md, C.4).
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # agoraiotools/__init__ imports its deprecated 006-era modules, which warn on import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from agoraiotools.RtcTokenBuilder2 import Role_Publisher, RtcTokenBuilder2

#: Agora caps token lifetime at 24 hours.
MAX_TOKEN_LIFETIME_S = 86_400


class TokenError(ValueError):
    """A token could not be built (the app id or certificate is not 32 hex characters)."""


def build_rtc_token(
    app_id: str,
    app_certificate: str,
    channel: str,
    uid: int | str,
    *,
    lifetime_s: int = MAX_TOKEN_LIFETIME_S,
    with_rtm: bool = False,
) -> str:
    """A publisher token for ``uid`` in ``channel``; with ``with_rtm`` it also logs in to RTM.

    ``uid`` is an integer RTC uid (ConvoAI's ``enable_string_uid`` is false); strings of digits
    are accepted and converted. The RTM form is what ConvoAI needs when ``enable_rtm`` is on.
    """
    lifetime_s = max(1, min(int(lifetime_s), MAX_TOKEN_LIFETIME_S))
    numeric_uid = int(uid)
    if with_rtm:
        token = RtcTokenBuilder2.build_token_with_rtm(
            app_id, app_certificate, channel, str(numeric_uid), Role_Publisher, lifetime_s
        )
    else:
        token = RtcTokenBuilder2.build_token_with_uid(
            app_id, app_certificate, channel, numeric_uid, Role_Publisher, lifetime_s
        )
    if not token:
        raise TokenError("cannot build a token: app id and certificate must be 32 hex characters")
    return token
