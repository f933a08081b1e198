"""Hypothesis strategies for requests: junk, and near-valid bodies that get past the first checks
(a correct signature, a correct token) to reach the parser, the lifecycle and the store.

A strategy is built once and drawn from many times (module constants, and ``functools.cache`` on
the functions that build one): hypothesis validates a strategy and works out its properties the
first time it is drawn from, so one built afresh inside every draw costs more than the request
it makes.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import settings
from hypothesis import strategies as st


@dataclass(frozen=True)
class Known:
    """A placeholder for "one of the real <kind>s" (call_id, channel, number, ...), resolved by
    FuzzedService.resolve when the request is made: strategies exist before the rows do."""

    kind: str
    index: int = 0


@dataclass(frozen=True)
class NowMs:
    """A placeholder for "now, in ms, plus ``offset_ms``", resolved when the request is made: the
    service ignores deliveries dated far from its clock (ncs/freshness.py)."""

    offset_ms: int = 0


#: The body limit app.py sets (MAX_CONTENT_LENGTH); one byte more must answer 413.
MAX_BODY_BYTES = 256 * 1024


def fuzz_profile() -> settings:
    """The hypothesis settings of the profile named by HYPOTHESIS_PROFILE (default fuzz-ci);
    tests/fuzz/conftest.py registers them."""
    return settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "fuzz-ci"))


# -- values ----------------------------------------------------------------------------------

#: Numbers at and past every boundary a column or a parser has: 2**31 (INTEGER), 2**63
#: (BIGINT), 2**64, 2**70, floats that are whole, and the huge.
EDGE_NUMBERS = st.sampled_from([0, -1, 1, 111, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63,
                                -(2**63), -(2**63) - 1, 2**64, 2**70, -(2**70), 10**30, 111.0,
                                1.5, -0.0, 1e308, 10**400])
#: Strings that look like numbers, or like the values parsers special-case.
NUMBER_LIKE = st.sampled_from(["111", " 111 ", "-1", "0x6f", "1e3", "NaN", "nan", "Infinity",
                               "-Infinity", "1e999", "", " ", "٣", "１１１", "111\x00",
                               "9" * 19, "9" * 25, "-" + "9" * 18, "true", "null"])
#: Any text, including lone surrogates (valid in JSON as \\ud800 escapes, not in UTF-8).
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
SCALARS = (st.none() | st.booleans() | st.integers() | EDGE_NUMBERS | NUMBER_LIKE
           | st.floats(allow_nan=True, allow_infinity=True) | ANY_TEXT)
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=16)


def junk_or(*good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes anything at all."""
    return st.one_of(*good, *good, SCALARS, JSON_VALUES)


#: Channel names: Agora's alphabet, any unicode, control characters, and far too long.
CHANNELS = st.one_of(
    st.from_regex(r"[a-zA-Z0-9_]{1,64}", fullmatch=True),
    ANY_TEXT.filter(bool),
    st.text(st.characters(codec="utf-8"), min_size=100, max_size=400),
    st.sampled_from(["test_webhook", "a" * 128, "a" * 129, "é" * 64, "🙂" * 40, "ch\x00nul",
                     "ch\nline", " ", "../../etc/passwd", "' OR 1=1 --", "%00", "\u202e"]),
)


# -- bodies ----------------------------------------------------------------------------------

def deep_nesting(depth: int) -> bytes:
    """A JSON array nested ``depth`` deep: small on the wire, deep enough to exhaust a
    recursive parser."""
    return b"[" * depth + b"]" * depth


@functools.cache
def invalid_utf8() -> st.SearchStrategy[bytes]:
    return st.sampled_from([b"\xff\xfe", b'{"a": "\xc3\x28"}', b"\xed\xa0\x80",
                            b'{"noticeId": "\xe2\x82"}', b"\xc0\xaf", b"\x00" * 8])


def encode(value: Any, *, ensure_ascii: bool, compact: bool) -> bytes:
    """Serialise as JSON the ways senders do (ASCII or not, compact or spaced). Unescaped, a
    lone surrogate is written raw: bytes that are not valid UTF-8."""
    text = json.dumps(value, ensure_ascii=ensure_ascii,
                      separators=(",", ":") if compact else (", ", ": "))
    return text.encode("utf-8", "surrogatepass")


@functools.cache
def raw_bodies() -> st.SearchStrategy[bytes]:
    """Bodies that are not what anyone should send."""
    return st.one_of(
        st.just(b""), st.binary(max_size=200), invalid_utf8(),
        st.builds(deep_nesting, st.sampled_from([2_000, 100_000])),
        st.sampled_from([b"null", b"[]", b"{}", b"0", b'"text"', b"NaN", b"{" * 10,
                         b'{"a": 1, "a": 2}', b"\xef\xbb\xbf{}", "{}".encode("utf-16")]),
    )


@st.composite
def json_body(draw: st.DrawFn, value: st.SearchStrategy[Any] = JSON_VALUES) -> bytes:
    return encode(draw(value), ensure_ascii=draw(st.booleans()), compact=draw(st.booleans()))


# -- NCS ---------------------------------------------------------------------------------------

RTC_EVENTS = [103, 104, 105, 106, 107, 108, 101, 102, 111]
CONVOAI_EVENTS = [101, 102, 103, 104, 110, 111, 112, 201, 202]


SEQUENCES = st.one_of(st.integers(-10, 2**40), EDGE_NUMBERS, NUMBER_LIKE)
FRESH = st.builds(NowMs, st.integers(-3_600_000, 60_000))


@st.composite
def ncs_envelopes(draw: st.DrawFn, channels: st.SearchStrategy[Any] = CHANNELS) -> Any:
    """An NCS envelope: a well-formed caller join or leave, or a ConvoAI notification about one
    of our agents, then zero to three of its fields set to junk or removed. Most get past the
    parser and reach the lifecycle and the store, which is where the bugs are."""
    product = draw(st.sampled_from([1, 1, 1, 17]))
    if product == 17:
        payload: dict[str, Any] = {
            "agent_id": draw(st.from_regex(r"[A-Z0-9]{8,32}", fullmatch=True) | ANY_TEXT),
            "name": draw(st.just(Known("agent_name")) | st.builds("phoneagent-{}".format,
                                                                  ANY_TEXT)),
            "channel": draw(channels),
            "labels": {"service": "phoneagent", "call_id": draw(st.builds(
                Known, st.just("call_id"), st.integers(0, 3)) | ANY_TEXT)},
            "start_ts": draw(st.integers(0, 2**33) | EDGE_NUMBERS),
            "status": draw(st.sampled_from(["RUNNING", "STOPPED"]) | ANY_TEXT),
            "message": draw(ANY_TEXT), "contents": draw(JSON_VALUES),
            "metrics": draw(JSON_VALUES), "report_ms": draw(SCALARS),
        }
        event_type = draw(st.sampled_from(CONVOAI_EVENTS))
    else:
        payload = {"channelName": draw(channels), "uid": draw(st.sampled_from([111, "111"])),
                   "clientSeq": draw(SEQUENCES), "ts": draw(st.integers(0, 2**33) | EDGE_NUMBERS),
                   "reason": draw(st.integers(0, 12) | st.just(999)), "platform": 7}
        event_type = draw(st.sampled_from(RTC_EVENTS))
    envelope: dict[str, Any] = {
        "noticeId": draw(st.uuids().map(str) | ANY_TEXT | st.text(min_size=120, max_size=140)),
        "productId": product, "eventType": event_type,
        # Mostly dated as NCS dates a delivery (now, or a few minutes either side), so that
        # most get past the replay window; sometimes any time at all.
        "notifyMs": draw(st.one_of(FRESH, FRESH, st.integers(0, 2**45))),
        "sid": draw(SCALARS), "payload": payload,
    }
    for _ in range(draw(st.integers(0, 3))):
        target = envelope if draw(st.booleans()) else payload
        key = draw(st.sampled_from(sorted(target)))
        if draw(st.integers(0, 3)) == 0:
            del target[key]
        else:
            target[key] = draw(SCALARS | JSON_VALUES)
    return envelope


@dataclass(frozen=True)
class Delivery:
    """One POST /webhook: the body (bytes, or an envelope to serialise once its Known values are
    resolved), how it is signed, and other headers."""

    body: bytes | dict[str, Any]
    signing: str
    headers: dict[str, str] = field(default_factory=dict)
    ensure_ascii: bool = True
    compact: bool = False

    @property
    def validly_signed(self) -> bool:
        return self.signing in VALID_SIGNINGS


VALID_SIGNINGS = frozenset({"v2", "v1", "both", "v2_upper_spaced"})
SIGNINGS = sorted(VALID_SIGNINGS) + ["none", "wrong_secret", "garbage", "renamed", "empty",
                                     "v2_bad_v1_good"]


@functools.cache
def delivery_bodies() -> st.SearchStrategy[bytes | dict[str, Any]]:
    """An envelope (three times as likely), a body nobody should send, or any JSON."""
    return st.one_of(ncs_envelopes(), ncs_envelopes(), ncs_envelopes(), raw_bodies(),
                     json_body())


@st.composite
def deliveries(draw: st.DrawFn) -> Delivery:
    body: bytes | dict[str, Any] = draw(delivery_bodies())
    return Delivery(body, draw(st.sampled_from(SIGNINGS)), draw(junk_headers()),
                    ensure_ascii=draw(st.booleans()), compact=draw(st.booleans()))


# -- HTTP --------------------------------------------------------------------------------------

#: Header values a client can send (no CR/LF/NUL, which the test client itself refuses).
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                    exclude_characters="\x7f"), max_size=60)
CONTENT_TYPES = st.sampled_from([
    None, "application/json", "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/octet-stream", "application/vnd.api+json", "json", "", "*/*",
])


@st.composite
def junk_headers(draw: st.DrawFn) -> dict[str, str]:
    headers: dict[str, str] = {}
    content_type = draw(CONTENT_TYPES)
    if content_type is not None:
        headers["Content-Type"] = content_type
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["X-Forwarded-For", "X-Request-Id", "Accept",
                                     "Accept-Encoding", "Content-Encoding", "Origin", "Cookie",
                                     "X-Agora-Signature", "Forwarded", "Transfer-Encoding"]))
        headers[name] = draw(HEADER_TEXT)
    return headers


@functools.cache
def path_segment(converter: str) -> st.SearchStrategy[str]:
    """A URL-quoted value for a path variable of this converter."""
    safe = "/" if converter == "PathConverter" else ""
    return st.one_of(
        st.from_regex(r"[a-z0-9]{1,32}", fullmatch=True), ANY_TEXT.filter(bool),
        st.text(min_size=200, max_size=2000), st.sampled_from(["..", "%00", "%ff", "%", "a/b",
                                                                "+15555550100", "18005550100"]),
    ).map(lambda text: quote(text.encode("utf-8", "surrogatepass"), safe=safe) or "x")


QUERY_KEYS = ["state", "persona", "channel", "since", "until", "limit", "cursor", "page", "q"]
QUERY_KEY_OR_JUNK = st.sampled_from(QUERY_KEYS) | ANY_TEXT


@functools.cache
def cursors() -> st.SearchStrategy[str]:
    """What a client may hand back as a cursor: ours tampered with, or anything."""
    encoded = JSON_VALUES.map(lambda v: base64.urlsafe_b64encode(
        json.dumps(v).encode()).decode().rstrip("="))
    pairs = st.tuples(SCALARS, SCALARS).map(lambda v: base64.urlsafe_b64encode(
        json.dumps(list(v)).encode()).decode().rstrip("="))
    return st.one_of(encoded, pairs, ANY_TEXT, st.sampled_from(
        ["", "=", "====", "!!", base64.urlsafe_b64encode(b"[1e999, 1]").decode(),
         base64.urlsafe_b64encode(b"[" + b"9" * 400 + b", 1]").decode(),
         base64.urlsafe_b64encode(deep_nesting(50_000)).decode()]))


@functools.cache
def query_values(key: str) -> st.SearchStrategy[str]:
    special: dict[str, st.SearchStrategy[str]] = {
        "state": st.lists(st.sampled_from(["active", "ended", "starting", "grace", "bogus", ""]),
                          max_size=4).map(",".join),
        "since": st.one_of(NUMBER_LIKE, st.sampled_from(
            ["2024-01-01", "2024-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31",
             "2024-13-45", "1e308", "-1e308"])),
        "limit": st.one_of(NUMBER_LIKE, st.integers().map(str)),
        "cursor": cursors(),
    }
    special["until"] = special["since"]
    return st.one_of(special.get(key, ANY_TEXT), ANY_TEXT, NUMBER_LIKE)


@st.composite
def query_strings(draw: st.DrawFn) -> bytes:
    """A query string: known filters with junk values, unknown keys, repeats, and bytes that
    do not decode."""
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 5))):
        key = draw(QUERY_KEY_OR_JUNK)
        value = draw(query_values(key))
        parts.append(quote(key.encode("utf-8", "surrogatepass")).encode() + b"=" +
                     quote(value.encode("utf-8", "surrogatepass")).encode())
    if draw(st.integers(0, 5)) == 0:
        parts.append(draw(st.sampled_from([b"%", b"%zz", b"a=%ff%fe", b"&&", b"=x", b"a"])))
    return b"&".join(parts)


# -- any route ---------------------------------------------------------------------------------

#: Path variables that name real rows, by name (resolved by FuzzedService.resolve).
KNOWN_PATH_VALUES = {"call_id": "call_id", "number": "number", "reservation_id": "reservation_id",
                     "token": "events_token", "filename": "static_file"}
PERSONAS = st.sampled_from(["support", "tarot", "appointments", "orders", "triage", "nobody",
                            "", "../support"])
#: Numbers as SIP trunks send them (E.164, bare digits, extensions, SIP users and URIs), and
#: what is none of those.
GATEWAY_NUMBERS = st.one_of(
    st.from_regex(r"\+?1?[0-9]{6,15}", fullmatch=True), st.from_regex(r"[0-9]{1,5}",
                                                                      fullmatch=True),
    st.from_regex(r"(sips?:)?[A-Za-z0-9][A-Za-z0-9._~+-]{0,40}(@[a-z.]{1,20})?", fullmatch=True),
    st.sampled_from(["+1 (800) 555-0100", "+15555550000", "123", "7373", "benweekes",
                     "sip:agent@example.com", "sip:+15555550100@trunk;user=phone",
                     "tel:+1-555-555-0100", "+" + "9" * 30, "9" * 16, "++1555", "<script>",
                     "sip:@host", "a" * 33, ""]))
PHONE_NUMBERS = GATEWAY_NUMBERS | st.just(Known("number"))
GATEWAY_EVENTS = st.sampled_from(["call_initiated", "call_ringing", "call_answered",
                                  "agora_bridge_start", "call_hangup", "dtmf", "unknown"])

#: Near-valid bodies per route, before junk is mixed into them.
ROUTE_BODIES: dict[tuple[str, str], st.SearchStrategy[dict[str, Any]]] = {
    ("POST", "/sip/lookup"): st.fixed_dictionaries({
        "did": PHONE_NUMBERS, "pin": st.just(Known("pin")) | st.from_regex(r"[0-9]{0,8}",
                                                                           fullmatch=True),
        "callerid": PHONE_NUMBERS, "callid": st.uuids().map(str) | ANY_TEXT}),
    ("POST", "/sip/events/<token>"): st.fixed_dictionaries({
        "event": GATEWAY_EVENTS, "callid": st.just(Known("callid")) | ANY_TEXT,
        "channel": st.just(Known("channel")) | CHANNELS,
        "hangup_cause": st.sampled_from(["NORMAL_CLEARING", "USER_BUSY"]) | ANY_TEXT,
        "duration": SCALARS, "digits": SCALARS, "direction": SCALARS}),
    ("POST", "/api/lines"): st.fixed_dictionaries({
        "number": PHONE_NUMBERS, "persona": PERSONAS | st.none(), "label": ANY_TEXT | st.none(),
        "variables": st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=3) | JSON_VALUES,
        "pins": st.dictionaries(st.from_regex(r"[0-9]{1,4}", fullmatch=True), PERSONAS,
                                max_size=3) | JSON_VALUES}),
    ("POST", "/api/numbers"): st.fixed_dictionaries({
        "region": st.sampled_from(["NA", "EU", "AS", "JP", "IN", "CN", "XX", ""]) | ANY_TEXT,
        "persona": PERSONAS | st.none(), "label": ANY_TEXT | st.none()}),
    ("POST", "/api/calls"): st.fixed_dictionaries({
        "to": PHONE_NUMBERS, "from": PHONE_NUMBERS | st.none(), "persona": PERSONAS | st.none(),
        "variables": st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=3) | JSON_VALUES,
        "region": st.sampled_from(["NA", "EU"]) | ANY_TEXT, "prompt": SCALARS}),
    ("POST", "/api/calls/<call_id>/transfer"): st.fixed_dictionaries({
        "destination": PHONE_NUMBERS | ANY_TEXT, "leg": SCALARS}),
    ("POST", "/api/calls/<call_id>/dtmf"): st.fixed_dictionaries({
        "digits": st.from_regex(r"[0-9*#]{1,12}", fullmatch=True) | ANY_TEXT}),
    ("POST", "/try/number"): st.fixed_dictionaries({
        "region": st.sampled_from(["NA", "EU", "AS", "JP", "IN", "XX"]) | SCALARS}),
}


@dataclass(frozen=True)
class Auth:
    """An Authorization header: ``template`` filled with a real credential (by its setting's
    name, resolved at request time) or with ``text``."""

    template: str
    credential: str | None = None
    text: str = ""


def credential_for(rule: str) -> str | None:
    """The setting whose credential a route takes (None: the route takes none)."""
    if rule == "/sip/lookup":
        return "SIP_LOOKUP_AUTH"
    if rule == "/api/reconcile":
        return "CRON_SECRET"
    return "ADMIN_TOKEN" if rule.startswith(("/api/", "/metrics")) else None


def right_auth(credential: str) -> Auth:
    """The header a credential is sent in: SIP_LOOKUP_AUTH is the whole header value."""
    return Auth("{}" if credential == "SIP_LOOKUP_AUTH" else "Bearer {}", credential)


_CREDENTIALS = st.sampled_from(["ADMIN_TOKEN", "CRON_SECRET", "SIP_LOOKUP_TOKEN",
                               "SIP_LOOKUP_AUTH"])
#: No header, another setting's token, a credential mangled, or junk.
WRONG_AUTHORIZATIONS = st.one_of(
    st.none(),
    st.builds(Auth, st.sampled_from(["Bearer {}", "bearer  {} ", "Basic {}", "Bearer {}x",
                                     "{}"]), _CREDENTIALS),
    st.builds(Auth, st.sampled_from(["Bearer {}", "{}"]), st.none(), HEADER_TEXT),
    st.just(Auth("Bearer")),
)


@st.composite
def authorizations(draw: st.DrawFn, right: str | None = None) -> Auth | None:
    """Half the time the route's own token (to get past the check), else none, another
    setting's token, the right one mangled, or junk."""
    if right and draw(st.booleans()):
        return right_auth(right)
    return draw(WRONG_AUTHORIZATIONS)


@dataclass(frozen=True)
class FuzzRequest:
    """One request to one route; Known values and credentials are resolved when it is sent."""

    method: str
    path: tuple[str | Known, ...]
    query: bytes
    auth: Auth | None
    headers: dict[str, str]
    body: bytes | Any
    ensure_ascii: bool = True
    compact: bool = False
    signed_in: bool = False


@functools.cache
def path_values(converter: str, name: str) -> st.SearchStrategy[str | Known]:
    """A value for the path variable ``<converter:name>``: a real row's (by name), or junk."""
    kind = KNOWN_PATH_VALUES.get(name)
    junk = path_segment("PathConverter" if converter == "path" else "")
    return st.builds(Known, st.just(kind), st.integers(0, 3)) | junk if kind else junk


#: A body for a route without near-valid bodies of its own.
ANY_OBJECT = st.dictionaries(st.sampled_from(["id", "name", "state", "token", "next"]), SCALARS,
                             max_size=3)


@functools.cache
def route_bodies(method: str, rule: str) -> st.SearchStrategy[Any]:
    """A body for the route: near-valid and spoiled (twice as likely), any JSON, or not JSON."""
    near_valid = ROUTE_BODIES.get((method, rule), ANY_OBJECT)
    return st.one_of(near_valid.flatmap(_spoiled), near_valid.flatmap(_spoiled), json_body(),
                     raw_bodies(), st.just(b""))


_VARIABLE = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


@st.composite
def route_requests(draw: st.DrawFn, method: str, rule: str) -> FuzzRequest:
    """A request for ``rule``: real or junk path values, junk queries and headers, and a body
    that is near-valid for the route, any JSON, or not JSON at all."""
    path: list[str | Known] = []
    position = 0
    for match in _VARIABLE.finditer(rule):
        path.append(rule[position:match.start()])
        path.append(draw(path_values(match.group(1) or "", match.group(2))))
        position = match.end()
    path.append(rule[position:])
    body = draw(route_bodies(method, rule))
    headers = draw(junk_headers())
    if draw(st.booleans()):
        headers["Content-Type"] = "application/json"
    return FuzzRequest(method=method, path=tuple(path), query=draw(query_strings()),
                       auth=draw(authorizations(credential_for(rule))), headers=headers,
                       body=body, ensure_ascii=draw(st.booleans()), compact=draw(st.booleans()),
                       signed_in=draw(st.booleans()))


def edge_requests(method: str, rule: str) -> list[FuzzRequest]:
    """Requests every run sends to every route, whatever the budget: the right credential, real
    path values, a JSON content type, and a body a parser chokes on."""
    path = tuple(Known(KNOWN_PATH_VALUES.get(m.group(2)) or "none") if m else part
                 for part, m in _split(rule))
    auth = credential_for(rule)
    bodies = [deep_nesting(100_000), b"[1, 2]", b'"text"', b"", b"\xff\xfe", b"{" * 10,
              b'{"a": NaN}']
    return [FuzzRequest(method=method, path=path, query=b"",
                        auth=right_auth(auth) if auth else None,
                        headers={"Content-Type": "application/json"}, body=body,
                        signed_in=True) for body in bodies]


def _split(rule: str) -> list[tuple[str, re.Match[str] | None]]:
    """The rule's text around its variables, and each variable's match."""
    parts: list[tuple[str, re.Match[str] | None]] = []
    position = 0
    for match in _VARIABLE.finditer(rule):
        parts += [(rule[position:match.start()], None), ("", match)]
        position = match.end()
    return [*parts, (rule[position:], None)]


def _spoiled(body: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``body`` with up to two of its fields set to junk or removed."""

    @st.composite
    def spoil(draw: st.DrawFn) -> dict[str, Any]:
        spoiled = dict(body)
        for _ in range(draw(st.integers(0, 2))):
            if not spoiled:
                break
            key = draw(st.sampled_from(sorted(spoiled)))
            if draw(st.booleans()):
                del spoiled[key]
            else:
                spoiled[key] = draw(SCALARS | JSON_VALUES)
        return spoiled

    return spoil()
