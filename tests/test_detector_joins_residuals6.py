"""The joined-runs residuals the forty-ninth sitting left (helpers joins5 and revjoins5, 2026-12-06): `mask` hides
exactly what `scan` labels, and a reply streamed in any two pieces is labelled as the same reply read whole."""

from __future__ import annotations

import pytest

from tests.test_detector_card_and_phone_layouts import ALL, _streamed_differ

_LABELS = ("pii:phone", "pii:ip_address", "pii:credit_card")


@pytest.mark.parametrize("spaces", [13, 18, 24])
@pytest.mark.parametrize(
    ("lead", "rest", "found"),
    [
        ("12", "555 123 4567  7", {"pii:phone"}),
        ("12", "5551234567  7", {"pii:phone"}),
        ("call 12", "020 7946 0958  7 ok", {"pii:phone"}),
        ("2024", "555 123 4567  7", {"pii:phone"}),
        ("12", "555 123 4567 10.0.0.1", {"pii:phone", "pii:ip_address"}),
    ],
)
def test_a_number_and_spaces_before_a_phone_and_more_of_its_row_find_the_phone(
    lead: str, rest: str, found: set[str], spaces: int
) -> None:
    # the phone after the number is read as it is alone, as after two spaces (where the row is one candidate) or 25
    # and more. Before: none at 10-24 spaces (9-24 before a UK phone), the address alone at 24
    text = lead + " " * spaces + rest
    assert ALL.scan_output(text) == found
    assert ALL.mask(text).startswith(lead + " " * spaces + "[pii:phone]")
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    "text",
    [
        # a table's aligned columns: the rest after the first number no phone before its next two spaces, or the row
        # more digits than a phone has (none at two spaces either): as before, no phones
        "      11157      76915     358295\n",
        " 246182    802 814207    525\n",
        "  5495    79 99920 28446     5\n",
        "12" + " " * 13 + "555 123 4567 555 123 4568  7",
        "12" + " " * 13 + "555 123  4567",  # no phone ends before the next two spaces
        "25" + " " * 24 + "455513596  46855\n",  # 16 digits, the first number's counted (a candidate starts in it)
    ],
)
def test_aligned_columns_after_a_number_and_spaces_stay_rows(text: str) -> None:
    assert ALL.scan_output(text) == frozenset()
    assert ALL.mask(text) == text
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("pay ID-4111 1111 1111 1111 ok", "pay ID-[pii:credit_card] ok"),
        ("pay ID\uff0d4111 1111 1111 1111 ok", "pay ID\uff0d[pii:credit_card] ok"),  # a fullwidth dash, NFKC's `-`
        ("INV-4111111111111111", "INV-[pii:credit_card]"),
        ("pay ID-4111-1111-1111-1111 ok", "pay ID-[pii:credit_card] ok"),
        ("ref:card-3782 822463 10005.", "ref:card-[pii:credit_card]."),
        ("ID-4111 1111 1111 1111 555 123 4567", "ID-[pii:credit_card] [pii:phone]"),
    ],
)
def test_a_card_after_a_word_of_letters_and_a_dash_is_found_and_masked(text: str, masked: str) -> None:
    # an id's label before a Luhn-valid card sets it apart, as a space does (word-boundary recognizers such as
    # Presidio's read it so). Before: none, and `mask` left the card in clear (after a fullwidth dash since joins5;
    # `ID-[pii:credit_card]` masked before that, with no label)
    assert "pii:credit_card" in ALL.scan_output(text)
    assert ALL.mask(text) == masked
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    "text",
    [
        "x -4111 1111 1111 1111",  # a sign
        "ab12-4111 1111 1111 1111",  # a word with a digit in it, an id's
        "ref 2024-4111 1111 1111 1111",  # a longer number
        "id a1234567-4111-1111-1111-1111ffffffff",  # a UUID's digits
        "card_4111 1111 1111 1111",  # a word's, by an underscore
        "x 4111 1111 1111 1111-ID",  # a word after it
        "pay #-4111 1111 1111 1111 ok",  # a dash after no letter
    ],
)
def test_a_card_joined_otherwise_by_a_dash_is_no_card(text: str) -> None:
    assert "pii:credit_card" not in ALL.scan_output(text)
    assert "[pii:credit_card]" not in ALL.mask(text)
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # a stream window's tail starts in the word, past the digit before its letters, read as the text's start.
        # Before: a card at 206 of 453 cuts
        ("q" * 300 + "1" + "x" * 130 + "-4111 1111 1111 1111 ok", set()),
        # a word longer than an id's label (24 letters): its card is in it, as a window starting in the word reads it
        ("q" * 300 + "ID-4111 1111 1111 1111 ok", set()),
        ("x" * 25 + "-4111111111111111", set()),
        ("x" * 24 + "-4111111111111111", {"pii:credit_card"}),
    ],
)
def test_a_card_after_a_dash_is_read_by_the_whole_word_before_it_streamed_too(text: str, found: set[str]) -> None:
    assert ALL.scan_output(text) == found
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("ahead", "found"), [("1", set()), ("\u00e9", set()), ("q", set()), (" ", {"pii:credit_card"})]
)
def test_a_stream_window_starting_in_a_word_reads_its_card_by_the_character_before_it(
    ahead: str, found: set[str]
) -> None:
    # a window's tail cut in a long token starts at the word's letters: the character before it joins them to a
    # number or a longer word as in the text read whole (`1ID-4111…` none, ` ID-4111…` a card)
    window = "ID-4111111111111111 ok"
    assert set(ALL.scan_unfolded(window, window, ahead)) == found
    # so cut where its tail starts so. Before: a card at these cuts, none whole
    text = "q" * 130 + ahead + window + " ok " * 40
    for cut in (259, 260, 261):
        scanner = ALL.stream()
        scanner.feed(text[:cut])
        scanner.feed(text[cut:])
        scanner.end_text()
        assert scanner.found == ALL.scan_output(text) == found


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call 1111 1111 1111 192.168.010.254 ok", "call [pii:credit_card][pii:phone] ok"),
        ("call 1111 1111 1111 192.168.100.200:8080", "call [pii:credit_card][pii:ip_address]:8080"),
        ("call 1111 1111 1111 192.168.100.200 555 123 4567", "call [pii:credit_card][pii:phone] [pii:phone]"),
    ],
)
def test_a_value_found_across_another_values_end_is_masked_to_its_own_end(text: str, masked: str) -> None:
    # of two values that overlap, the rest of the second past the first's end is masked with its own label. Before:
    # left in clear, `call [pii:credit_card].168.010.254 ok`, the phone or the address `scan` labels half shown
    assert ALL.mask(text) == masked
    assert {label for label in _LABELS if f"[{label}]" in masked} <= ALL.scan_output(text)
