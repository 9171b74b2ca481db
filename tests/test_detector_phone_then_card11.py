"""A card after a phone written with dots or brackets, and a card after a double dash, are found as the card alone
(2026-12-07): the card's run was read from the phone's last dot or bracket, or the double dash as a sign's, and the
card was left in clear, whole and streamed."""

from __future__ import annotations

import pytest

from tests.test_detector_card_and_phone_layouts import ALL, _streamed_differ

PAD = "word " * 30


@pytest.mark.parametrize(
    "phone",
    ["555.123.4567", "1.555.123.4567", "020.7946.0000", "(555) 123.4567"],
)
@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "3782 822463 10005"])
def test_a_card_after_a_phone_written_with_dots_or_brackets_is_found(phone: str, card: str) -> None:
    text = f"x {phone} {card}"
    assert ALL.scan_output(text) == {"pii:phone", "pii:credit_card"}
    assert ALL.mask(text) == "x [pii:phone] [pii:credit_card]"
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("x --4111 1111 1111 1111", "x --[pii:credit_card]"),
        ("x --4111111111111111", "x --[pii:credit_card]"),
        ("card--4111-1111-1111-1111", "card--[pii:credit_card]"),
        ("acct DE89-3704-0044-0532-0130-00--4111 1111 1111 1111", "acct [pii:iban]--[pii:credit_card]"),
    ],
)
def test_a_card_after_a_double_dash_is_found_as_after_a_space(text: str, masked: str) -> None:
    assert "pii:credit_card" in ALL.scan_output(text)
    assert ALL.mask(text) == masked
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


@pytest.mark.parametrize(
    "text",
    [
        # a sign, a version's or a date's dots, a number's dash before the card's run: as before
        "x -4111 1111 1111 1111",
        "v1.2.4567 4111 1111 1111 1111",
        "x 12.34.4567 4111 1111 1111 1111",
        "x 2024-4111 1111 1111 1111",
    ],
)
def test_a_card_after_a_sign_or_a_number_written_otherwise_is_none_as_before(text: str) -> None:
    assert "pii:credit_card" not in ALL.scan_output(text)
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []
