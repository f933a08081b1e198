"""Why a saved NCS request does or does not pass the webhook's signature check. No Flask here:
`flask ncs verify` (ncs/cli.py) feeds it a body, the headers as received and the configured
secrets, and prints the one line it returns.

The checks follow the webhook exactly (NcsVerifier, then the product's allowed secrets), and on a
failure they look for the most likely cause, in this order:

1. no signature header reached the service (a proxy stripped or renamed it);
2. the body is signed with a configured secret that this product's events may not use;
3. the body was altered in transit: it verifies once a common re-serialisation is undone;
4. otherwise it was signed with a secret the service does not know.

Messages name settings (AGORA_NCS_SECRET, ...) and headers, never a secret's value.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ncs.events import EnvelopeError, parse_envelope
from ncs.signature import V1_HEADER, V2_HEADER, NamedSecret, NcsVerifier, SignatureError

OK = "ok"
NO_SIGNATURE = "no_signature"
OTHER_SECRET = "other_secret"
BODY_ALTERED = "body_altered"
UNKNOWN_SECRET = "unknown_secret"

#: What a product's events may be signed with: ncs/views.secrets_for_product builds one.
AllowedSecrets = Callable[[int], Sequence[str]]


@dataclass(frozen=True)
class Diagnosis:
    """The verdict: ``kind`` is one of the constants above, ``message`` the line to print."""

    kind: str
    message: str
    #: the setting whose secret verified the body (as received, or once repaired)
    secret: str | None = None
    #: for BODY_ALTERED: what was undone to make the body verify
    transformation: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind == OK


@dataclass(frozen=True)
class JsonForm:
    """One way of writing a JSON document out."""

    compact: bool
    sort_keys: bool
    ensure_ascii: bool

    def dump(self, data: Any) -> bytes:
        text = json.dumps(data, sort_keys=self.sort_keys, ensure_ascii=self.ensure_ascii,
                          separators=(",", ":") if self.compact else (", ", ": "))
        return text.encode("utf-8", "surrogatepass")

    def changes_from(self, received: JsonForm | None) -> str:
        """How to get from the received form to this one, in words."""
        parts = []
        if received is None or received.compact != self.compact:
            parts.append("compact (no spaces after ',' and ':')" if self.compact else
                         "with a space after ',' and ':'")
        if self.sort_keys and (received is None or not received.sort_keys):
            parts.append("with sorted keys")
        if received is None or received.ensure_ascii != self.ensure_ascii:
            parts.append("with non-ASCII characters as \\u escapes" if self.ensure_ascii else
                         "with non-ASCII characters as raw UTF-8")
        return ", ".join(parts)


JSON_FORMS = [JsonForm(*flags) for flags in itertools.product((True, False), repeat=3)]


def diagnose(body: bytes, headers: Mapping[str, str], secrets: Sequence[NamedSecret],
             allowed_secrets: AllowedSecrets, *, exact: bool = True) -> Diagnosis:
    """Say whether ``body`` with ``headers`` passes the webhook's check, and if not, why.

    ``exact`` is False when the body was given as a parsed JSON object rather than the bytes
    received: then any standard way of writing it out counts as the body itself."""
    configured = [s for s in secrets if s.value]
    if not configured:
        return Diagnosis(UNKNOWN_SECRET, "no NCS secret is configured: set AGORA_NCS_SECRET")
    checked = _checked_header(headers)
    if checked is None:
        return Diagnosis(NO_SIGNATURE, _no_header_message(headers))
    product_id = _product_id(body)
    allowed_names = tuple(allowed_secrets(product_id if product_id is not None else 1))
    allowed = [s for s in configured if s.name in allowed_names]
    others = [s for s in configured if s.name not in allowed_names]

    candidates = [("", body)]
    if exact:
        candidates += _rewrites(body)
    else:
        # Given as an object, the body's bytes are ours: each standard form of it is "as is".
        candidates += [("", candidate) for _, candidate in _json_rewrites(body)]
    for transformation, candidate in candidates:
        try:
            signer = _signer(candidate, headers, allowed, others)
        except SignatureError as exc:
            if exc.kind == "malformed":
                return Diagnosis(NO_SIGNATURE, f"{checked} reached the service but is not a "
                                 f"signature ({exc}): a proxy may have cut or rewritten it")
            continue
        if signer is None:
            continue
        return _verdict(signer, allowed_names, product_id, checked, transformation)
    names = ", ".join(s.name for s in configured)
    return Diagnosis(UNKNOWN_SECRET, f"signature mismatch: {checked} was made with a secret "
                     f"this service does not know (tried {names}); copy the Secret of the "
                     "Console's Notifications block that sends these events into "
                     f"{allowed_names[0]}")


def _verdict(signer: NamedSecret, allowed_names: Sequence[str], product_id: int | None,
             header: str, transformation: str) -> Diagnosis:
    product = f"productId {product_id}" if product_id is not None else "these"
    if transformation:
        also = "" if signer.name in allowed_names else \
            f" (and {product} events may not use {signer.name})"
        return Diagnosis(BODY_ALTERED, f"body altered in transit: it verifies with {signer.name} "
                         f"once {transformation}; make the proxy or framework in front of the "
                         f"service pass the raw bytes through unchanged{also}",
                         secret=signer.name, transformation=transformation)
    if signer.name not in allowed_names:
        return Diagnosis(OTHER_SECRET, f"signed with {signer.name}, but {product} events must be "
                         f"signed with {' or '.join(allowed_names)}: the event came from the "
                         "other Console block, or the two secrets are swapped",
                         secret=signer.name)
    note = ""
    if signer.name.endswith("_PREVIOUS"):
        note = " (the previous secret: the rotation in the Console is not finished)"
    return Diagnosis(OK, f"OK: {header} verifies with {signer.name}{note}", secret=signer.name)


def _signer(body: bytes, headers: Mapping[str, str], allowed: list[NamedSecret],
            others: list[NamedSecret]) -> NamedSecret | None:
    """The secret that signed ``body``: an allowed one first (two settings may hold the same
    value), then any other. None when none did; SignatureError("malformed") passes through."""
    for group in (allowed, others):
        if group:
            try:
                return NcsVerifier(group).verify(body, headers)
            except SignatureError as exc:
                if exc.kind != "mismatch":
                    raise
    return None


def _checked_header(headers: Mapping[str, str]) -> str | None:
    """The header the webhook checks: V2 when present, else the SHA-1 one."""
    present = {name.lower() for name in headers}
    for name in (V2_HEADER, V1_HEADER):
        if name.lower() in present:
            return name
    return None


def _no_header_message(headers: Mapping[str, str]) -> str:
    # Proxies rename with a prefix (X-Agora-Signature), or drop headers with underscores.
    lookalikes = sorted(name for name in headers if "signature" in name.lower())
    message = (f"no {V2_HEADER} or {V1_HEADER} header reached the service: a proxy stripped "
               "or renamed it")
    if len(lookalikes) == 1:
        message += f" (found {lookalikes[0]}, which looks like a renamed one)"
    elif lookalikes:
        message += f" (found {', '.join(lookalikes)}, which look like renamed ones)"
    return message


def _product_id(body: bytes) -> int | None:
    try:
        return parse_envelope(body).product_id
    except (EnvelopeError, RecursionError):
        return None


def _rewrites(body: bytes) -> list[tuple[str, bytes]]:
    """Bodies the sender may have signed, from what arrived, each with what was undone."""
    found = []
    if body.endswith(b"\n"):
        found.append(("a trailing newline added in transit is removed", body.rstrip(b"\r\n")))
    else:
        found.append(("a trailing newline removed in transit is put back", body + b"\n"))
    if b"\r\n" in body:
        found.append(("CRLF line endings are turned back into LF",
                      body.replace(b"\r\n", b"\n")))
    elif b"\n" in body:
        found.append(("LF line endings are turned back into CRLF",
                      body.replace(b"\n", b"\r\n")))
    return found + _json_rewrites(body)


def _json_rewrites(body: bytes) -> list[tuple[str, bytes]]:
    """The body written out again in every common JSON form other than its own."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return []
    received = next((form for form in JSON_FORMS if form.dump(data) == body.rstrip(b"\r\n")),
                    None)
    newline = " and without the trailing newline" if body.endswith(b"\n") else ""
    found: dict[bytes, str] = {}
    for form in JSON_FORMS:
        candidate = form.dump(data)
        if candidate != body and candidate not in found:
            found[candidate] = f"the JSON is written out {form.changes_from(received)}" \
                f"{newline} (it was re-serialised)"
    # A body whose keys were reordered (sorted, say) has lost the order Agora wrote them in;
    # Agora's own order is the best guess at it.
    in_agora_order = _agora_order(data)
    if in_agora_order is not None:
        for form in JSON_FORMS:
            if form.sort_keys:
                continue
            candidate = form.dump(in_agora_order)
            if candidate != body and candidate not in found:
                changes = form.changes_from(received)
                found[candidate] = "the JSON's keys are put back in Agora's order" \
                    f"{', and it is written out ' + changes if changes else ''}{newline} " \
                    "(it was re-serialised)"
    return [(label, candidate) for candidate, label in found.items()]


#: The order Agora writes an NCS envelope's fields and an RTC payload's fields in (from the
#: NCS reference's field tables and examples; keys it does not list keep their received order,
#: after these).
ENVELOPE_ORDER = ("noticeId", "productId", "eventType", "notifyMs", "sid", "payload")
PAYLOAD_ORDER = ("channelName", "uid", "platform", "clientType", "clientSeq", "ts", "reason",
                 "duration", "lastUid")


def _agora_order(data: Any) -> Any | None:
    """The envelope with its keys (and its payload's) in Agora's order, or None if it is not
    an envelope."""
    if not isinstance(data, dict) or "noticeId" not in data:
        return None

    def ordered(mapping: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
        keys = [k for k in order if k in mapping] + [k for k in mapping if k not in order]
        return {k: mapping[k] for k in keys}

    out = ordered(data, ENVELOPE_ORDER)
    if isinstance(out.get("payload"), dict):
        out["payload"] = ordered(out["payload"], PAYLOAD_ORDER)
    return out
