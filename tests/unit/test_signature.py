import pytest

from ncs.signature import NamedSecret, NcsVerifier, SignatureError, sign

# Agora's published example (shared/reference/ncs-sip-token.md, A.4).
VECTOR_BODY = (b'{"eventMs":1560408533119,"eventType":10,"noticeId":"4eb720f0-8da7-11e9-a43e-'
               b'53f411c2761f","notifyMs":1560408533119,"payload":{"a":"1","b":2},"productId":1}')
VECTOR_SHA256 = "6d3320c60b11101395b7fc8f9068748808a0aa1bfa064438e39d1bc2c7d74d99"
VECTOR_SHA1 = "033c62f40f687675f17f0f41f91a40c71c0f134c"

CURRENT = NamedSecret("AGORA_NCS_SECRET", "secret")
PREVIOUS = NamedSecret("AGORA_NCS_SECRET_PREVIOUS", "old-secret")


def test_sign_matches_agoras_published_vector():
    assert sign("secret", VECTOR_BODY) == {"Agora-Signature-V2": VECTOR_SHA256,
                                           "Agora-Signature": VECTOR_SHA1}


def test_v2_signature_verifies_and_names_the_secret():
    verifier = NcsVerifier([CURRENT, PREVIOUS])
    assert verifier.verify(VECTOR_BODY, {"Agora-Signature-V2": VECTOR_SHA256}) == CURRENT


def test_sha1_is_accepted_only_when_v2_is_absent():
    verifier = NcsVerifier([CURRENT])
    assert verifier.verify(VECTOR_BODY, {"Agora-Signature": VECTOR_SHA1}) == CURRENT
    with pytest.raises(SignatureError, match="mismatch"):
        verifier.verify(VECTOR_BODY, {"Agora-Signature-V2": "0" * 64,
                                      "Agora-Signature": VECTOR_SHA1})


def test_header_names_are_case_insensitive_and_hex_case_is_ignored():
    verifier = NcsVerifier([CURRENT])
    assert verifier.verify(VECTOR_BODY, {"agora-signature-v2": VECTOR_SHA256.upper()}) == CURRENT


def test_previous_secret_is_recognised_during_rotation():
    body = b'{"x":1}'
    verifier = NcsVerifier([CURRENT, PREVIOUS])
    assert verifier.verify(body, sign("old-secret", body)) == PREVIOUS


@pytest.mark.parametrize(("headers", "kind", "message"), [
    ({}, "missing", "no Agora-Signature-V2 or Agora-Signature header"),
    ({"Agora-Signature-V2": "abc"}, "malformed", "not 64 hex"),
    ({"Agora-Signature-V2": "z" * 64}, "malformed", "not 64 hex"),
    ({"Agora-Signature": "0" * 40}, "mismatch", "signature mismatch"),
    ({"Agora-Signature-V2": sign("other", VECTOR_BODY)["Agora-Signature-V2"]}, "mismatch",
     "signature mismatch"),
])
def test_rejections_say_why(headers, kind, message):
    with pytest.raises(SignatureError, match=message) as info:
        NcsVerifier([CURRENT]).verify(VECTOR_BODY, headers)
    assert info.value.kind == kind


def test_a_tampered_body_fails():
    headers = sign("secret", VECTOR_BODY)
    with pytest.raises(SignatureError, match="mismatch"):
        NcsVerifier([CURRENT]).verify(VECTOR_BODY.replace(b'"b":2', b'"b":3'), headers)


def test_a_verifier_without_secrets_cannot_be_built():
    with pytest.raises(ValueError):
        NcsVerifier([NamedSecret("AGORA_NCS_SECRET", "")])
