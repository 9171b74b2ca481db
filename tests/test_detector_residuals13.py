"""The detectors' residuals named on 2026-12-07 (helper det13): a card or a dashed IBAN before an em dash and a word,
or before a double dash, prose's."""

from __future__ import annotations

import unicodedata

import pytest

import proxy.detectors as detectors
from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from tests.test_detector_card_and_phone_layouts import ALL, _streamed_differ

PAD = "word " * 30


@pytest.mark.parametrize(
    ("text", "masked", "found"),
    [
        ("4111 1111 1111 1111\u2014please", "[pii:credit_card]\u2014please", {"pii:credit_card"}),
        ("4111-1111-1111-1111\u2014please", "[pii:credit_card]\u2014please", {"pii:credit_card"}),
        ("4111111111111111\u2014please", "[pii:credit_card]\u2014please", {"pii:credit_card"}),
        ("card 3782 822463 10005\u2014thanks", "card [pii:credit_card]\u2014thanks", {"pii:credit_card"}),
        ("4111 1111 1111 1111\u2015x", "[pii:credit_card]\u2015x", {"pii:credit_card"}),
        ("4111 1111 1111 1111\u2014(x)", "[pii:credit_card]\u2014(x)", {"pii:credit_card"}),
        ("4111 1111 1111 1111\u2014", "[pii:credit_card]\u2014", {"pii:credit_card"}),
        ("DE89-3704-0044-0532-0130-00\u2014please", "[pii:iban]\u2014please", {"pii:iban"}),
        ("DE89.3704.0044.0532.0130.00\u2014please", "[pii:iban]\u2014please", {"pii:iban"}),
        # (its account digits after the bank's letters were read as a phone, the IBAN none: `mask` hid an IBAN)
        ("GB82-WEST-1234-5698-7654-32\u2014please", "[pii:iban]\u2014please", {"pii:iban"}),
        # prose's double dash after it, as before it (`card--4111 …`): no longer number's, no word's
        ("4111 1111 1111 1111--please", "[pii:credit_card]--please", {"pii:credit_card"}),
        ("4111111111111111---x", "[pii:credit_card]---x", {"pii:credit_card"}),
        ("3782 822463 10005--3782 822463 10005", "[pii:credit_card]--[pii:credit_card]", {"pii:credit_card"}),
    ],
)
def test_a_card_or_a_dashed_iban_before_an_em_dash_or_a_double_dash_is_reported_as_masked(
    text: str, masked: str, found: set[str]
) -> None:
    # (the fold read an em dash after a digit as `-`, so the card was joined to the word after it: none, where `mask`,
    # reading the text's own form, masked it; a card before `--` was none to both)
    assert ALL.scan(text) == found
    assert ALL.scan_output(text) == found
    assert ALL.mask(text) == masked
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("4111 1111 1111 1111-please", frozenset()),  # (one dash: joined to the word, as `ref 2024-4111 …`)
        ("4111 1111 1111 1111\u20142222", frozenset()),  # (a digit either side: `-`, one longer number)
        ("555\u2014123\u20144567", {"pii:phone"}),
        ("2024\u20144111 1111 1111 1111", frozenset()),
        ("4111\u200b\u20141111\u20141111\u20141111", {"pii:credit_card"}),
        ("4111\u2014\u200b1111\u2014\u200b1111\u2014\u200b1111", {"pii:credit_card"}),  # (past what the fold drops)
        ("555-123-4567\u2014please", {"pii:phone"}),
    ],
)
def test_an_em_dash_between_digits_reads_as_one_dash_as_before(text: str, found: set[str]) -> None:
    assert ALL.scan_output(text) == found
    assert ALL.scan(text) == found
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


@pytest.mark.parametrize(
    "text",
    [
        "555-123-4567 4111 1111 1111 1111 555-987-6543",
        "555-123-4567 5500 0000 0000 0004 555-987-6543",
        "555-123-4567 3782 822463 10005 555-987-6543",
        "(555) 123-4567 4111 1111 1111 1111 555-987-6543",
        "(555) 123-4567 4111 1111 1111 1111 (555) 987-6543",
        "020-7946-0958 4111 1111 1111 1111 020-7946-0959",
        "call 555-123-4567 4111 1111 1111 1111 555-987-6543 now",
        "555-123-4567 4111 1111 1111 1111 555-987-6543.",
    ],
)
def test_a_card_between_two_phones_written_with_dashes_is_found(text: str) -> None:
    # (the run of a phone's, a card's and a phone's groups was longer than a card's run is read, a row's: the card in
    # clear, to `scan` and `mask` alike; with dots or a comma between, it was found)
    assert ALL.scan_output(text) == {"pii:phone", "pii:credit_card"}
    assert ALL.scan(text) == {"pii:phone", "pii:credit_card"}
    assert ALL.mask(text).count("[pii:credit_card]") == 1
    assert ALL.mask(text).count("[pii:phone]") == 2
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


@pytest.mark.parametrize(
    "text",
    [
        "555-123-4567 4111 1111 1111 1112 555-987-6543",  # (no Luhn)
        "555-123-4567 1234 1111 1111 1111 555-987-6543",  # (no issuer's first digits)
        "555-123-4567 4111 1111 1111 1111 555-987-6543 12",  # (the run goes on: a row's, as before)
        "555-123-4567 4111 1111 1111 1111 555-987-6543x",
        "555-123-4567 4111 1111 111 1111 555-987-6543",  # (not grouped as cards are)
    ],
)
def test_a_run_of_phones_about_no_card_finds_none(text: str) -> None:
    assert "pii:credit_card" not in ALL.scan_output(text)
    assert "[pii:credit_card]" not in ALL.mask(text)
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


LIMIT = 2000
SMALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")], LIMIT)


# (`ﷺ` folds to 18 characters: in words, a text of it NFKC makes less than 4 times as long, `Detectors._read_whole`)
@pytest.mark.parametrize("wide", ["\ufdfa in words ", "\ufb01 ", "\u3392 ", "\u00bc "])
@pytest.mark.parametrize(
    ("value", "label"),
    [(" alice@example.com", "pii:email"), (" 4111 1111 1111 1111", "pii:credit_card"), (" 555-123-4567", "pii:phone")],
)
def test_a_request_within_the_limit_as_it_comes_that_nfkc_makes_longer_is_read_to_its_end(
    wide: str, value: str, label: str
) -> None:
    # (read to the limit in folded characters, it was `scan:truncated` and the value at its end unread, where the same
    # text as a reply's output was read whole: the limit counts characters as they come)
    text = wide * ((LIMIT - len(value)) // len(wide)) + value
    assert len(unicodedata.normalize("NFKC", text)) <= 4 * len(text)
    assert len(text) <= LIMIT < len(unicodedata.normalize("NFKC", text))
    assert SMALL.scan_output(text) == {label}
    assert SMALL.scan_all([text]) == {label}
    assert SMALL.reading().scan_all([text]) == {label}
    half = len(text) // 2
    assert SMALL.reading().scan_all([text[:half], text[half:]]) == ({label} if len(text) < LIMIT else {TRUNCATED})
    assert TRUNCATED in SMALL.scan_all([text + " more text past the limit"])  # (past it as it comes: cut, as before)


def test_a_reading_shares_its_limit_as_characters_come() -> None:
    text = "\ufdfa in words " * 90 + "alice@example.com"
    assert len(text) < LIMIT < len(unicodedata.normalize("NFKC", text))
    reading = SMALL.reading()
    assert reading.scan_all([text]) == {"pii:email"}
    assert reading.scan_all(["x" * (LIMIT - len(text)) + " 555-123-4567"]) == {TRUNCATED}  # (what was left was less)


def _folded_chars(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every fold from now on (`detectors.folded`, which `Detectors.scan` folds a text with) adds the characters it
    made to the list: the work of a scan of a text not ASCII is linear in them."""
    made: list[int] = []
    fold = detectors.folded

    def counting(text: str, limit: int) -> tuple[str, bool]:
        folding = fold(text, limit)
        made.append(len(folding[0]))
        return folding

    monkeypatch.setattr(detectors, "folded", counting)
    return made


@pytest.mark.interpreted  # (the module's fold replaced)
@pytest.mark.parametrize("many", [1, 2])
@pytest.mark.parametrize("unit", ["\ufdfa", "\ufdfa ", "\ufdfa\u00bc"])
def test_a_request_nfkc_makes_more_than_four_times_as_long_is_read_to_four_times_its_length(
    monkeypatch: pytest.MonkeyPatch, unit: str, many: int
) -> None:
    # (a client sends a request: read whole, a request of the limit's length of `ﷺ`, 18 times as long folded, held the
    # event loop 1.5 s, not 0.06; at most 4 times its length is read again, `scan:truncated` as before)
    text = unit * ((LIMIT - 20) // len(unit)) + " alice@example.com"
    assert len(text) <= LIMIT and len(unicodedata.normalize("NFKC", text)) > 4 * len(text)
    made = _folded_chars(monkeypatch)
    texts = [text[: len(text) // 2], text[len(text) // 2 :]] if many == 2 else [text]
    assert SMALL.scan_all(texts) == {TRUNCATED}
    assert sum(made) <= LIMIT + 4 * LIMIT + 4 * 18  # (the limit's, then 4 times it: a fold ends a character past)
    made.clear()
    reading = SMALL.reading()
    assert reading.scan_all(texts) == {TRUNCATED}
    assert reading.scan_all(["ﷺ" * 10]) == {TRUNCATED}  # (nothing left of the limit)
    assert sum(made) <= LIMIT + 4 * LIMIT + 4 * 18
    assert SMALL.scan_output(text) == {"pii:email"}  # (a reply's output, the model's length, is read whole)


@pytest.mark.parametrize("dash", ["\u2013", "\u2212"])
@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("x {}4111 1111 1111 1111", "x {}[pii:credit_card]"),
        ("pay {}4111111111111111 now", "pay {}[pii:credit_card] now"),
        ("{}4111-1111-1111-1111", "{}[pii:credit_card]"),
        ("4111 1111 1111 1111{}please", "[pii:credit_card]{}please"),
        ("DE89-3704-0044-0532-0130-00{}please", "[pii:iban]{}please"),
    ],
)
def test_a_card_beside_an_en_dash_or_a_minus_sign_is_reported_as_masked(dash: str, text: str, masked: str) -> None:
    # (read as `-`, a sign's, the card was none to `scan`, where `mask`, reading the text's own form, masked it: the
    # record said less than the mask hid; now read as `--`, prose's, as an em dash no digit is beside)
    text, masked = text.format(dash), masked.format(dash)
    label = "pii:iban" if "DE89" in text else "pii:credit_card"
    assert ALL.scan(text) == {label}
    assert ALL.scan_output(text) == {label}
    assert ALL.mask(text) == masked
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("x -4111 1111 1111 1111", frozenset()),  # (an ASCII sign: none, as before)
        ("555\u2013123\u20134567", {"pii:phone"}),  # (between digits: `-`, as before)
        ("pages 2024\u20134111 1111 1111 1111", frozenset()),
        ("4111\u20131111\u20131111\u20131111", {"pii:credit_card"}),
        ("x \u2212555-123-4567", {"pii:phone"}),
        ("x \u221210.0.0.1", {"pii:ip_address"}),
    ],
)
def test_an_en_dash_or_a_minus_sign_between_digits_reads_as_before(text: str, found: set[str]) -> None:
    assert ALL.scan_output(text) == found
    assert ALL.scan(text) == found
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


@pytest.mark.parametrize(
    "text",
    [
        "3782 822463 10005\u20145500 0000 0000 0004 ",
        "3782 822463 10005\u22125500 0000 0000 0004 ",
        "4111 1111 1111 1111\u2014555-123-4567",
        "x 555-123-4567\u20144111 1111 1111 1111",
    ],
)
def test_a_dash_where_values_meet_is_masked_as_scan_reads_it(text: str) -> None:
    # (`mask` folded the stretch after a value alone, a dash a digit is before in the text read as no digit were: `--`,
    # where `scan` read `-`, and what `scan` found across it was left in clear)
    masked = ALL.mask(text)
    for label in ALL.scan(text):
        assert f"[{label}]" in masked, (label, masked)
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


# a small em dash, a vertical em dash, a vertical en dash, a superscript and a subscript minus: NFKC's em dash, en dash
# and minus sign
@pytest.mark.parametrize("dash", ["\ufe58", "\ufe31", "\ufe32", "\u207b", "\u208b"])
@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("x {}4111 1111 1111 1111", "x {}[pii:credit_card]"),
        ("4111 1111 1111 1111{}please", "[pii:credit_card]{}please"),
        ("DE89-3704-0044-0532-0130-00{}please", "[pii:iban]{}please"),
        ("3782 822463 10005{}5500 0000 0000 0004 ", None),
        ("555{0}123{0}4567", "[pii:phone]"),
    ],
)
def test_a_dash_nfkc_makes_a_prose_dash_of_is_read_as_that_dash(dash: str, text: str, masked: str | None) -> None:
    # (read as `-`, a sign's, the card was none to `scan`, where `mask`, reading the text's own form, masked it; as
    # the dash NFKC makes of it, `--` where no digit is beside it, `-` between digits)
    text = text.format(dash)
    as_folded = text.replace(dash, unicodedata.normalize("NFKC", dash))
    assert ALL.scan(text) == ALL.scan(as_folded) == ALL.scan_output(text)
    assert ALL.scan(text) != frozenset()
    if masked is not None:
        assert ALL.mask(text) == masked.format(dash)
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # (the country code masked with the phone since 2026-12-07, helper det16: `+1 [pii:phone]` before)
        ("+1 555-123-4567 4111 1111 1111 1111", "[pii:phone] [pii:credit_card]"),
        ("+44 20-7946-0958 4111 1111 1111 1111", "[pii:phone] [pii:credit_card]"),
        ("+1 (555) 123-4567 4111 1111 1111 1111", "[pii:phone] [pii:credit_card]"),
        ("+1 555.123.4567 3782 822463 10005", "[pii:phone] [pii:credit_card]"),
        ("call +1 555-123-4567 4111 1111 1111 1111 now", "call [pii:phone] [pii:credit_card] now"),
        # (kept as before: no `+`, a number of its own before the phone; a number no card)
        ("1 555-123-4567 4111 1111 1111 1111", "1 [pii:phone] 4111 1111 1111 1111"),
        ("+1 555-123-4567 4111 1111 1111 1112", "[pii:phone] 4111 1111 1111 1112"),
    ],
)
def test_a_card_after_a_phone_with_its_country_code_is_found(text: str, masked: str) -> None:
    # (the run of numbers began at the country code: the rest of it, `1 555-123-4567`, no phone as it is alone, and the
    # card was in clear, to `scan` and `mask` alike)
    found = {"pii:phone", "pii:credit_card"} if "[pii:credit_card]" in masked else {"pii:phone"}
    assert ALL.scan(text) == ALL.scan_output(text) == found
    assert ALL.mask(text) == masked
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []
