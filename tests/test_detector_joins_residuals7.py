"""The joined-runs residuals the fiftieth sitting left (2026-12-06): a value inside an IBAN is the IBAN's, `mask`
names each value it hides, and a reply streamed in any two pieces is labelled as the same reply read whole."""

from __future__ import annotations

import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.test_detector_card_and_phone_layouts import _streamed_differ

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])


@pytest.mark.parametrize(
    "iban",
    [
        "GB09 RZNL 6907 0293 1375 85",
        "GB09-RZNL-6907-0293-1375-85",
        "IE42 CPMP 2678 0699 0384 58",
        "IE42-CPMP-2678-0699-0384-58",
        "gb09 rznl 6907 0293 1375 85",
    ],
)
@pytest.mark.parametrize(("lead", "tail"), [("acct ", ""), ("", " ok"), ("IBAN: ", ".")])
def test_an_ibans_account_digits_after_its_banks_letters_are_the_ibans(iban: str, lead: str, tail: str) -> None:
    # a run inside a found IBAN is the IBAN's, as a phone there already was. Before: `pii:credit_card` too where the
    # account digits pass Luhn, and with dashes `pii:phone` as well
    text = lead + iban + tail
    assert ALL.scan_output(text) == {"pii:iban"}
    assert ALL.mask(text) == lead + "[pii:iban]" + tail
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # the same digits with no IBAN before them (its check digits wrong, its head gone, its separators mixed) are
        # read as they are alone
        ("acct GB10 RZNL 6907 0293 1375 85", {"pii:credit_card", "pii:phone"}),
        ("pay RZNL 6907 0293 1375 85", {"pii:credit_card", "pii:phone"}),
        ("acct GB09-RZNL-6907 0293 1375 85", {"pii:credit_card", "pii:phone"}),
        ("acct GB09 RZNL 6907 0293 1375 85, card 4111 1111 1111 1111", {"pii:iban", "pii:credit_card"}),
    ],
)
def test_digits_outside_an_iban_are_read_as_alone(text: str, found: set[str]) -> None:
    assert ALL.scan_output(text) == found
    assert _streamed_differ(ALL, text) == []

