"""The joined-runs residuals the forty-eighth sitting left (helpers joins4 and revjoins4, 2026-12-06): `mask` hides
exactly what `scan` labels, and a reply streamed in any two pieces is labelled as the same reply read whole. The
detectors read a text in its NFKC form, where a no-break space (U+00A0) and a thin space (U+2009) are spaces and a
fullwidth dash (U+FF0D) is `-`: such a text is labelled, and masked, as the one written with those."""

from __future__ import annotations

import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.test_detector_card_and_phone_layouts import _streamed_differ

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])
_LABELS = ("pii:phone", "pii:ip_address", "pii:credit_card")


def _masked_labels(text: str) -> set[str]:
    """The labels `mask` puts in `text`."""
    masked = ALL.mask(text)
    return {label for label in _LABELS if f"[{label}]" in masked}


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        # a number, no-break spaces, then two phones alike: read as spaces, one row, no phones (before: `mask` read the
        # numbers after a no-break space apart from the one before it and hid both phones)
        ("call 12\u00a0555 123 4567 555 123 4568", "call 12 555 123 4567 555 123 4568"),
        ("call 12\u00a0\u00a0555 123 4567 555 123 4568", "call 12  555 123 4567 555 123 4568"),
        ("call 12 \u00a0555 123 4567 555 123 4568", "call 12  555 123 4567 555 123 4568"),
        ("call 12\u00a0 555 123 4567 555 123 4568", "call 12  555 123 4567 555 123 4568"),
        ("call 12:30\u00a0\u00a0555 123 4567 555 123 4568", "call 12:30  555 123 4567 555 123 4568"),
        # phones written with no-break spaces in a row with others
        ("call 12  555\u00a0123\u00a04567 555 123 4568", "call 12  555 123 4567 555 123 4568"),
        ("call 12\u00a0555\u00a0123\u00a04567 555 123 4568", "call 12 555 123 4567 555 123 4568"),
        ("call 12 555\u00a0123\u00a04567 555 123 4568", "call 12 555 123 4567 555 123 4568"),
        # thin spaces, fullwidth dashes, a superscript digit
        ("call 12\u2009\u2009555 123 4567 555 123 4568", "call 12  555 123 4567 555 123 4568"),
        ("call " + "\uff0d" * 22 + "5551234567 5551234567 ok", "call " + "-" * 22 + "5551234567 5551234567 ok"),
        ("call \u00b2 555 123 4567 555 123 4568", "call 2 555 123 4567 555 123 4568"),
        # a number's gap of no-break spaces before a phone and an address: the address alone, as with spaces
        ("call 12  " + "\u00a0" * 22 + "020 7946 0958 10.0.0.1 ok", "call 12" + " " * 24 + "020 7946 0958 10.0.0.1 ok"),
    ],
)
def test_numbers_apart_by_characters_nfkc_makes_spaces_or_dashes_are_masked_as_scanned(text: str, plain: str) -> None:
    found = ALL.scan(plain)
    assert ALL.scan(text) == found
    assert _masked_labels(text) == set(found) == _masked_labels(plain)
    assert ALL.mask(text).count("[pii:phone]") == ALL.mask(plain).count("[pii:phone]")
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # what was found in the text's own form and also read so folded is masked as before
        ("call 12\u00a0\u00a0555 123 4567 10.0.0.1 ok", "call 12\u00a0\u00a0[pii:phone] [pii:ip_address] ok"),
        ("call \uff15\uff15\uff15 123 4567 ok", "call [pii:phone] ok"),
        ("call 555\u00a0123\u00a04567 ok", "call [pii:phone] ok"),
        # a zero-width space between two cards: each masked whole, as the text's own form shows them
        ("pay 4111111111111111\u200b4111111111111111 ok", "pay [pii:credit_card][pii:credit_card] ok"),
    ],
)
def test_values_the_text_shows_are_masked_as_before(text: str, masked: str) -> None:
    assert ALL.mask(text) == masked
