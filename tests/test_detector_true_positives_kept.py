"""True positives the precision rules and the finders' search lost. A card or a phone after a word ending in digits
and a space (`COVID19 4111 1111 1111 1111`, `ref A1 415-555-2671`, a UUID or hex id ending in a digit) was never
read: the candidate took in the word's digits, was refused as part of a word, and the search went on past the value;
so was a card with its expiry after it (`4111 1111 1111 1111 1227 123`), refused as part of a longer number.
A card after a `+` that joins words (a form's or a query's space, `pay+with+378282246310005`) was taken for an
international phone and was no card. An IPv6 address of decimal groups in brackets after a word
(`addr[2001:4860:4860::8888]`) was taken for a subscript's slice, which has two colons at most."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config import DetectorSpec
from proxy.detectors import Detectors

CARD = Detectors([DetectorSpec("credit_card")])
PHONE = Detectors([DetectorSpec("phone")])
IP = Detectors([DetectorSpec("ip_address")])

WORDS_ENDING_IN_DIGITS = ["COVID19", "ref A1", "x86", "v2", "id 9bdc24bc-0068-4187-9491-f176b0fe97e3", "sha 3a7e3"]
CARDS = ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "3782 822463 10005", "5555555555554444"]
PHONES = ["415-555-2671", "(555) 123-4567", "+44 20 7946 0958", "090-1234-5678", "06 12 34 56 78", "138 0013 8000"]


@pytest.mark.parametrize("word", WORDS_ENDING_IN_DIGITS)
@pytest.mark.parametrize("card", CARDS)
def test_a_card_after_a_word_ending_in_digits_is_found(word: str, card: str) -> None:
    assert CARD.scan(f"{word} {card} thanks") == {"pii:credit_card"}  # before: none (but `x86 3782 …`: 4-6-5)


@pytest.mark.parametrize("word", WORDS_ENDING_IN_DIGITS)
@pytest.mark.parametrize("phone", PHONES)
def test_a_phone_after_a_word_ending_in_digits_is_found(word: str, phone: str) -> None:
    assert PHONE.scan(f"{word} {phone} thanks") == {"pii:phone"}  # before: none (but after a `+`, `+44 …`)


@pytest.mark.parametrize(
    "text",
    [
        "v2 4111111111111112",  # no Luhn
        "COVID19 2024 2025 2026 2027",  # years, no card
        "build x86 64 12 34",
        "id 9bdc24bc-0068-4187-9491-f176b0fe97e3 done",
        "IBAN DE89 3704 0044 0532 0130 01",  # an IBAN's groups (a wrong check), whose last 18 digits pass Luhn
        "NO93 8601 1117 947",  # and a Norwegian one, whose last 11 are no phone
    ],
)
def test_a_word_ending_in_digits_and_numbers_after_it_are_no_card_or_phone(text: str) -> None:
    assert CARD.scan(text) == frozenset()
    assert PHONE.scan(text) == frozenset()


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1111 1227",  # its expiry, MMYY
        "card 4111 1111 1111 1111 1227 123",  # and its code
        "card 4111-1111-1111-1111-0930-7373",
        "5555555555554444 0127 737",
        "pan=6011111111111117 1128",
    ],
)
def test_a_card_and_its_expiry_after_it_are_found(text: str) -> None:
    assert CARD.scan(text) == {"pii:credit_card"}  # before: none (a number of 20 digits or more)


@pytest.mark.parametrize(
    "text",
    [
        "ids 4111 1111 1111 1111 1327",  # no month: five numbers
        "ids 1234 5678 9012 3456 7890 1234 5678 9012 3456",  # a row
        "2019 2020 2021 2022 2023",
        "4111 1111 1111 1112 1227",  # no Luhn
    ],
)
def test_a_run_of_numbers_is_no_card_and_expiry(text: str) -> None:
    assert CARD.scan(text) == frozenset()


@pytest.mark.parametrize(
    "text",
    [
        "https://shop.example/checkout?q=pay+with+378282246310005",  # Amex, 15 digits
        "card+number+4222222222222&exp=1227",  # Visa, 13
        "name=Alice+Smith+30569309025904",  # Diners, 14
    ],
)
def test_a_card_after_a_plus_joining_words_is_a_card(text: str) -> None:
    assert CARD.scan(text) == {"pii:credit_card"}  # before: none (taken for a phone after a `+`)


@pytest.mark.parametrize("text", ["call +378282246310005", "tel:+4915112345678", "phone=+49 151 12345678"])
def test_an_international_phone_is_still_no_card(text: str) -> None:
    assert CARD.scan(text) == frozenset()


@pytest.mark.parametrize(
    "text",
    [
        "addr[2001:4860:4860::8888]",
        "resolvers[2606:4700:4700::1111]",
        "hosts[0][2001:0:0:0:0:0:0:1]",
    ],
)
def test_an_ipv6_address_in_brackets_after_a_word_is_found(text: str) -> None:
    assert IP.scan(text) == {"pii:ip_address"}  # before: none (taken for a slice)


ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])
VALUES = [
    *CARDS,
    *PHONES,
    "alice.smith@example.com",
    "192.168.10.254",
    "2001:db8::8a2e:370:7334",
    "DE89370400440532013000",
]
# what the precision rules read around a value: decimals, dates, times, UUIDs, as replies stream them
FILLER = ["the", "0.1234", "-0.0870868541", "2024-01-15", "12:30:45", "9bdc24bc-0068-4187-9491-f176b0fe97e3", "x" * 40]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=st.sampled_from(VALUES),
    before=st.lists(st.sampled_from(FILLER), min_size=20, max_size=400),  # (to ~6,000 characters: past a batch)
    after=st.lists(st.sampled_from(FILLER), max_size=40),
    sep=st.sampled_from([" ", "\n", ", ", ","]),  # (",": no white space but within the value)
    inside=st.integers(min_value=1),
    cuts=st.lists(st.integers(min_value=1), max_size=40),
    one_a_chunk=st.booleans(),
)
def test_a_streamed_value_is_found_as_the_whole_text_finds_it(
    value: str, before: list[str], after: list[str], sep: str, inside: int, cuts: list[int], one_a_chunk: bool
) -> None:
    """However a reply is cut into pieces (a character a piece, or anywhere), the stream scanner finds every value
    the text read whole does: its tail, which starts after white space (or, with none, 128 characters back), reads
    again with the next piece the value cut at a piece's end."""
    head = sep.join([*before, "at", ""])  # (not a number: after one of four digits, `2024 4111 …`, none is found)
    text = head + sep.join([value, "end", *after])  # (a number right after it is read as its part)
    whole = ALL.scan_output(text)
    assert whole  # (the value is found in the text read whole)
    cut_in_value = len(head) + 1 + inside % (len(value) - 1)  # one piece ends within the value
    points = range(1, len(text)) if one_a_chunk else sorted({cut_in_value, *(cut % len(text) for cut in cuts)} - {0})
    scanner = ALL.stream()
    last = 0
    for point in [*points, len(text)]:
        scanner.feed(text[last:point])
        last = point
    scanner.end_text()
    assert whole <= scanner.found
