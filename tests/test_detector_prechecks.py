"""The detectors' cheap checks before their searches (a text with no character any finder looks for; prose with
years in it for the phone and IBAN finders) rule out only what finds nothing: the labels, the values found and the
streamed labels are those of the finders searching everything, written here as they were before the checks (the
phone finder's own search, `_phones_searched`, is its search without them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import proxy.detectors as detectors
from proxy.config import DetectorSpec
from proxy.detectors import Detectors, Found, _apart, _Text, folded

BUILTIN = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])
# a custom pattern runs on every text: no text is skipped for want of what the built-in finders look for
WITH_KEYS = Detectors(
    [DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")]
    + [DetectorSpec("api-key", r"sk-[A-Za-z0-9]{20,}")]
)


def searched_ibans(t: _Text) -> Iterator[tuple[int, int]]:
    """`_ibans` without its check first: `_IBAN` searched for at every pair of digits (an IBAN the match holds more
    than, taken at its country's length; after a match from a number's digits, the search on from an IBAN's head in
    it; in a match from a look-alike's head, an IBAN taken at its country's length)."""
    pos, stop = t.first, t.stop
    letters = detectors._LETTERS
    while (m := detectors._IBAN.search(t.classes, pos, stop)) is not None:
        start, end = m.start() - 2, m.end()
        pos = end
        if detectors._iban(t, start, end):
            yield start, end
        elif (ending := detectors._iban_ending(t, start + 2)) > 0:
            pos = ending
            yield start, ending
        elif start < 0 or t.classes[start + 1] not in letters:
            pos = detectors._head_within(t, start + 3, end)
        elif (digits := detectors._iban_within(t, start + 3, end)) > 0:
            pos = detectors._iban_ending(t, digits)
            yield digits - 2, pos
    yield from detectors._joined_ibans(t)  # (searched by `_ibans` after the same check first)


SEARCHED = {detectors._phones: detectors._phones_searched, detectors._ibans: searched_ibans}


def everything(found_by: Detectors, text: str) -> list[Found]:
    """Every value in `text` as `scan` reads it (folded, escapes decoded), each finder searching all of it (overlaps
    kept), in the order `findings` reads the finders in (one span two find: the label masked, `_MASKED_FIRST`)."""
    t = _Text(folded(text, found_by.max_chars)[0])
    return [Found(s, e, label) for label, finder, *_ in found_by._masking for s, e in SEARCHED.get(finder, finder)(t)]


def searching_everything(found_by: Detectors) -> Detectors:
    """A copy of `found_by` with the finders above in place of the checked ones, skipping no text before its finders
    run (the finders needing digits still search only from the first digit to the last, as `scan` did before)."""
    reference = Detectors([DetectorSpec("email")], found_by.max_chars)
    reference._finders = tuple(
        (label, SEARCHED.get(finder, finder), *rest) for label, finder, *rest in found_by._finders
    )
    reference._groups = tuple(
        (needs, tuple((label, SEARCHED.get(finder, finder), *rest) for label, finder, *rest in group))
        for needs, group in found_by._groups
    )
    reference._marks = ()
    return reference


# values, near misses and prose with numbers in it (years, prices, versions, dates), run together in any order
_PIECES = st.sampled_from(
    [
        "ana.lopez+work@example.co.uk", "a@b", "x@example", "bob&#64;example.org", "+1 415 555 2671",
        "(415) 555-2671", "415 555 267", "415.555.2671", "+447911123456", "1 (800) 555-0199", "555-0199",
        "4111 1111 1111 1111", "4111111111111111", "4111.1111.1111.1111", "4111 1111 1111 1112", "5500-0000-0000-0004",
        "3782\t822463\t10005", "192.168.10.254", "999.1.1.1", "1.2.3", "2001:db8::8a2e:370:7334", "12:30:45",
        "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "de89370400440532013000", "GB82 WEST 1234 5698 7654 32",
        "SC18 SSCB 1101 0000 0000 0000 1497 USD", "NO9386011117947", "AB12 3456", "xx00", "sk-abcdefghijklmnopqrstuv",
        "from 1887 to 1889", "in 1889.", "the 1889 World's Fair", "$1,299.00", "version 1.2.3", "on 2024-01-15",
        "page 7", "call 555", "tel:", "The Eiffel Tower is a wrought-iron lattice tower", "Be concise.",
        "\uff14\uff11\uff11\uff11 1111 1111 1111", "\u0664\u0661\u0661\u0661", "ana\uff20example.com", "1\u200b2",
    ]
)  # fmt: skip
_SEPARATORS = st.sampled_from(["", " ", "  ", "\n", ", ", ".", "-", "/", "\t", "(", ")", "a", "0", "B"])
_TEXTS = st.builds(
    lambda pieces, noise: "".join(piece + sep for piece, sep in pieces) + noise,
    st.lists(st.tuples(_PIECES, _SEPARATORS), max_size=8),
    st.text(alphabet="abcDE 0123456789.-()+@:", max_size=40),
)


@settings(max_examples=500)
@given(_TEXTS)
def test_scan_finds_what_searching_everything_finds(text: str) -> None:
    for found_by in (BUILTIN, WITH_KEYS):
        assert found_by.scan(text) == {item.label for item in everything(found_by, text)}


@settings(max_examples=300)
@given(st.text(alphabet="0123456789 .-()+aAzZ", max_size=60))
def test_scan_of_digits_and_separators_finds_what_searching_everything_finds(text: str) -> None:
    """Phones and IBANs near their fewest digits and shortest forms, in every arrangement."""
    assert BUILTIN.scan(text) == {item.label for item in everything(BUILTIN, text)}


@settings(max_examples=300)
@given(_TEXTS.filter(lambda text: text.isascii() and "&" not in text))
def test_the_values_found_are_those_searching_everything_finds(text: str) -> None:
    """What masking replaces (`findings`, the text as it is)."""
    for found_by in (BUILTIN, WITH_KEYS):
        assert found_by.findings(text) == _apart(everything(found_by, text))


@settings(max_examples=40, deadline=None)
@given(_TEXTS.map(lambda text: text * (1 + 300 // (len(text) + 1))), st.integers(1, 300))
def test_a_stream_split_anywhere_finds_what_it_found_before(text: str, size: int) -> None:
    """Cut at every point into two pieces (a short one waiting for more, a long one read at once with the tail of
    what came before), and in pieces of any size: the stream finds what it found before the checks."""
    for found_by in (BUILTIN, WITH_KEYS):
        reference = searching_everything(found_by)
        assert found_by.scan(text) == reference.scan(text)
        for pieces in [(text[:at], text[at:]) for at in range(len(text) + 1)] + [
            tuple(text[at : at + size] for at in range(0, len(text), size))
        ]:
            stream, before = found_by.stream(), reference.stream()
            for piece in pieces:
                stream.feed(piece)
                before.feed(piece)
            assert stream.found == before.found, pieces


# they count what runs by patching the module: with it interpreted (tests/conftest.py)
@pytest.mark.interpreted
def test_prose_without_digits_at_signs_or_colons_is_not_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing a built-in finder looks for, so no class string is made for it; with a custom pattern it is."""
    made: list[str] = []

    class Counted(_Text):
        def __init__(self, text: str, classes: bytes = b"") -> None:
            made.append(text)
            super().__init__(text, classes)

    monkeypatch.setattr(detectors, "_Text", Counted)
    prose = "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. " * 10
    assert BUILTIN.scan(prose) == frozenset()
    assert made == []
    assert WITH_KEYS.scan(prose) == frozenset()
    assert made == [prose]
    assert BUILTIN.scan(prose + "from 1887 to 1889") == frozenset()
    assert len(made) == 2


# a reply's one output, long enough to be read in two windows were it not plain (`Detectors.scan_output`): a phone, a
# card, an address, an IPv4 and an IBAN alone, beside controls, escapes, letters that are not ASCII, and nothing
REPLIES = [
    "The tower was built from 1887 to 1889 and is 330 m tall; the queue in the morning is about 45 minutes. " * 3
    + "Its height is 330",
    ("Call us at (555) 123-4567 or write to alice@example.com about the trip, booked for the 4th of May. " * 2).strip(),
    "Pay with 4111 1111 1111 1111 or 4111-1111-1111-1112; the server at 10.0.0.1 logs it, IBAN DE89 3704 0044 "
    "0532 0130 00, all of it read before it is sent, and nothing else of it is kept beyond the call's end.",
    "A control\x00 in a reply: alice\x00@example.com, read without it, as a model reads it, and then some more text.",
    "An escape: alice%40example.com and bob&#64;example.org, read as the addresses they are, and then more text.",
    "Ａｌｉｃｅ＠ｅｘａｍｐｌｅ.com and ٤١١١ ١١١١ ١١١١ ١١١١ are read folded, as the model reads them, and then more.",
    "Plain prose, no digit, no at sign, no colon, nothing any finder looks for, long enough for two windows, " * 2
    + "ends",
    "A reply that ends in a number that may go on: call 555 123 " + "and more words before it " * 6 + "555 123 4567",
]


# it counts what runs by patching the module: with it interpreted (tests/conftest.py)
@pytest.mark.interpreted
@pytest.mark.parametrize("reply", REPLIES)
def test_a_plain_reply_has_its_class_string_made_once(monkeypatch: pytest.MonkeyPatch, reply: str) -> None:
    """A reply's one output that reads as it stands (ASCII, no escapes, no controls) is looked at for controls in its
    class string, which its scan then reads, not made again (~3,800 machine instructions a 516-character reply, of
    ~9,700 a call's class strings took, 2026-12-05); what is found is what its scan finds with the line end after it."""
    plain = detectors._plain(reply)
    # what its scan finds, with the line end after it where its end may be a value cut there (`_unended`)
    expected = BUILTIN.scan(reply + "\n" if detectors._unended(reply) < len(reply) else reply)
    made: list[bytes] = []

    class Counted(_Text):
        def __init__(self, text: str, classes: bytes = b"") -> None:
            made.append(classes)
            if classes:
                super().__init__(text, classes)
            else:
                super().__init__(text)

    controls = 0

    def counted(part: bytes) -> bool:
        nonlocal controls
        controls += 1
        return detectors._CONTROL_CLASS in part.translate(detectors._CLASSES)

    monkeypatch.setattr(detectors, "_Text", Counted)
    monkeypatch.setattr(detectors, "_controls", counted)
    found = BUILTIN.scan_output(reply)
    if plain:
        assert found == expected
        assert controls + made.count(b"") <= 1  # its class string made once at most (none: nothing to look for)
    monkeypatch.undo()
    assert found == BUILTIN.scan_output(reply)  # (read as before: the same labels)


class Searches:
    """A compiled pattern that counts its searches."""

    def __init__(self, pattern: Any) -> None:
        self.pattern = pattern
        self.count = 0

    def search(self, *args: Any) -> Any:
        self.count += 1
        return self.pattern.search(*args)


@pytest.mark.interpreted
def test_prose_with_years_is_not_searched_for_phones_or_ibans(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chat reply that names years has digits enough for a phone and pairs of them for an IBAN: their patterns,
    tried at each digit, are not searched where the checks before them find no run of a phone's characters and
    no two letters before two digits; where those are, they are."""
    phone, iban = Searches(detectors._PHONE), Searches(detectors._IBAN)
    monkeypatch.setattr(detectors, "_PHONE", phone)
    monkeypatch.setattr(detectors, "_IBAN", iban)
    prose = "It was built from 1887 to 1889 as the centerpiece of the 1889 World's Fair. In 1889, it opened."
    assert BUILTIN.scan(prose) == frozenset()
    assert (phone.count, iban.count) == (0, 0)
    assert BUILTIN.scan(prose + " Call +1 415 555 2671, pay DE89 3704 0044 0532 0130 00.") == {"pii:phone", "pii:iban"}
    assert phone.count > 0 and iban.count > 0
