"""The SIP service's checks of what callers ask for: the one place transfer and DTMF input is
validated (the view answers 400 with these messages; the gateway client relies on them)."""

from __future__ import annotations

import pytest

from sip.inputs import dtmf_digits, transfer_target


@pytest.mark.parametrize("digits", ["", "12a", "1 2", "+1", "١٢", "12\n", None, 12])
def test_dtmf_refuses_anything_but_keypad_digits(digits: object) -> None:
    with pytest.raises(ValueError, match="digits"):
        dtmf_digits(digits)


def test_dtmf_keeps_keypad_digits() -> None:
    assert dtmf_digits("0123456789*#") == "0123456789*#"


@pytest.mark.parametrize(("destination", "leg", "problem"), [
    (None, None, "destination is required"),
    ("  ", None, "destination is required"),
    (42, None, "destination is required"),
    ("+14155550123", "cleg", "leg must be one of aleg, bleg"),
    ("+14155550123", 1, "leg must be one of aleg, bleg"),
])
def test_transfer_refuses_what_the_gateway_cannot_take(destination: object, leg: object,
                                                        problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        transfer_target(destination, leg)


@pytest.mark.parametrize("leg", [None, "aleg", "bleg"])
def test_transfer_trims_the_destination_and_keeps_the_leg(leg: str | None) -> None:
    assert transfer_target(" sip:desk@pbx.test ", leg) == ("sip:desk@pbx.test", leg)
