"""Card and phone layouts the detector sitting of 2026-12-04 left wrong (2026-12-05): a matrix whose numbers are split
by no-break spaces was a `pii:phone` streamed, cut in a row, where read whole it is none."""

from __future__ import annotations

import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.test_detector_neighbours_and_short_groups import _MATRIX

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])


def _streamed_differ(detectors: Detectors, text: str) -> list[tuple[int, list[str]]]:
    """The cuts at which `text` fed in two pieces is found to hold other labels than read whole."""
    whole = detectors.scan_output(text)
    differ = []
    for cut in range(1, len(text)):
        scanner = detectors.stream()
        scanner.feed(text[:cut])
        scanner.feed(text[cut:])
        scanner.end_text()
        if scanner.found != whole:
            differ.append((cut, sorted(scanner.found)))
    return differ


@pytest.mark.parametrize("space", ["\u00a0", "\u2009", "\u202f", "\u3000"])
def test_a_matrix_split_by_spaces_nfkc_reads_as_spaces_streamed_finds_what_it_finds_whole(space: str) -> None:
    # before: read to a cut in a row, the row's first ten digits were a phone (220 of 543 cuts with no-break spaces)
    matrix = _MATRIX.replace(" ", space)
    assert ALL.scan_output(matrix) == frozenset()
    assert _streamed_differ(ALL, matrix) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Phone:555 123-4567", [("555 123-4567", "pii:phone")]),  # before: none (`555` read as a time's minutes)
        ("Fax:(555) 123-4567", [("(555) 123-4567", "pii:phone")]),  # before: none
        ("3782 822463 10005", [("3782 822463 10005", "pii:credit_card")]),  # before: a phone too
        ("3782-822463-10005", [("3782-822463-10005", "pii:credit_card")]),
        ("pay with 3782 822463 10005 thanks", [("3782 822463 10005", "pii:credit_card")]),
        ("23 24 25 26 27 28 29", []),  # before: a phone (a calendar's week)
        ("0 1 2 3 4 5 6 7 8 9", []),
        ("45 44 43 42 41 40 39", []),
        ("2 2 2 2 2 2 2 2 2", []),
        ("00 00 00 00 00 00", []),
        # as before
        ("Phone: 555 123-4567", [("555 123-4567", "pii:phone")]),
        ("at 10:30 555-123-4567", [("555-123-4567", "pii:phone")]),
        ("12:30 1234 5678 9012", [("1234 5678 9012", "pii:phone")]),
        ("M:155.90 (148.35%)", []),
        ("arXiv:2412.20317 (2024)", []),
        ("call 5 5 5 1 2 3 4 5 6 7", [("5 5 5 1 2 3 4 5 6 7", "pii:phone")]),  # dictated digit by digit
        ("06 12 34 56 78", [("06 12 34 56 78", "pii:phone")]),
        ("3782 822463 10006", [("3782 822463 10006", "pii:phone")]),  # Luhn fails: no card
    ],
)
def test_glued_labels_amex_cards_and_counting_runs(text: str, found: list[tuple[str, str]]) -> None:
    raw = text.encode()
    assert [(raw[f.start : f.end].decode(), f.label) for f in ALL.findings(text)] == found
    assert ALL.scan(text) == {label for _, label in found}


_PAD = "The reply goes on for a while with words and no numbers at all in it, to be cut anywhere. "


@pytest.mark.parametrize(
    "body",
    ["Phone:555 123-4567", "Fax:(555) 123-4567", "3782 822463 10005", "23 24 25 26 27 28 29", "2 2 2 2 2 2 2 2 2"],
)
def test_these_streamed_find_what_they_find_whole_at_every_cut(body: str) -> None:
    assert _streamed_differ(ALL, _PAD + body + " ok " + _PAD) == []
    assert _streamed_differ(ALL, _PAD + body) == []


_LS = """total 24
drwxr-xr-x 2 root     root      4096 1778311769 PackageKit
drwxr-xr-x 2 root     root      4096 1796419815 UPower
-rw-r--r-- 1 root     root      3040 1685030075 adduser.conf
-rw-r--r-- 1 root     root       833 1676058853 appstream.conf
-rw-r--r-- 1 root     root      4563 1733356800 env
"""


@pytest.mark.parametrize(
    "text",
    [
        "1733356800 1733443200",  # before: two phones (two Unix times)
        "-rw-r--r-- 1 root root 4563 1733356800 env",  # before: a phone (`ls -l --time-style=+%s`)
        _LS,  # before: cards (`4096 1796419815`, a size and a time, 1 in 10 Luhn-valid) and phones
        "1234 10.0.0.1",  # before: a phone
        "x 0.0602574471507 0.0459481099263 y",  # before: a card (a decimal's fraction before a number)
    ],
)
def test_command_output_times_and_fractions_are_no_phone_nor_card(text: str) -> None:
    assert ALL.scan(text) - {"pii:ip_address"} == frozenset()
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("555-123-4567 1234 10.0.0.1", [("555-123-4567", "pii:phone"), ("10.0.0.1", "pii:ip_address")]),
        # as before: a Unix time alone is as a phone alone; a phone after a country's code; two mobiles side by side
        ("created 1733356800 ok", [("1733356800", "pii:phone")]),
        ("0044 1632960123", [("0044 1632960123", "pii:phone")]),
        ("13800138000 13912345678", [("13800138000", "pii:phone"), ("13912345678", "pii:phone")]),
        ("4111 1111 1111 1111 1227 123", [("4111 1111 1111 1111", "pii:credit_card")]),
    ],
)
def test_values_beside_times_and_addresses_are_found_as_far_as_they_go(text: str, found: list[tuple[str, str]]) -> None:
    raw = text.encode()
    assert [(raw[f.start : f.end].decode(), f.label) for f in ALL.findings(text)] == found


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # before (a763e6e): no phone, the IPv4 address after it made the whole line none
        ("555 123 4567 10.0.0.1", [("555 123 4567", "pii:phone"), ("10.0.0.1", "pii:ip_address")]),
        ("Tel 555 123 4567 10.0.0.1 ok", [("555 123 4567", "pii:phone"), ("10.0.0.1", "pii:ip_address")]),
        # before: the phone's dots and the address's were more than the address's, and the phone ran over it, no address
        ("555.123.4567 10.0.0.1", [("555.123.4567", "pii:phone"), ("10.0.0.1", "pii:ip_address")]),
        # before (ad2a275): the word's number was masked with the phone (`Room:[pii:phone]`)
        ("Room:12 555-123-4567", [("555-123-4567", "pii:phone")]),
        ("Ext:12 (555) 123-4567", [("(555) 123-4567", "pii:phone")]),
        # before (a763e6e): none, each piece read as a Unix time though a `+` leads the list
        ("+44 1632960123 1632960124", [("1632960123", "pii:phone"), ("1632960124", "pii:phone")]),
        ("+49 1512345678 1512345679", [("1512345678", "pii:phone"), ("1512345679", "pii:phone")]),
        # as before
        ("1234 10.0.0.1", [("10.0.0.1", "pii:ip_address")]),
        ("Phone:555 123-4567", [("555 123-4567", "pii:phone")]),
        ("Tel:020 7946-0958", [("020 7946-0958", "pii:phone")]),
        ("1733356800 1733443200", []),
    ],
)
def test_a_phone_before_an_address_after_a_number_or_after_a_plus_is_found(
    text: str, found: list[tuple[str, str]]
) -> None:
    raw = text.encode()
    assert [(raw[f.start : f.end].decode(), f.label) for f in ALL.findings(text)] == found
    assert _streamed_differ(ALL, _PAD + text + " ok " + _PAD) == []
    assert _streamed_differ(ALL, _PAD + text) == []


# a table printed with its columns aligned, numbers split by runs of spaces (`%5d`, numpy's arrays, `column -t`)
_ALIGNED = "".join(
    "".join(f"{(row * 7919 + col * 104729) % 10 ** (1 + (row + col) % 3):5d}" for col in range(8)) + "\n"
    for row in range(4)
)


@pytest.mark.parametrize(
    "text",
    [_ALIGNED, _MATRIX.replace(" ", "  "), _MATRIX.replace(" ", "\u00a0\u00a0"), _MATRIX.replace(" ", " \u00a0")],
)
def test_numbers_split_by_runs_of_spaces_streamed_find_what_they_find_whole(text: str) -> None:
    # before: a chunk's last token was held back with the numbers before it only where one space split them; cut in a
    # row, the row's first ten digits were read as the text's end, a `pii:phone` (84 of 543 cuts of the matrix)
    assert ALL.scan_output(text) == frozenset()
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    "text",
    [
        # before (helper phones2): each a card, Luhn-valid; no payment card begins with 0 (ISO/IEC 7812's industry 0)
        "0770090012307700900",
        "07700 900 123 07700 900",
        "0411 1111 1111 1116",
    ],
)
def test_no_card_begins_with_0(text: str) -> None:
    assert "pii:credit_card" not in ALL.scan(text)


@pytest.mark.parametrize(
    ("text", "card"),
    [
        # before (helper revphones2): none since 77a2169 (no card begins with 0); before it, each was one. A record's
        # fixed-width field pads its card with zeros: after them, an issuer's first digits and one of its lengths
        ("PAN=0004111111111111111;", "0004111111111111111"),
        ("card 04111111111111111 ok", "04111111111111111"),
        ("05500000000000004", "05500000000000004"),
        ("0378282246310005", "0378282246310005"),
    ],
)
def test_a_card_padded_with_zeros_is_one(text: str, card: str) -> None:
    assert [(text[f.start : f.end], f.label) for f in ALL.findings(text)] == [(card, "pii:credit_card")]
    assert _streamed_differ(ALL, _PAD + text + " ok " + _PAD) == []
