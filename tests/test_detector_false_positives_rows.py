"""False positives users hit: ordinary text read as a phone, so a call holding it was refused where `pii:phone` is
forbidden. Past a candidate of 26 characters (`_PHONE`'s reach) that was none, the search went on at the cut and read
the tail of a row of numbers as a phone (four ISO dates, a list of token ids written with spaces); a time's minutes
before a phone were masked with it (`10:[pii:phone]`); a Windows build number (`10.0.22631.2861`) and a GB IBAN's
account digits were phones. A stream scanner read the end of each window as the end of the text, so a value cut
there (`version 1.2.3.4.` | `5`) was found streamed where the whole text holds none."""

from __future__ import annotations

import re

import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-15 2024-01-16 2024-01-17 2024-01-18",
        "dates 2024-01-15 2024-01-16 2024-01-17 2024-01-18 2024-01-19 2024-01-20",
        "15339 1917 11 1095 374 264 1296 1234 4111",  # token ids written with spaces
        "tokens [15339 1917 11 1095 374 264 1296 1234 4111 2041 13 578]",
        "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
    ],
)
def test_a_row_past_a_long_candidate_is_no_phone(text: str) -> None:
    assert ALL.scan(text) == frozenset()  # before: pii:phone, the row's tail past the 26th character
    assert ALL.mask(text) == text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("at 10:30 555-123-4567", "at 10:30 [pii:phone]"),  # before: `at 10:[pii:phone]`, the minutes hidden
        ("meeting 09:15 (555) 123-4567 ok", "meeting 09:15 [pii:phone] ok"),
        ("tel:555-123-4567", "tel:[pii:phone]"),  # joined by the colon, no space: still one
        # a phone at the end of a long row is still found: the row's pieces are each read as alone
        ("on 2024-01-15 2024-01-16 2024-01-17 555-123-4567", "on 2024-01-15 2024-01-16 2024-01-17 [pii:phone]"),
        ("ids 15339 1917 11 1095 374 264 call 555-123-4567", "ids 15339 1917 11 1095 374 264 call [pii:phone]"),
        ("week 2024-W03-1 555-123-4567", "week 2024-W03-1 [pii:phone]"),  # after a week date, as after 2024-01-15
    ],
)
def test_a_phone_is_masked_as_far_as_it_goes(text: str, masked: str) -> None:
    assert ALL.scan(text) == {"pii:phone"}
    assert ALL.mask(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "Windows 10.0.22631.2861 build",
        "OS Build 10.0.19045.3803",
        ".NET 4.0.30319.42000 runtime",
        "Chrome/120.0.6099.109 Safari",
        "kernel 6.1.7601.24545",
        "week 2024-W03-1 12345 67890",  # an ISO week date and numbers after it: a row, as after 2024-01-15
    ],
)
def test_build_numbers_and_a_week_date_are_no_phone(text: str) -> None:
    assert ALL.scan(text) == frozenset()  # before: pii:phone


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("pay GB82 WEST 1234 5698 7654 32 now", "pay [pii:iban] now"),  # before: pii:phone as well
        ("call 1.555.123.4567 now", "call [pii:phone] now"),  # dotted phones stay phones
        ("call +44.20.7946.0958 now", "call [pii:phone] now"),
        ("call 555.123.4567 now", "call [pii:phone] now"),
        ("call 06.12.34.56.78 now", "call [pii:phone] now"),
        # a wrong check digit: no IBAN, and its digits read as they were
        ("GB82 WEST 1234 5698 7654 33 or 555-123-4567", "GB82 WEST [pii:phone] or [pii:phone]"),
    ],
)
def test_an_ibans_digits_are_no_phone_and_dotted_phones_stay(text: str, masked: str) -> None:
    assert ALL.scan(text) == set(re.findall(r"\[(pii:\w+)\]", masked))
    assert ALL.mask(text) == masked


_PAD = "the model wrote this reply for you, which is long enough to be read at once, so here: " * 2
STREAMED = [
    "version 1.2.3.4.5 out",  # cut after `1.2.3.4.`: an IPv4 address
    "-0.0870868541 -124.203753 -0.0870868541",  # cut after `-124.`: `203753 -0.0870868541` a phone
    "id 9bdc24bc-0068-4187-9491-f176b0fe97e3 done",  # a UUID's first groups a phone
    "tokens 15339 1917 11 1095 374 264 1296 1234 4111",  # a row's first numbers a phone
    "row 1234 4111 1111 1111 1111",  # a row's last four groups a card
    "pay GB82 WEST 1234 5698 7654 32 ok",  # an IBAN's account digits a phone
    "ISBN 978-0-306-40615-7 x",
    "card 4111 1111 1111 1111 exp",
    "call 555 123 4567 now",
]


@pytest.mark.parametrize("body", STREAMED)
@pytest.mark.parametrize("after", ["", " " + _PAD])
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
    assert not differ, (sorted(whole), differ)  # before: found streamed at some cuts what the whole text holds not
