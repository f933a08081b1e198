import pytest
from hypothesis import given
from hypothesis import strategies as st

from sip.numbers import e164, number_key


@pytest.mark.parametrize(("text", "key"), [
    # E.164 and the same digits without "+", however they are written.
    ("+18005550100", "+18005550100"), ("18005550100", "+18005550100"),
    ("+1 (800) 555-0100", "+18005550100"), ("800.555.0100", "+8005550100"),
    (4930123456, "+4930123456"), (" +18005550100 ", "+18005550100"),
    # Extensions (fewer than 6 digits) as they are: the gateway's own example dials "7373".
    ("7373", "7373"), ("1", "1"), ("73-73", "7373"), (7373, "7373"),
    # SIP user parts, lower-cased; a URI gives its user part (its number, for tel:).
    ("benweekes", "benweekes"), ("BenWeekes", "benweekes"), ("ben.weekes_2", "ben.weekes_2"),
    ("sip:alice@pbx.example.com", "alice"), ("SIPS:Alice@pbx.example.com:5061", "alice"),
    ("sip:+18005550100@trunk.example.com;user=phone", "+18005550100"),
    ("sip:7373;isub=1@pbx", "7373"), ("sip:ben%2Eweekes@pbx", "ben.weekes"),
    ("tel:+1-800-555-0100;ext=12", "+18005550100"),
])
def test_what_trunks_send_has_one_key(text, key):
    assert number_key(text) == key


@pytest.mark.parametrize("text", [
    "", "   ", None, True, 1.5, [], {}, "<script>", "a b", "alice@", "-1", ".alice",
    "+12", "+1234567890123456", "1234567890123456", "+" + "9" * 30, "++1555", "()", "+",
    "sip:pbx.example.com", "sip:@pbx", "sip:%3Cscript%3E@pbx", "tel:", "a" * 33,
    "١٢٣٤", "１１１", "111\x00", "\u212aelvin", "x" * 300,
])
def test_what_is_no_number_user_or_extension_is_refused(text):
    with pytest.raises(ValueError):
        number_key(text)


@given(st.from_regex(r"[1-9][0-9]{5,14}", fullmatch=True))
def test_a_number_with_and_without_plus_is_the_same_line(digits):
    assert number_key(digits) == number_key(f"+{digits}") == f"+{digits}"
    assert number_key(f"sip:{digits}@trunk") == number_key(f"+{digits}")


@pytest.mark.parametrize(("text", "number"), [
    ("+18005550100", "+18005550100"), ("18005550100", "+18005550100"),
    ("+1 (800) 555-0100", "+18005550100"), (4930123456, "+4930123456"),
])
def test_dialled_numbers_are_e164(text, number):
    assert e164(text) == number


@pytest.mark.parametrize("text", ["", "7373", "benweekes", "sip:alice@example.com", "+12",
                                  "+1234567890123456", None, True])
def test_what_the_gateway_cannot_dial_is_refused(text):
    with pytest.raises(ValueError):
        e164(text)
