"""The IBAN residuals the fifty-third sitting left (2026-12-07): a card after a compact or split IBAN's dot, then more
numbers in its row, and a phone after a dashed IBAN's double dash, are found as after a space, whole and streamed."""

from __future__ import annotations

import pytest

from tests.test_detector_card_and_phone_layouts import ALL, _streamed_differ

PAD = "word " * 30


@pytest.mark.parametrize(
    "iban",
    [
        "DE89370400440532013000",
        "GB93LZUJ07285413846048",
        "DE89.3704.0044.0532.0130.00",
        "DE89 3704 0044 0532 0130 00",
    ],
)
@pytest.mark.parametrize("row", [" 1 2 3", " 05/27 123"])
def test_a_card_after_an_ibans_dot_then_a_row_is_found_whole_and_streamed(iban: str, row: str) -> None:
    # read as a decimal's fraction before a number, the card was in clear whole; streamed in a window ending after it,
    # found
    card = "4837953362770829" if iban.startswith("GB") else "4111111111111111"
    text = f"{iban}.{card}{row}"
    assert ALL.scan_output(text) == {"pii:iban", "pii:credit_card"}
    assert ALL.mask(text) == f"[pii:iban].[pii:credit_card]{row}"
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


@pytest.mark.parametrize(
    "text",
    [
        # a decimal's fraction, or no IBAN before the dot (its check digits wrong): no card, as before
        "x 0.4111111111111111 1 2 3",
        "x 12.4111111111111111 1 2 3",
        "DE89370400440532013001.4111111111111111 1 2 3",
    ],
)
def test_a_card_after_a_dot_and_no_iban_stays_a_fraction(text: str) -> None:
    assert "pii:credit_card" not in ALL.scan_output(text)
    assert ALL.mask(text).endswith(".4111111111111111 1 2 3")


@pytest.mark.parametrize(
    ("value", "label"),
    [("555-123-4567", "pii:phone"), ("+1 555 123 4567", "pii:phone"), ("555-123-4567-x", "pii:phone")],
)
def test_a_phone_after_a_dashed_ibans_double_dash_is_found_as_alone(value: str, label: str) -> None:
    # the dash after the IBAN's joint was read as one group of more: the IBAN none to the phone finder, and the phone
    # read with its digits, in clear
    text = f"acct DE89-3704-0044-0532-0130-00--{value}"
    alone = ALL.mask(f"x --{value}")
    assert ALL.scan_output(text) == {"pii:iban", label}
    assert ALL.mask(text) == "acct [pii:iban]" + alone[2:]
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


@pytest.mark.parametrize(
    "text",
    [
        # a group of more joined by the joint: one longer number, as before
        "acct DE89-3704-0044-0532-0130-00-1234",
        "acct DE89-3704-0044-0532-0130-00-1234-5678",
        # after a double dash, what is none alone is none: only the IBAN
        "acct DE89-3704-0044-0532-0130-00--1234",
        "acct DE89-3704-0044-0532-0130-00--",
    ],
)
def test_after_a_dashed_ibans_end_what_is_no_value_stays_in_clear(text: str) -> None:
    found = ALL.scan_output(text)
    assert "pii:phone" not in found and "pii:credit_card" not in found
    assert ALL.mask(text).endswith(text[text.index("-00-") + 3 :])
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("DE12 AT34 FR56 GB78 IT90 DE12 AT34 FR56", "DE12 AT34 FR56 GB78 IT90 DE12 AT34 FR56"),
        ("ref DE17 NO44 0150 2442 785", "ref DE17 NO44 0150 2442 785"),
        # an IBAN of its country's length, then a number: the IBAN alone, not one 26 characters long
        ("ES50 9055 1799 5914 3671 2501 12 34 56", "[pii:iban] 12 34 56"),
    ],
)
def test_a_listed_countrys_iban_in_capitals_has_its_countrys_length(text: str, masked: str) -> None:
    # any length of 15-34 was read in capitals: a list of heads, or a head and more groups, passing mod-97 by chance
    # (1 in 97) was one IBAN whole, and streamed, none at the cuts where a window held less of it
    assert ALL.mask(text) == masked
    assert _streamed_differ(ALL, f"{PAD}{text} abcd {PAD}") == []


@pytest.mark.parametrize("text", ["XK05 1212 0123 4567 8906", "QQ77 0001 2345 6789 0123 4567 8901 234"])
def test_an_iban_in_capitals_of_a_country_not_listed_may_be_of_any_length(text: str) -> None:
    # (a listed country's of its own length, one not listed of 15-34 characters: mod-97 checked)
    assert ALL.mask(text) == "[pii:iban]"


@pytest.mark.parametrize(
    "text",
    [
        "QQ77-0001-2345-6789-0123-4567-8901-234",
        "QQ77.0001.2345.6789.0123.4567.8901.234",
        "qq77 0001 2345 6789 0123 4567 8901 234",
    ],
)
def test_an_iban_of_a_country_not_listed_dashed_dotted_or_in_small_letters_is_none(text: str) -> None:
    # (as the README says: only spaced or compact, in capitals; dashes and small letters join ids and hex in fours)
    assert ALL.mask(text) == text


@pytest.mark.parametrize(
    "before",
    ["DE89-3704-0044-0532-0130-00-", "DE89370400440532013000-", "KZ90-89SI-3069-0748-34Q1-", "INV-", "ID-"],
)
@pytest.mark.parametrize("row", [" 12x", " 1 2 3x", " 1 2 3-x"])
def test_a_card_after_an_ibans_or_a_labels_dash_then_a_row_joined_to_a_word_is_found_whole_and_streamed(
    before: str, row: str
) -> None:
    # the search for a card written without spaces refused one after a dash, a label's or an IBAN's end too: in clear
    # whole, found streamed in a window ending before the word (`x 4111111111111111 12x` is found)
    text = f"{before}4111111111111111{row}"
    assert "pii:credit_card" in ALL.scan_output(text)
    assert ALL.mask(text).endswith(f"-[pii:credit_card]{row}")
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


@pytest.mark.parametrize("before", ["x -", "2024-", "ab12-", "DE89-3704-0044-0532-0130-01-", "1234-5678-"])
def test_a_card_after_a_sign_or_a_longer_numbers_dash_then_a_row_joined_to_a_word_stays_none(before: str) -> None:
    # (a dash that joins a number or a word to it, or a sign, as before; the IBAN's check digits wrong: no IBAN)
    text = f"{before}4111111111111111 12x"
    assert "pii:credit_card" not in ALL.scan_output(text)
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []
