"""Spellings of personal data a hunt found reaching the model unlabelled (addresses with letters that are not ASCII,
a `.` escaped for a URL or in HTML, cards split by colons, bars or pluses, IBANs split by dashes or dots), and the
look-alikes each new reading must not take for a value (times, IPv6 addresses, sums, tables, licence keys, prose in
scripts written without spaces, where `@` reads "at")."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import DetectorSpec
from proxy.detectors import Detectors

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])


def iban(country: str, bban: str) -> str:
    """An IBAN (or, with a BBAN of the wrong length for the country, a look-alike) with valid check digits."""
    number = int("".join(str(int(char, 36)) for char in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


def fours(compact: str, sep: str) -> str:
    return sep.join(compact[at : at + 4] for at in range(0, len(compact), 4))


@pytest.mark.parametrize(
    ("text", "label"),
    [
        # addresses with letters that are not ASCII: in the domain, the local part, the top-level domain
        ("schreib an jörg@exämple.de bitte", "pii:email"),
        ("mail joerg@bücher.example", "pii:email"),
        ("用户@例子.中国", "pii:email"),
        ("написать пользователь@пример.рф сегодня", "pii:email"),
        ("user@उदाहरण.भारत", "pii:email"),  # marks (`ा`, `्`), which `\w` does not take
        ("ติดต่อ ผู้ใช้@ตัวอย่าง.ไทย", "pii:email"),
        ("用户@例子.com", "pii:email"),
        # `.` escaped for a URL or in HTML, as `@` already was read
        ("write to alice@example&#46;com", "pii:email"),
        ("write to alice@example&#046;com", "pii:email"),
        ("write to alice@example&#46com", "pii:email"),  # read without the ';' too
        ("write to alice@example&#x2E;com", "pii:email"),
        ("write to alice@example&#x2e;com", "pii:email"),
        ("write to alice@example&period;com", "pii:email"),
        ("write to alice@example%2Ecom", "pii:email"),
        ("write to alice@example%2ecom", "pii:email"),
        ("write to alice%40example%2Eco%2Euk", "pii:email"),
        ("write to alice&#64;example&#46;com", "pii:email"),
        ("write to alice&#64;mail&period;example&#46;com", "pii:email"),
        ("schreib an jörg%40exämple%2Ede", "pii:email"),  # in a text that is not ASCII
        # cards split by colons, bars or pluses (a form's spaces), in fours or 4-6-5
        ("card 4111:1111:1111:1111", "pii:credit_card"),
        ("card:4111:1111:1111:1111", "pii:credit_card"),  # a colon before it, not an IPv6 address's
        ("card 4111|1111|1111|1111", "pii:credit_card"),
        ("card=4111+1111+1111+1111&exp=12%2F29", "pii:credit_card"),
        ("card=5500+0000+0000+0004", "pii:credit_card"),
        ("amex 3782+822463+10005", "pii:credit_card"),
        ("amex 3782:822463:10005", "pii:credit_card"),
        ("amex 3782|822463|10005", "pii:credit_card"),
        # IBANs split by dashes or dots, in any case
        ("pay to DE89-3704-0044-0532-0130-00 please", "pii:iban"),
        ("pay to DE89.3704.0044.0532.0130.00.", "pii:iban"),
        ("pay to de89-3704-0044-0532-0130-00", "pii:iban"),
        ("pay to GB82-WEST-1234-5698-7654-32", "pii:iban"),
        ("pay to NO93-8601-1117-947", "pii:iban"),  # the shortest
    ],
)
def test_other_spellings_are_found(text: str, label: str) -> None:
    assert label in ALL.scan(text)


@pytest.mark.parametrize(
    "text",
    [
        # times, versions, dates and IPv6 addresses do not become cards
        "at 12:34:56 and 11:11:11.111",
        "1111:2222:3333:4444",  # no card starts with 1
        "2019:2020:2021:2020",
        "4111:1111:1111:1111:1111",  # a row
        "4111|1111|1111|1111|1111",
        "|2019|4111|1111|1111|1111|",
        "4111+1111+1111+1111=7444",  # a sum
        "4111+1111+1111+1111 = 7444",
        "3000+4111+1111+1111+1111",
        "v4111.1111.1111.1111.5",
        # licence keys and identifiers in fours with dashes: a country and its IBAN length too, not only mod-97
        f"key {fours(iban('DE', '3704004405320130'), '-')}",  # mod-97 valid, 20 characters: no German IBAN
        f"key {fours(iban('ZZ', '370400440532013000'), '-')}",  # no such country
        "key AB12-CD34-EF56-GH78",
        "DE89-3704-0044-0532-0130-00-17",  # one group of more
        "x-DE89-3704-0044-0532-0130-00",
        # `@` reads "at" in scripts written without spaces; the ideographic full stop reads `.` in a domain, and the
        # words after it ran on into a top-level domain
        "もくもく会@渋谷。参加者募集中！",
        "会議@東京。今日は晴れ、",
        "用户@例子.广告",  # no such top-level domain: no address
        "价格@100元.优惠",
        "会議@東京。Zoomで参加",  # ASCII letters run on into the words after them: no top-level domain
        # escapes of `.` with no address around them
        "open file%2Etxt or 1%2E5",
        "version 1&#46;2&#46;3",
    ],
)
def test_look_alikes_are_not_labelled(text: str) -> None:
    assert ALL.scan(text) == frozenset()


@pytest.mark.parametrize(
    "text",
    [
        "fe80::4111:1111:1111:1111",
        "4111:1111:1111:1111::1",
        "2001:db8:0:4111:1111:1111:1111:1",
        "::4111:1111:1111:1111",
    ],
)
def test_an_ipv6_address_of_luhn_valid_groups_is_no_card(text: str) -> None:
    assert ALL.scan(text) == {"pii:ip_address"}


def test_a_mod97_valid_look_alike_is_read_only_as_its_country_length() -> None:
    """Spaced, dashed or compact, a listed country's IBAN must have its country's length (spaced and in capitals, any
    of 15-34 was taken until 2026-12-07, and a look-alike passing mod-97 by chance, 1 in 97, was an IBAN)."""
    compact = iban("DE", "3704004405320130")
    assert ALL.scan(fours(compact, " ")) == frozenset()
    assert ALL.scan(compact) == frozenset()
    assert ALL.scan(fours(compact, "-")) == frozenset()
    assert ALL.scan(fours(iban("DE", "370400440532013000"), "-")) == {"pii:iban"}


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("from müller@example.com today", "from [pii:email] today"),  # the local part whole, not `mü[pii:email]`
        ("an jörg@exämple.de, bitte", "an [pii:email], bitte"),
        ("请发到alice@example.com谢谢", "请发到[pii:email]谢谢"),  # the words around it kept
        ("邮箱：用户@例子.中国。", "邮箱：[pii:email]。"),
        ("“alice@example.com”", "“[pii:email]”"),
        ("write to alice@example%2Ecom now", "write to [pii:email] now"),
        ("card 4111:1111:1111:1111.", "card [pii:credit_card]."),
        ("pay DE89-3704-0044-0532-0130-00.", "pay [pii:iban]."),
    ],
)
def test_the_values_are_masked_whole(text: str, masked: str) -> None:
    assert ALL.mask(text) == masked


_ASCII = st.text(alphabet="abXY09._%+-@ .,:;()<>\n", max_size=60) | st.sampled_from(
    ["ana.lopez+work@example.co.uk", "a@b.cd", "x@example", "bob@mail.example.org.", "a@b.c0m", "a@b.cd_e"]
)


@settings(max_examples=400)
@given(st.lists(_ASCII, min_size=1, max_size=4))
def test_an_ascii_address_is_read_alike_in_a_text_that_is_not_ascii(parts: list[str]) -> None:
    """In a text that is not ASCII, addresses are found by another pattern and read again in their characters: an
    address of ASCII is found there as in an ASCII text (differential; what is not ASCII comes after a space at the
    end, so every offset before stays)."""
    text = " ".join(parts)
    assert ALL.findings(text + " é") == ALL.findings(text)


@settings(max_examples=200)
@given(
    st.lists(
        st.sampled_from(["jörg", "用户", "请发到", "alice", "“", "”", "@", ".", "。", "例子", "中国", "de", " ", "-"]),
        max_size=14,
    )
)
def test_an_address_found_in_a_text_that_is_not_ascii_starts_and_ends_on_characters(parts: list[str]) -> None:
    """What is found is whole characters, an `@` in it, and found again when read on its own."""
    text = "".join(parts)
    raw = text.encode()
    for item in ALL.findings(text):
        value = raw[item.start : item.end].decode()  # raises on half a character
        assert "@" in value
        assert ALL.scan(value) == {"pii:email"}
