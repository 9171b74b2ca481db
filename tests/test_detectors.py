"""Detectors: true positives, near-misses, streamed values split across chunks, bounded scans, masking."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors

ALL = Detectors([DetectorSpec(n) for n in ("email", "phone", "credit_card", "ip_address", "iban")]
                + [DetectorSpec("employee-id", r"\bEMP-\d{6}\b")])  # fmt: skip


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("write to ana.lopez+work@example.co.uk today", "pii:email"),
        ("call me at +1 415 555 2671", "pii:phone"),
        ("call me at (415) 555-2671", "pii:phone"),
        ("my number is +447911123456", "pii:phone"),
        ("card 4111 1111 1111 1111 exp 12/29", "pii:credit_card"),
        ("card 5500-0000-0000-0004", "pii:credit_card"),
        ("from 192.168.10.254 yesterday", "pii:ip_address"),
        ("v6 2001:db8::8a2e:370:7334 seen", "pii:ip_address"),
        ("pay to DE89 3704 0044 0532 0130 00 please", "pii:iban"),
        ("pay to GB82WEST12345698765432", "pii:iban"),
        ("badge EMP-004211 at the door", "pii:employee-id"),
        # other spellings of the same value (a review's bypasses): NFKC and invisible characters, more separators
        ("write to alice\uff20example.com", "pii:email"),  # a fullwidth @
        ("write to alice@exam\u200bple.com", "pii:email"),  # a zero-width space
        ("card \uff14\uff11\uff11\uff11 1111 1111 1111", "pii:credit_card"),  # fullwidth digits
        ("card 4111.1111.1111.1111", "pii:credit_card"),
        ("card 4111/1111/1111/1111", "pii:credit_card"),
        ("card: 4111111111111111.", "pii:credit_card"),  # a full stop after it
        ("card 5500 0000 0000 0004/2027", "pii:credit_card"),  # an expiry joined by a slash
        ("4111111111111111/12", "pii:credit_card"),
        ("item 7/4111111111111111", "pii:credit_card"),
        ("4111111111111111  12/25  123", "pii:credit_card"),  # an expiry and a code beside it
        ("Card\t4111111111111111\t12\t2027", "pii:credit_card"),
        ("4111111111111111 12/25 123", "pii:credit_card"),  # the run takes in the expiry: its groups are tried
        ("card 4111 1111 1111 1111 05/27", "pii:credit_card"),
        ("card 4111\u20131111\u20131111\u20131111", "pii:credit_card"),  # en dashes
        ("card 4111\u20111111\u20111111\u20111111", "pii:credit_card"),  # non-breaking hyphens
    ],
)
def test_true_positives(text: str, label: str) -> None:
    assert label in ALL.scan(text)


@pytest.mark.parametrize(
    "text",
    [
        "version 1.2.3 released",  # dotted version, not an IP
        "in 2024-01-15 at 12:30:45",  # date and time
        "card 4111 1111 1111 1112",  # fails Luhn
        "ip 999.1.1.1 is not valid",  # octet out of range
        "order #12345 shipped",  # too few digits for a phone
        "user@localhost has no domain",
        "DE89 3704 0044 0532 0130 01",  # IBAN with a wrong check
        "EMP-12345 is too short",
        "the ratio is 3.14159",
        "v1.4111.1111.1111.1111.2",  # a longer dotted number around a Luhn-valid run
        # tabs and underscores join numbers in tables and names, not card digits (a review's false positives)
        "1026\t1600\t1490",
        "backup_20230225_053353.tar.gz",
        "user_4150637_7748204",
        # wider card separators (tab, newline, comma, underscore, white space runs) are taken only for four groups
        # of four or 4-6-5, with a card's first digits, and not as a window of a longer row or column of numbers
        "1,2,3",
        "10,20,30,40",
        "2019\t2020\t2021\t2020",  # Luhn-valid, but no card starts with 2019
        "1000,0000,0000,0008",  # Luhn-valid, but no payment card starts with 1
        "7900_0000_0000_0006",
        "12\t4111\t1111\t1111\t1111",  # a table row: the Luhn-valid run is a window of it
        "4111\t1111\t1111\t1111\t2024",
        "4111,1111,1111,1111,1111",
        "4111\n1111\n1111\n1111\n1111",  # a column of numbers, one a line
        "3500   4200   5100   6004   7000",  # aligned columns
        "4,111,111,111,111,111",  # thousands, not groups of four
        "total 3500,4200 and 5100,6004",
        "# 2016\n4021,5231,5232,1186,  15,5233,1079",  # a table of numbers aligned with spaces
        # lower case: mod-97 passes 1 in 97 by chance, so the country's length must match too
        "md5 de763f2a9c0e5b7d1a4c6e8f0b2d4a6c",  # mod-97 valid, 32 characters: no German IBAN
        "zz22370400440532013000",  # mod-97 valid, no such country
        "版本 1。2。3",  # ideographic full stops as dots: a version, not an address
        "email me &#64; work",
    ],
)
def test_near_misses_are_not_labelled(text: str) -> None:
    assert ALL.scan(text) == frozenset()


@pytest.mark.parametrize(
    ("text", "label"),
    [
        # decimal digits of other scripts, which NFKC leaves as they are
        ("call +٤٤ ٢٠ ٧٩٤٦ ٠٩٥٨", "pii:phone"),  # Arabic-Indic
        ("card ٤١١١١١١١١١١١١١١١", "pii:credit_card"),
        ("card ४१११ ११११ ११११ ११११", "pii:credit_card"),  # Devanagari
        ("card ۴۱۱۱-۱۱۱۱-۱۱۱۱-۱۱۱۱", "pii:credit_card"),  # extended Arabic-Indic (Persian)
        ("from ๑๙๒.๑๖๘.๑๐.๒๕๔", "pii:ip_address"),  # Thai
        # full stops IDNA reads as '.'
        ("write to alice@example\u3002com", "pii:email"),  # ideographic
        ("write to alice@example\uff61com", "pii:email"),  # halfwidth ideographic
        ("write to alice@example\uff0ecom", "pii:email"),  # fullwidth (NFKC folds it)
        ("write to alice@example\ufe12com", "pii:email"),  # vertical form: NFKC makes it ideographic
        ("write to alice@mail\u3002example\u3002co\u3002uk", "pii:email"),
        # an IBAN in lower (or mixed) case: the model reads it all the same
        ("pay to de89370400440532013000", "pii:iban"),
        ("pay to de89 3704 0044 0532 0130 00 please", "pii:iban"),
        ("pay to gb82west12345698765432", "pii:iban"),
        ("pay to De89370400440532013000", "pii:iban"),
        # a card split by tabs, newlines, commas, underscores or runs of white space
        ("4111\t1111\t1111\t1111", "pii:credit_card"),
        ("card:\t4111\t1111\t1111\t1111 05/27", "pii:credit_card"),
        ("4111\n1111\n1111\n1111", "pii:credit_card"),
        ("4111\r\n1111\r\n1111\r\n1111", "pii:credit_card"),
        ("4111_1111_1111_1111", "pii:credit_card"),
        ("4111,1111,1111,1111", "pii:credit_card"),
        ("4111, 1111, 1111, 1111", "pii:credit_card"),
        ("4111  1111  1111  1111", "pii:credit_card"),
        ("card 4111 \t1111 \t1111 \t1111.", "pii:credit_card"),
        ("amex 3782\t822463\t10005", "pii:credit_card"),  # 4-6-5
        ("2221,0000,0000,0009", "pii:credit_card"),  # Mastercard's 2-series
        ("4916\t4470\t5202\t4112", "pii:credit_card"),  # Luhn-valid and a Visa's prefix: a card, as it reads
        # `@` escaped for a URL or in HTML
        ("write to alice%40example.com", "pii:email"),
        ("write to alice&#64;example.com", "pii:email"),
        ("write to alice&#064;example.com", "pii:email"),
        ("write to alice&#x40;example.com", "pii:email"),
        ("write to alice&#X40;example.com", "pii:email"),
        ("write to alice&#64example.com", "pii:email"),  # browsers read it without the ';' too
        ("write to alice&commat;example.com", "pii:email"),
        ("schreib an alice%40exämple.com oder alice&#64;example.de", "pii:email"),  # in a text that is not ASCII
    ],
)
def test_other_spellings_of_a_value_are_found(text: str, label: str) -> None:
    """A second review's bypasses: each reached the model unlabelled, while the model reads the value."""
    assert label in ALL.scan(text)


@pytest.mark.parametrize(
    "char",
    [
        "\ufe0f",  # variation selector
        "\U000e0100",  # variation selector 17
        "\u202a",  # bidi embedding, override, isolate ...
        "\u202b",
        "\u202c",
        "\u202d",
        "\u202e",
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        "\U000e0000",  # tags
        "\U000e0001",
        "\U000e0041",
        "\U000e007f",
        "\u3164",  # Hangul fillers
        "\u115f",
        "\u1160",
        "\uffa0",
        "\u180f",  # Mongolian free variation selector four
        "\u17b4",  # Khmer inherent vowel
        "\U0001bca0",  # shorthand format control
        "\U0001d173",  # musical beam
    ],
)
def test_default_ignorable_characters_are_no_gap(char: str) -> None:
    assert ALL.scan(f"write to alice@exam{char}ple.com") == {"pii:email"}
    assert ALL.scan(f"card 4111{char}1111 1111 1111") == {"pii:credit_card"}


def test_the_ignorable_table_is_unicodes() -> None:
    """Default_Ignorable_Code_Point has 4,174 code points (Unicode 15.1), the narrower list it replaced among them."""
    from proxy.detectors import _IGNORABLE

    codes = {code for first, last in _IGNORABLE for code in range(first, last + 1)}
    assert len(codes) == 4174
    assert codes >= set(map(ord, "\u00ad\u034f\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2064\ufeff"))


def test_nothing_nfkc_makes_needs_folding_again() -> None:
    """The fold runs before NFKC: whatever NFKC makes of a character (U+207B superscript minus is U+2212, U+FE12
    is U+3002, U+FFA0 is U+1160) must need no folding itself."""
    from proxy.detectors import _FOLD, folded

    left = []
    for code in range(0x80, 0x30000):  # no character past U+2FFFF has a compatibility form
        if 0xD800 <= code < 0xE000 or (code not in _FOLD and unicodedata.is_normalized("NFKC", chr(code))):
            continue
        text, _ = folded(chr(code), 100)
        if any(ord(char) in _FOLD for char in text):
            left.append(hex(code))
    assert left == []


def test_dots_and_slashes_split_cards_only_in_fours() -> None:
    """The grouped pattern also takes 4-6-5, for the wider separators only."""
    assert "pii:credit_card" not in ALL.scan("3782.822463.10005")
    assert "pii:credit_card" not in ALL.scan("3782/822463/10005")
    assert "pii:credit_card" in ALL.scan("3782_822463_10005")


def test_other_spellings_are_masked_whole() -> None:
    assert ALL.mask("card ٤١١١١١١١١١١١١١١١ ok") == "card [pii:credit_card] ok"
    assert ALL.mask("mail alice%40example.com now") == "mail [pii:email] now"
    assert ALL.mask("mail alice@exam\u202eple.com now") == "mail [pii:email] now"
    assert ALL.mask("100% sure, R&D") == "100% sure, R&D"  # nothing escaped: the text as it is


def test_stream_finds_values_split_across_chunks() -> None:
    scanner = ALL.stream()
    for piece in ["contact: an", "a@exam", "ple.org and card 4111 11", "11 1111 1111", " bye"]:
        scanner.feed(piece)
    assert scanner.found == {"pii:email", "pii:credit_card"}


def test_scan_is_bounded_and_says_so() -> None:
    small = Detectors([DetectorSpec("email")], max_chars=100)
    assert small.scan("x" * 200 + " a@b.io") == {TRUNCATED}
    scanner = small.stream()
    scanner.feed("y" * 150)
    scanner.feed("a@b.io")
    assert TRUNCATED in scanner.found and "pii:email" not in scanner.found


def test_mask_replaces_only_valid_values() -> None:
    masked = ALL.mask("mail a@b.io, card 4111 1111 1111 1111, not 4111 1111 1111 1112")
    assert masked == "mail [pii:email], card [pii:credit_card], not 4111 1111 1111 1112"


def test_no_detectors_costs_nothing() -> None:
    none = Detectors([])
    assert not none and none.scan("a@b.io") == frozenset()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_scanning_arbitrary_text_never_raises(text: str) -> None:
    ALL.scan(text)
    ALL.mask(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab@.x 19-", max_size=200), st.integers(min_value=1, max_value=50))
def test_streamed_scan_equals_whole_scan(text: str, size: int) -> None:
    scanner = ALL.stream()
    for start in range(0, len(text), size):
        scanner.feed(text[start : start + size])
    assert ALL.scan(text) <= scanner.found | {TRUNCATED}


def test_offsets_survive_non_ascii_text() -> None:
    text = "Grüße an José — mail josé.ñ@exämple.de? no: jose@example.de, Karte 4111 1111 1111 1111 ✓"
    assert ALL.scan(text) == {"pii:email", "pii:credit_card"}
    # (an address with letters that are not ASCII is one too)
    assert ALL.mask(text) == "Grüße an José — mail [pii:email]? no: [pii:email], Karte [pii:credit_card] ✓"
    custom = Detectors([DetectorSpec("name", r"José")])
    assert custom.mask("¿Dónde está José?") == "¿Dónde está [pii:name]?"


def test_overlapping_findings_are_masked_once() -> None:
    # a 16-digit card is also a phone-shaped run of digits: masked once, as the longest match first
    assert ALL.mask("4111 1111 1111 1111") == "[pii:credit_card]"


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("4222222222222", "pii:credit_card"),  # 13 digits: the fewest a card has
        ("dial 415 555 267", "pii:phone"),  # 9 digits: the fewest a phone has
        ("at 1.2.3.4", "pii:ip_address"),
        ("NO9386011117947", "pii:iban"),  # 15 characters: the shortest IBAN
    ],
)
def test_the_fewest_digits_a_value_has_still_pass_the_prefilter(text: str, label: str) -> None:
    assert label in ALL.scan(text)


@settings(max_examples=400)
@given(
    st.one_of(
        st.text(alphabet="0123456789 .-+()@:aAxDE", max_size=120),
        st.text(alphabet="0123456789 -", max_size=40),  # phones and cards near their fewest digits
        st.text(alphabet="0123456789.", max_size=30),  # addresses
    )
)
def test_the_prefilter_skips_only_texts_with_nothing_to_find(text: str) -> None:
    """`scan` skips a finder when the text lacks what its every match contains; run every finder on
    everything instead, and the labels must be the same."""
    from proxy.detectors import _Text

    everything = {label for label, finder, *_ in ALL._finders if next(finder(_Text(text)), None) is not None}
    assert ALL.scan(text) == everything


# values and near misses, and prose with numbers in it, run together in any order: `scan` searches for what
# starts with a digit only from the text's first digit to its last (and an IBAN's letters after it)
_PIECES = st.sampled_from(
    [
        "ana.lopez+work@example.co.uk", "a@b", "x@example", "+1 415 555 2671", "(415) 555-2671", "415 555 267",
        "+447911123456", "4111 1111 1111 1111", "4111111111111111", "4111.1111.1111.1111", "4111 1111 1111 1112",
        "5500-0000-0000-0004", "3782\t822463\t10005", "12\t4111\t1111\t1111\t1111", "192.168.10.254", "999.1.1.1",
        "1.2.3", "2001:db8::8a2e:370:7334", "12:30:45", "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432",
        "de89370400440532013000", "SC18 SSCB 1101 0000 0000 0000 1497 USD", "SC18SSCB11010000000000001497USD",
        "NO9386011117947", "LC84 QQUN RNFZ HAHQ RBUE RCZA ERIH LKXE", "the tower was built from 1887 to 1889",
        "version 1.2.3", "in 2024-01-15", "page 7", "Be concise.", "The Eiffel Tower is a wrought-iron lattice tower",
        "Locally nicknamed 'La dame de fer',",
    ]
)  # fmt: skip


@settings(max_examples=400)
@given(
    st.lists(
        st.tuples(_PIECES, st.sampled_from(["", " ", "  ", "\n", ", ", ".", "-", "/", "\t", "a", "0"])), max_size=8
    ),
    st.text(alphabet="abc 0123456789.-@:", max_size=30),
)
def test_searching_only_between_the_first_and_last_digit_finds_the_same(
    pieces: list[tuple[str, str]], noise: str
) -> None:
    """`scan` searches for values that start with a digit from the first digit to within a match's length of
    the last: what it finds is what every finder run on all of the text finds."""
    from proxy.detectors import _Text

    text = "".join(piece + sep for piece, sep in pieces) + noise
    everything = {label for label, finder, *_ in ALL._finders if next(finder(_Text(text)), None) is not None}
    assert ALL.scan(text) == everything


@pytest.mark.parametrize(
    "text",
    [
        "pay SC18 SSCB 1101 0000 0000 0000 1497 USD now",  # an IBAN's letters reach past its last digit
        "pay SC18SSCB11010000000000001497USD now",
        "pay LC84 QQUN RNFZ HAHQ RBUE RCZA ERIH LKXE now",  # (made up to pass mod 97) 35 characters past it
        "a long way before it " * 40 + "dial 415 555 2671" + " and a long way after it" * 40,
    ],
)
def test_a_value_reaching_past_the_last_digit_is_found(text: str) -> None:
    assert ALL.scan(text) - {"pii:employee-id"} == {"pii:phone" if "dial" in text else "pii:iban"}


def test_folding_is_bounded_by_the_scan_limit() -> None:
    """NFKC can make a text 18 times longer: folding stops at the limit, and says it cut."""
    from proxy.detectors import folded

    text, cut = folded("\ufdfa" * 10_000, 1000)
    assert len(text) == 1000 and cut
    assert folded("ｈｉ", 1000) == ("hi", False)
    small = Detectors([DetectorSpec("email")], max_chars=1000)
    assert small.scan("\ufdfa" * 10_000 + " ana@example.org") == {"scan:truncated"}


def test_a_value_found_only_in_the_folded_text_is_masked() -> None:
    """Captured content: what `scan` finds in another width is masked too (in the folded form), whole, and
    so is what only the text's own form shows; a text whose forms show the same keeps its characters."""
    assert ALL.mask("mail ａｌｉｃｅ＠ｅｘａｍｐｌｅ.com now") == "mail [pii:email] now"
    assert ALL.mask("plain é text") == "plain é text"
    assert ALL.mask("card ４１１１ 1111 1111 1111") == "card [pii:credit_card]"  # not "card ４１１１ [pii:phone]"
    assert ALL.mask("cards 4111111111111111\u200b5555555555554444 mail ｂｏｂ＠ｅｘａｍｐｌｅ．ｃｏｍ") == (
        "cards [pii:credit_card][pii:credit_card] mail [pii:email]"
    )
    assert ALL.mask("Karte — 4111 1111 1111 1111") == "Karte — [pii:credit_card]"
    tags = Detectors([DetectorSpec("tag", r"[a-z]+:[a-z_]+"), DetectorSpec("email")])
    assert tags.mask("ｘ mail alice@example.com") == "ｘ mail [pii:email]"  # a mask is never masked again


@pytest.mark.parametrize("sep", ["\t", "\n", ",", ", ", "_", "  "])
def test_a_table_is_skipped_whole_and_a_card_after_it_is_still_found(sep: str) -> None:
    """A row or column of numbers is passed over in one match once a window of it is seen to be one (it was
    a Python check every four numbers); what follows it is read as ever."""
    table = sep.join(["5111"] * 4000)
    assert ALL.scan(table) == frozenset()
    assert ALL.scan(table + " and then " + sep.join(["4111", "1111", "1111", "1111"])) == {"pii:credit_card"}


@pytest.mark.parametrize("text", ["12\t5111\t1111\t1111\t1111\t4111,1111,1111,1111",
                                  "9,5111,1111,1111,1111,4111_1111_1111_1111",
                                  "7\n5111\n1111\n1111\n1111\n2222\n4111/1111/1111/1111"])  # fmt: skip
def test_a_card_that_starts_where_a_table_ends_is_found(text: str) -> None:
    """The table's run ends after its last number, which may be a card's first group written with another
    separator: skipping the run whole skipped the card."""
    assert ALL.scan(text) == {"pii:credit_card"}


@pytest.mark.parametrize(
    "text",
    [
        "call_662cca3a753574000330533de42a3b6186f65d27",  # a hex id holding a Luhn-valid run of 15 digits
        "id a1234567-4111-1111-1111-1111ffffffff",  # a UUID whose digits between its letters pass Luhn
        "sha 4111111111111111abc",
        "ref_4111111111111111",
    ],
)
def test_a_digit_run_inside_a_word_is_no_card(text: str) -> None:
    assert "pii:credit_card" not in ALL.scan(text)
