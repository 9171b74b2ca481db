"""Misses and false labels the detector sitting of 2026-12-04 left: a card followed by a phone written with dashes
(`4111 1111 1111 1111 555-123-4567`) was read as one number with the phone's first digits, and only the phone was
found; two bare mobiles side by side (`13800138000 13800138000`) and a phone in international form before another
(`+44 20 7946 0958 555-123-4567`) were not both found; a row of single digits or pairs (`0 0 0 0 0 0 0 0 0 0 0 0 0 0
0`, `23 24 25 26 27 28 29`) was a card, as no card is written; a time before numbers split by spaces was masked with
its minutes, `12:[pii:phone]`."""

from __future__ import annotations

import re

import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])
CARDS_ONLY = Detectors([DetectorSpec("credit_card")])


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("4111 1111 1111 1111 555-123-4567", "[pii:credit_card] [pii:phone]"),  # before: the phone alone
        ("card 4111 1111 1111 1111 555-123-4567 thanks", "card [pii:credit_card] [pii:phone] thanks"),
        ("3782 822463 10005 555-123-4567", "[pii:credit_card] [pii:phone]"),  # an Amex, 4-6-5
        ("555-123-4567 4111 1111 1111 1111", "[pii:phone] [pii:credit_card]"),  # the phone first
        ("4111 1111 1111 1111 (555) 123-4567", "[pii:credit_card] [pii:phone]"),  # as before
        ("13800138000 13800138000", "[pii:phone] [pii:phone]"),  # before: neither
        ("电话 13800138000 13912345678 谢谢", "电话 [pii:phone] [pii:phone] 谢谢"),
        ("+44 20 7946 0958 555-123-4567", "[pii:phone] [pii:phone]"),  # before: the second alone
        ("+44 20 7946 0958 (555) 123-4567", "[pii:phone] [pii:phone]"),
        ("12:30 1234 5678 9012", "12:30 [pii:phone]"),  # before: `12:[pii:phone]`
        ("at 12:30 555 123 4567 ok", "at 12:30 [pii:phone] ok"),
        ("at 10:30 555-123-4567", "at 10:30 [pii:phone]"),  # as before
    ],
)
def test_values_side_by_side_are_each_masked_as_far_as_they_go(text: str, masked: str) -> None:
    assert ALL.scan(text) == set(re.findall(r"\[(pii:\w+)\]", masked))
    assert ALL.mask(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",  # before: pii:credit_card
        "23 24 25 26 27 28 29",
        "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
        "41 11 11 11 11 11 11 11",
        "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",  # a hex dump's bytes
        "0-0-0-0-0-0-0-0-0-0-0-0-0-0-0",
        "23 24 25 26 27 28 29\n30 31",  # a calendar's weeks
    ],
)
def test_single_digits_and_pairs_are_no_card(text: str) -> None:
    assert CARDS_ONLY.scan(text) == frozenset()


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",
        "3782 822463 10005",  # Amex, 4-6-5
        "3056 930902 5904",  # Diners, 4-6-4
        "6304 0000 0000 0000 018",  # Maestro, 4-4-4-4-3
        "6759 6498 2643 8453 00",  # 4-4-4-4-2: a short group ends a card
        "4222 2222 2222 2",  # Visa's 13 digits, 4-4-4-1
        "4111-1111-1111-1111",
        "41111111 11111111",
        "4111111111111111",
    ],
)
def test_cards_as_they_are_written_are_still_found(card: str) -> None:
    digits = card.replace(" ", "").replace("-", "")
    doubled = [sum(divmod(2 * int(d), 10)) if (len(digits) - i) % 2 == 0 else int(d) for i, d in enumerate(digits)]
    assert sum(doubled) % 10 == 0  # (Luhn-valid)
    assert CARDS_ONLY.scan(f"pay with {card} today") == {"pii:credit_card"}


_PAD = "the model wrote this reply for you, which is long enough to be read at once, so here: " * 2


@pytest.mark.parametrize(
    "body",
    [
        "4111 1111 1111 1111 555-123-4567",
        "555-123-4567 4111 1111 1111 1111",
        "13800138000 13800138000",
        "+44 20 7946 0958 555-123-4567",
        "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
        "23 24 25 26 27 28 29",
        "12:30 1234 5678 9012",
    ],
)
@pytest.mark.parametrize("after", ["", " ok " + _PAD])
def test_a_reply_streamed_finds_what_it_finds_whole_however_cut(body: str, after: str) -> None:
    text = _PAD + body + after
    whole = ALL.scan_output(text)
    differ = []
    for cut in range(len(_PAD) - 5, len(text) + 1):
        scanner = ALL.stream()
        scanner.feed(text[:cut])
        scanner.feed(text[cut:])
        scanner.end_text()
        if scanner.found != whole:
            differ.append((text[:cut][-24:], sorted(scanner.found)))
    assert not differ, (sorted(whole), differ)
