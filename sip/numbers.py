"""Numbers as SIP trunks deliver them, and the one key lines are stored and looked up by.

The gateway passes the called and calling parties on as the trunk sent them (its own inbound
example has ``"to": "7373"`` and ``"from": "benweekes"``): E.164 (``+18005550123``), the same
digits without ``+``, short extensions, SIP user parts, or whole URIs
(``sip:alice@pbx.example.com``). :func:`number_key` turns each into one key, used both when a
line is registered and when a call is looked up, so the two agree whichever form each came in.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

#: The longest key: the lines table's number column is 32 characters.
MAX_KEY_CHARS = 32
#: Longer input is refused before it is parsed (a URI's host may make it longer than the key).
MAX_INPUT_CHARS = 256
#: Fewer digits than this is an extension, kept as it is; this many or more (up to E.164's 15)
#: is a phone number, compared as ``+<digits>`` whether or not it came with the ``+``.
MIN_PHONE_DIGITS = 6
MAX_PHONE_DIGITS = 15

_PHONE_LIKE = re.compile(r"\+?[0-9(][0-9\s().-]*", re.ASCII)
_SEPARATORS = re.compile(r"[\s().-]", re.ASCII)
#: A SIP user part, narrowed to what names and account ids use (RFC 3261 allows more).
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~+-]*", re.ASCII)
_URI_SCHEME = re.compile(r"(sips?|tel):", re.IGNORECASE)

NUMBER_RULE = ("a number is E.164 (+18005550100), its digits (18005550100), an extension "
               "(7373) or a SIP user (alice, sip:alice@example.com)")
E164_RULE = "a phone number is + and 6 to 15 digits, such as +18005550100"


def number_key(text: Any) -> str:
    """The key a line is matched by: ``+<digits>`` for 6 to 15 digits (with or without ``+``,
    spaces, dashes, dots or brackets), the digits of a shorter extension, or a SIP user part
    lower-cased (``sip:Alice@host`` gives ``alice``). Raises ValueError for anything else."""
    value = _text(text)
    scheme = _URI_SCHEME.match(value)
    if scheme:
        value = _uri_user(value[scheme.end():], scheme.group(1).lower())
    phone = _phone(value)
    if phone is not None:
        return phone
    if not _USER.fullmatch(value):
        raise ValueError(NUMBER_RULE)
    if len(value) > MAX_KEY_CHARS:
        raise ValueError(f"a SIP user is at most {MAX_KEY_CHARS} characters")
    return value.lower()


def e164(text: Any) -> str:
    """``+<digits>`` from what people write ("+1 (800) 555-0100", "18005550100"): a number the
    gateway can dial. Raises ValueError for anything else, extensions and SIP users included."""
    phone = _phone(_text(text))
    if phone is None or not phone.startswith("+"):
        raise ValueError(E164_RULE)
    return phone


def _text(text: Any) -> str:
    if not isinstance(text, str | int) or isinstance(text, bool):
        raise ValueError(NUMBER_RULE)
    value = str(text).strip()
    if not value or len(value) > MAX_INPUT_CHARS:
        raise ValueError(NUMBER_RULE)
    return value


def _uri_user(rest: str, scheme: str) -> str:
    """The user part of ``sip:user;params@host`` (or the number of ``tel:+1800...;params``)."""
    if scheme == "tel":
        return rest.split(";", 1)[0]
    user, at, host = rest.partition("@")
    if not at or not host:
        raise ValueError("a SIP URI names its user, such as sip:alice@example.com")
    return unquote(user.split(";", 1)[0])


def _phone(value: str) -> str | None:
    """The key of a phone-like value, or None when it is not one (then it may be a SIP user)."""
    if not _PHONE_LIKE.fullmatch(value):
        return None
    plus = value.startswith("+")
    digits = _SEPARATORS.sub("", value[1:] if plus else value)
    if plus and not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS:
        raise ValueError(E164_RULE)
    if not digits:
        raise ValueError(NUMBER_RULE)
    if len(digits) > MAX_PHONE_DIGITS:
        raise ValueError(f"a phone number has at most {MAX_PHONE_DIGITS} digits")
    return f"+{digits}" if len(digits) >= MIN_PHONE_DIGITS else digits
