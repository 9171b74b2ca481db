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


@pytest.mark.parametrize(
    "text",
    [
        # the phone's last group and the card's first three groups pass Luhn by chance (1 time in 10)
        "tel: 748.757.3480 4177 4801 4809 1385",
        "x (728) 469.3954 4214 3228 3867 3855",
        "x 446.292.7955 4091 3909 9603 0828",
        "x 365.923.8070 4865 6355 1505 8773",
        "x 842.639.9282 4288 9093 1002 5165",
        "x 970.263.9161 4495 2883 1436 6761",
        # the card and the phone's first group after it pass Luhn by chance, as 19 digits
        "x 4383 7616 5261 4245 291-248-4908",
        "x 5541 7592 3960 5658 405-545-3103",
        "x 5167 6907 5830 0988 987-517-2941",
        "x 5443 7811 4126 1817 765-931-8729",
    ],
)
def test_a_card_beside_a_phone_is_found_when_groups_of_both_pass_luhn_by_chance(text: str) -> None:
    assert ALL.scan_output(text) == {"pii:phone", "pii:credit_card"}
    assert ALL.mask(text).split(" ", 1)[1] in ("[pii:phone] [pii:credit_card]", "[pii:credit_card] [pii:phone]")
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("\n555-123-4567 4111 1111 1111 1111", "\n[pii:phone] [pii:credit_card]"),
        (" 555.123.4567 4111 1111 1111 1111", " [pii:phone] [pii:credit_card]"),
        (":555.123.4567 4111 1111 1111 1111", ":[pii:phone] [pii:credit_card]"),
        (" 12345 4111 1111 1111 1111", " 12345 [pii:credit_card]"),
    ],
)
def test_a_run_one_character_into_the_text_is_read_compiled_too(text: str, masked: str) -> None:
    # (the walk back to a phone's start reached the text's second character: compiled, its slice raised SystemError)
    assert "pii:credit_card" in ALL.scan_output(text)
    assert ALL.mask(text) == masked
