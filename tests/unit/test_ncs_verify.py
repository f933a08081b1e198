"""`flask ncs verify`: the diagnosis of a saved webhook request, as a pure function and through
the command (click's runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask

from config import Settings
from factory.app import create_app
from ncs import diagnose as d
from ncs.signature import V1_HEADER, V2_HEADER, NamedSecret, sign
from ncs.views import secrets_for_product

CURRENT = "current-rtc-secret-0001"
PREVIOUS = "previous-rtc-secret-0002"
CONVOAI = "convoai-block-secret-0003"
STRANGER = "nobody-here-knows-this-0004"
SECRETS = [NamedSecret("AGORA_NCS_SECRET", CURRENT),
           NamedSecret("AGORA_NCS_SECRET_PREVIOUS", PREVIOUS),
           NamedSecret("AGORA_CONVOAI_NCS_SECRET", CONVOAI)]
ALLOWED = secrets_for_product(True)
#: Agora's published example (docs and style guide): secret "secret" signs this exact body.
AGORA_BODY = (b'{"eventMs":1560408533119,"eventType":10,"noticeId":"4eb720f0-8da7-11e9-a43e-'
              b'53f411c2761f","notifyMs":1560408533119,"payload":{"a":"1","b":2},"productId":1}')
AGORA_V2 = "6d3320c60b11101395b7fc8f9068748808a0aa1bfa064438e39d1bc2c7d74d99"


def envelope(product_id: int = 1, channel: str = "support_42") -> dict:
    return {"noticeId": "n-1", "productId": product_id, "eventType": 103,
            "notifyMs": 1_700_000_000_000,
            "payload": {"channelName": channel, "uid": 111, "clientSeq": 7}}


def compact(data: dict, **options: bool) -> bytes:
    return json.dumps(data, separators=(",", ":"), **options).encode()


def run(body: bytes, headers: dict[str, str], *, exact: bool = True) -> d.Diagnosis:
    return d.diagnose(body, headers, SECRETS, ALLOWED, exact=exact)


def assert_no_secret_in(text: str) -> None:
    for secret in (CURRENT, PREVIOUS, CONVOAI, STRANGER):
        assert secret not in text


# -- OK ----------------------------------------------------------------------------------------

def test_agoras_published_example_verifies_with_the_secret_that_signed_it() -> None:
    result = d.diagnose(AGORA_BODY, {V2_HEADER: AGORA_V2}, [NamedSecret("AGORA_NCS_SECRET",
                                                                        "secret")], ALLOWED)
    assert (result.kind, result.secret) == (d.OK, "AGORA_NCS_SECRET")
    assert result.message == "OK: Agora-Signature-V2 verifies with AGORA_NCS_SECRET"


@pytest.mark.parametrize("header", [V2_HEADER, V1_HEADER, V2_HEADER.lower(), "AGORA-SIGNATURE"])
def test_either_header_in_any_letter_case_verifies(header: str) -> None:
    body = compact(envelope())
    signature = sign(CURRENT, body)[V1_HEADER if "v2" not in header.lower() else V2_HEADER]
    result = run(body, {header: signature})
    assert result.ok and result.secret == "AGORA_NCS_SECRET"


def test_the_previous_secret_verifies_and_says_the_rotation_is_unfinished() -> None:
    body = compact(envelope())
    result = run(body, sign(PREVIOUS, body))
    assert result.ok and result.secret == "AGORA_NCS_SECRET_PREVIOUS"
    assert "rotation" in result.message


def test_a_body_given_as_an_object_verifies_in_any_standard_form() -> None:
    # A saved request that kept the parsed body: its original bytes were spaced, not compact.
    original = json.dumps(envelope()).encode()
    result = run(compact(envelope()), sign(CURRENT, original), exact=False)
    assert result.ok


# -- (a) no signature header -----------------------------------------------------------------

def test_no_signature_header_says_a_proxy_stripped_it() -> None:
    result = run(compact(envelope()), {"Content-Type": "application/json"})
    assert result.kind == d.NO_SIGNATURE and not result.ok
    assert "stripped or renamed" in result.message
    assert "found" not in result.message


def test_a_renamed_signature_header_is_named() -> None:
    body = compact(envelope())
    result = run(body, {"X-Agora-Signature-V2": sign(CURRENT, body)[V2_HEADER],
                        "Content-Type": "application/json"})
    assert result.kind == d.NO_SIGNATURE
    assert "found X-Agora-Signature-V2" in result.message


def test_a_cut_signature_is_not_taken_for_a_wrong_secret() -> None:
    body = compact(envelope())
    result = run(body, {V2_HEADER: sign(CURRENT, body)[V2_HEADER][:40]})
    assert result.kind == d.NO_SIGNATURE and "not a signature" in result.message


# -- (b) another configured secret -----------------------------------------------------------

@pytest.mark.parametrize(("product_id", "signed_with", "named", "required"), [
    (17, CURRENT, "AGORA_NCS_SECRET", "AGORA_CONVOAI_NCS_SECRET"),
    (17, PREVIOUS, "AGORA_NCS_SECRET_PREVIOUS", "AGORA_CONVOAI_NCS_SECRET"),
    (1, CONVOAI, "AGORA_CONVOAI_NCS_SECRET", "AGORA_NCS_SECRET"),
])
def test_a_secret_of_the_other_product_is_named_never_shown(
        product_id: int, signed_with: str, named: str, required: str) -> None:
    body = compact(envelope(product_id))
    result = run(body, sign(signed_with, body))
    assert (result.kind, result.secret) == (d.OTHER_SECRET, named)
    assert f"signed with {named}" in result.message and required in result.message
    assert_no_secret_in(result.message)


def test_two_settings_holding_one_value_count_as_the_allowed_one() -> None:
    secrets = [NamedSecret("AGORA_NCS_SECRET", CURRENT),
               NamedSecret("AGORA_CONVOAI_NCS_SECRET", CURRENT)]
    body = compact(envelope(17))
    result = d.diagnose(body, sign(CURRENT, body), secrets, ALLOWED)
    assert result.ok and result.secret == "AGORA_CONVOAI_NCS_SECRET"


# -- (c) body altered in transit ---------------------------------------------------------------

UNICODE = envelope(channel="café_☎")


@pytest.mark.parametrize(("signed", "received", "words"), [
    (compact(UNICODE), json.dumps(UNICODE).encode(), "compact"),
    (json.dumps(UNICODE).encode(), compact(UNICODE), "with a space after"),
    (compact(UNICODE, ensure_ascii=False), compact(UNICODE), "raw UTF-8"),
    (compact(UNICODE), compact(UNICODE, ensure_ascii=False), "\\u escapes"),
    (compact(UNICODE, sort_keys=True), compact(UNICODE), "sorted keys"),
    (compact(UNICODE), compact(UNICODE) + b"\n", "trailing newline added"),
    (compact(UNICODE) + b"\n", compact(UNICODE), "trailing newline removed"),
    (json.dumps(UNICODE, indent=1).encode(), json.dumps(UNICODE, indent=1).encode().replace(
        b"\n", b"\r\n"), "CRLF"),
    # A framework that sorts keys: the original order is lost, Agora's is put back.
    (compact(UNICODE), compact(UNICODE, sort_keys=True), "Agora's order"),
    (compact(UNICODE), json.dumps(UNICODE, sort_keys=True, indent=2).encode(),
     "Agora's order"),
], ids=["spaced", "compacted", "escaped", "unescaped", "reordered", "newline-added",
        "newline-removed", "crlf", "sorted", "sorted-and-pretty"])
def test_a_re_serialised_body_is_recognised_and_the_change_named(
        signed: bytes, received: bytes, words: str) -> None:
    result = run(received, sign(CURRENT, signed))
    assert (result.kind, result.secret) == (d.BODY_ALTERED, "AGORA_NCS_SECRET")
    assert words in result.message and words in (result.transformation or "")
    assert result.message.startswith("body altered in transit")


def test_an_altered_body_signed_with_the_other_products_secret_says_both() -> None:
    body = compact(envelope(1))
    result = run(body + b"\n", sign(CONVOAI, body))
    assert result.kind == d.BODY_ALTERED and "may not use AGORA_CONVOAI_NCS_SECRET" in \
        result.message


# -- (d) a secret the service does not know ----------------------------------------------------

def test_an_unknown_secret_lists_the_settings_tried_and_no_value() -> None:
    body = compact(envelope())
    result = run(body, sign(STRANGER, body))
    assert result.kind == d.UNKNOWN_SECRET and result.secret is None
    assert "AGORA_NCS_SECRET, AGORA_NCS_SECRET_PREVIOUS, AGORA_CONVOAI_NCS_SECRET" in \
        result.message
    assert_no_secret_in(result.message)


def test_a_body_that_is_not_json_still_gets_a_verdict() -> None:
    body = b"\xff\xfe not json"
    assert run(body, sign(STRANGER, body)).kind == d.UNKNOWN_SECRET
    assert run(body, sign(CURRENT, body)).ok


# -- the command -------------------------------------------------------------------------------

@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings.replace(agora_ncs_secret=CURRENT,
                                       agora_ncs_secret_previous=PREVIOUS,
                                       agora_convoai_ncs_secret=CONVOAI))


def verify(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["ncs", "verify", *args])


def saved(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_the_command_prints_ok_and_exits_0(app: Flask, tmp_path: Path) -> None:
    body = compact(envelope())
    result = verify(app, "--body", saved(tmp_path, "body.json", body),
                    "--header", f"{V2_HEADER}: {sign(CURRENT, body)[V2_HEADER]}",
                    "-H", "Content-Type: application/json")
    assert result.exit_code == 0, result.output
    assert result.output == "OK: Agora-Signature-V2 verifies with AGORA_NCS_SECRET\n"


@pytest.mark.parametrize(("secret", "headers", "mangle", "kind_words"), [
    (CURRENT, ("X-Agora-Signature-V2",), False, "found X-Agora-Signature-V2"),
    (CONVOAI, (V2_HEADER,), False, "signed with AGORA_CONVOAI_NCS_SECRET"),
    (CURRENT, (V2_HEADER,), True, "body altered in transit"),
    (STRANGER, (V2_HEADER,), False, "secret this service does not know"),
], ids=["no-header", "other-secret", "altered", "unknown-secret"])
def test_each_failure_is_one_line_and_exit_1(app: Flask, tmp_path: Path, secret: str,
                                             headers: tuple[str, ...], mangle: bool,
                                             kind_words: str) -> None:
    body = compact(envelope())
    received = body + b"\r\n" if mangle else body
    lines = [f"{name}: {sign(secret, body)[V2_HEADER]}" for name in headers]
    args = ["--body", saved(tmp_path, "body.json", received)]
    for line in lines:
        args += ["--header", line]
    result = verify(app, *args)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and kind_words in result.output
    assert_no_secret_in(result.output)


def test_a_saved_request_with_the_body_as_text(app: Flask, tmp_path: Path) -> None:
    body = compact(envelope(17))
    request = {"headers": {V2_HEADER.lower(): sign(CONVOAI, body)[V2_HEADER]},
               "body": body.decode()}
    result = verify(app, "--request", saved(tmp_path, "req.json", json.dumps(request).encode()))
    assert result.exit_code == 0
    assert "AGORA_CONVOAI_NCS_SECRET" in result.output


def test_a_saved_request_with_the_body_as_an_object(app: Flask, tmp_path: Path) -> None:
    original = json.dumps(envelope(), ensure_ascii=False).encode()  # spaced, as sent
    request = {"headers": {V2_HEADER: sign(CURRENT, original)[V2_HEADER]}, "body": envelope()}
    result = verify(app, "--request", saved(tmp_path, "req.json", json.dumps(request).encode()))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("args", "words"), [
    ((), "give the request"),
    (("--body", "/nonexistent/body.json"), "cannot read /nonexistent/body.json"),
    (("--body", "BODY", "--header", "no colon here"), "--header must look like"),
    (("--request", "BAD_JSON"), "is not JSON"),
    (("--request", "NOT_A_REQUEST"), 'with "headers" and "body"'),
    (("--request", "BAD_HEADERS"), '"headers" must map'),
    (("--request", "BAD_JSON", "--body", "BODY"), "not both"),
], ids=["nothing", "missing-file", "bad-header", "bad-json", "not-a-request", "bad-headers",
        "both"])
def test_usage_errors_are_one_line_and_exit_2(app: Flask, tmp_path: Path, args: tuple[str, ...],
                                               words: str) -> None:
    files = {"BODY": saved(tmp_path, "body.json", b"{}"),
             "BAD_JSON": saved(tmp_path, "bad.json", b"{not json"),
             "NOT_A_REQUEST": saved(tmp_path, "list.json", b"[1, 2]"),
             "BAD_HEADERS": saved(tmp_path, "h.json", b'{"headers": {"a": 1}, "body": ""}')}
    result = verify(app, *(files.get(a, a) for a in args))
    assert result.exit_code == 2
    assert words in result.output and result.output.count("\n") == 1
    assert "Traceback" not in result.output
