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
        # thin spaces, fullwidth dashes
        ("call 12\u2009\u2009555 123 4567 555 123 4568", "call 12  555 123 4567 555 123 4568"),
        ("call " + "\uff0d" * 22 + "5551234567 5551234567 ok", "call " + "-" * 22 + "5551234567 5551234567 ok"),
        # an hour NFKC makes two digits of, `⑫`: a time's, its minutes no phone's (before: masked `at 12:[pii:phone]`)
        ("at \u246b:30 5 123 4567 ok", "at 12:30 5 123 4567 ok"),
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


def test_a_digit_nfkc_makes_stays_as_the_text_shows_it_where_mask_reads_its_own_form() -> None:
    """`mask` reads a text's own form with the spaces, brackets and dashes NFKC makes read as those, not its digits:
    a card beside a fullwidth `５` is one as the text shows it (tests/test_scan_cost.py), so a superscript `²` before
    phones alike, a row's first number folded, is not read as `2` there and the phones are masked, though `scan`,
    reading the fold, labels none: hiding more, never less."""
    assert (
        ALL.mask("card 4111111111111111\uff15 and 4111111111111111") == "card [pii:credit_card]5 and [pii:credit_card]"
    )
    text = "call \u00b2 555 123 4567 555 123 4568"
    assert ALL.scan(text) == ALL.scan("call 2 555 123 4567 555 123 4568")
    assert ALL.mask(text).count("[pii:phone]") == 2


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # what was found in the text's own form and also read so folded is masked as before
        ("call 12\u00a0\u00a0555 123 4567 10.0.0.1 ok", "call 12\u00a0\u00a0[pii:phone] [pii:ip_address] ok"),
        ("call \uff15\uff15\uff15 123 4567 ok", "call [pii:phone] ok"),
        ("call 555\u00a0123\u00a04567 ok", "call [pii:phone] ok"),
        # an hour in one character NFKC makes two digits of: its minutes are not masked with the phone after them
        ("at \u246b:30 555 123 4567 ok", "at \u246b:30 [pii:phone] ok"),
        # a zero-width space between two cards: each masked whole, as the text's own form shows them
        ("pay 4111111111111111\u200b4111111111111111 ok", "pay [pii:credit_card][pii:credit_card] ok"),
    ],
)
def test_values_the_text_shows_are_masked_where_they_stand(text: str, masked: str) -> None:
    assert ALL.mask(text) == masked


_BARE = "5551234567 "
_CARD = "4111 1111 1111 1111"


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-15" + "\u00a0" * 26 + _BARE * 30 + _CARD,
        "2024-01-15" + " " * 26 + _BARE * 30 + _CARD,
        _BARE * 20 + _CARD,
        "x " + "13800138000 " * 12 + "1234",
        "call: " + "1796420988 " * 30 + "1234",
    ],
)
def test_bare_phones_a_row_goes_on_past_are_no_list_streamed_as_whole(text: str) -> None:
    # before: a window whose end held back the run read its first numbers as a list of phones, though the run went on
    # past the window to a card's groups or a short number (no list, a table's row, read whole): a phone at 42 of 77
    # cuts (every 5th) of the first, 100 of 238 of the third, none whole
    assert ALL.scan_output(text) == frozenset()
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize("text", [_BARE * 30 + "ok", "x " + "13800138000 " * 12 + "ok", _BARE * 30 + "555-123-4567"])
def test_bare_phones_a_list_is_of_are_phones_whole_and_streamed(text: str) -> None:
    assert ALL.scan_output(text) == {"pii:phone"}
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize("spaces", [13, 18, 24])
@pytest.mark.parametrize("lead", ["12", "call 12", "2024-01-15"])
def test_a_number_then_up_to_24_spaces_before_a_phone_is_not_masked_with_it(lead: str, spaces: int) -> None:
    # a number two spaces or more before a phone is read apart from it, as after 2-12 spaces or 25 and more. Before:
    # `_PHONE`'s candidate from the number, cut 26 characters on, was read as a row's, no phone
    text = lead + " " * spaces + "555 123 4567 ok"
    assert ALL.scan_output(text) == {"pii:phone"}
    assert ALL.mask(text) == lead + " " * spaces + "[pii:phone] ok"
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    "text",
    [
        "10 20  30 40 50 60 70 80",  # a row with other numbers: as before, no phones
        "12" + " " * 13 + "555 123 4567 555 123 4568",  # two phones alike after the number: a row's, as after 2 spaces
        "12 34" + " " * 13 + "555 123 4567",  # two numbers before: a row's
        "    0   29  458    7   16  645    4    3\n",  # a table's aligned columns
    ],
)
def test_rows_with_two_spaces_stay_rows(text: str) -> None:
    assert ALL.scan_output(text) == frozenset()
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize("gap", ["  -" + " " * 22, "  --" + " " * 21, " (" + " " * 23])
def test_phones_more_than_24_separators_after_a_number_are_found_streamed_as_whole(gap: str) -> None:
    # before: a stream's tail starting at the run after the gap read the number a `-` or a bracket joins before it as
    # the run's row, counting the separators to the `-` only (not the spaces after it): no phones at the cuts 385-389,
    # phones whole (the gap of 25 parts the number from the run: `_ROW_ON`)
    text = "x 12" + gap + "020 7946 0958 " * 30 + "ok"
    assert ALL.scan_output(text) == {"pii:phone"}
    assert _streamed_differ(ALL, text) == []
