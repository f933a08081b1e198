import pytest

from sip.service import normalise_number


@pytest.mark.parametrize(("text", "number"), [
    ("+18005550100", "+18005550100"), ("18005550100", "+18005550100"),
    ("+1 (800) 555-0100", "+18005550100"), (4930123456, "+4930123456"),
])
def test_numbers_are_normalised_to_e164(text, number):
    assert normalise_number(text) == number


@pytest.mark.parametrize("text", ["", "abc", "+12", "+1234567890123456", None, True,
                                  "sip:alice@example.com"])
def test_what_is_not_a_phone_number_is_refused(text):
    with pytest.raises(ValueError):
        normalise_number(text)
