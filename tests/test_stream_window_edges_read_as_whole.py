"""A streamed reply is read in windows (`StreamScanner`), and its record's labels are those of the reply read whole
(`Detectors.scan_output`) wherever its pieces were cut. A window's start and end are no text's: before 2026-12-05 a
custom pattern's `^` matched where a window started mid-text (`^SECRET` after white space: `pii:c` streamed, none
whole), its `$` where a window ended at a piece's edge (`SECRET $` before more words), and a window of characters NFKC
makes longer (U+FDFA: 18 characters) was `scan:truncated`, read with a limit of its own length."""

from __future__ import annotations

import tracemalloc

import pytest

from proxy.config import BUILTIN_DETECTORS, DetectorSpec
from proxy.detectors import TRUNCATED, Detectors, StreamScanner


def _streamed(scanner: StreamScanner, text: str, sizes: list[int]) -> set[str]:
    at = 0
    turn = 0
    while at < len(text):
        size = sizes[turn % len(sizes)]
        scanner.feed(text[at : at + size])
        at += size
        turn += 1
    scanner.end_text()
    return scanner.found


def _every_cut(detectors: Detectors, text: str, expected: set[str], plain: bool = False, step: int = 1) -> None:
    """The text streamed in two pieces cut at every `step`-th place, and in the pieces the review found: labelled as
    whole, and as `expected`; `plain`: by the stream scanner itself too (what `stream()` is without a pattern)."""
    assert set(detectors.scan_output(text)) == expected
    makers = [detectors.stream, lambda: StreamScanner(detectors)] if plain else [detectors.stream]
    for make in makers:
        for cut in range(1, len(text), step):
            assert _streamed(make(), text, [cut, len(text)]) == expected, cut
        for sizes in ([1], [7, 3], [129], [700], [4096], [5000]):
            assert _streamed(make(), text, sizes) == expected, sizes


_CARET_LONG = "a" * 100 + " SECRET" + "b" * 4090 + "c" * 4096
_CARET_SHORT = "zz " + "a" * 100 + " SECRET" + "b" * 130 + " " + "c" * 200


def test_a_caret_matches_at_the_text_start_only() -> None:
    """Before: fed as pieces of 4,197 then 4,096 characters, `pii:c` (the second window starts at ` SECRET`'s
    white space); `^aaa` read by the stream scanner itself in pieces of 240 and 200, `pii:c`."""
    _every_cut(Detectors([DetectorSpec("c", r"^SECRET")]), _CARET_LONG, set(), step=7)
    _every_cut(Detectors([DetectorSpec("c", r"^aaa")]), _CARET_SHORT, set(), plain=True)
    _every_cut(Detectors([DetectorSpec("c", r"\Aaaa")]), _CARET_SHORT, set(), plain=True)
    _every_cut(Detectors([DetectorSpec("c", r"^zz")]), _CARET_SHORT, {"pii:c"}, plain=True)


@pytest.mark.parametrize(
    ("pattern", "found"),
    [
        (r"\bSECRET", {"pii:c"}),
        (r"\bbbb", set()),  # (a window may start within the b's: no word's start there)
        (r"(?<= )SECRET", {"pii:c"}),
        (r"(?<![a-z ])SECRET", set()),
        (r"(?m)^SECRET", set()),
        (r"(?m)^cc", {"pii:c"}),
    ],
)
def test_what_a_window_start_is_next_to_is_read_as_whole(pattern: str, found: set[str]) -> None:
    text = "zz " + "a" * 100 + " SECRET" + "b" * 130 + " " + "c" * 200 + "\n" + "c" * 200
    _every_cut(Detectors([DetectorSpec("c", pattern)]), text, found, plain=True)


@pytest.mark.parametrize(
    ("pattern", "found"),
    [
        (r"SECRET $", set()),
        (r"SECRET \Z", set()),
        (r"SECRET (?!more)", set()),
        (r"words$", {"pii:c"}),
        (r"SECRET $|SECRET", {"pii:c"}),
    ],
)
def test_a_window_ending_at_a_piece_edge_is_not_the_text_end(pattern: str, found: set[str]) -> None:
    """Before: `SECRET $` in pieces of 207 and 100 characters (the first ends after `SECRET `), `pii:c`, by the stream
    scanner and by `stream()`."""
    text = "x " * 100 + "SECRET " + "more words"
    _every_cut(Detectors([DetectorSpec("c", pattern)]), text, found, plain=True)
    long = "x " * 2200 + "SECRET " + "more words"  # (cut where the custom patterns' own windows end too)
    _every_cut(Detectors([DetectorSpec("email"), DetectorSpec("c", pattern)]), long, found, step=5)


def test_a_pattern_at_the_very_end_is_found_streamed_as_whole() -> None:
    """The end of a text held back as not the end (`$`) is read as its end once the text ends."""
    for text in ("x " * 100 + "SECRET ", "x " * 100 + "SECRET", "x " * 3000 + "SECRET "):
        _every_cut(Detectors([DetectorSpec("c", r"SECRET ?$")]), text, {"pii:c"}, plain=True, step=11)


def test_characters_nfkc_makes_longer_are_not_truncated() -> None:
    """Before: a text of U+FDFA (`ﷺ`, 18 characters as NFKC reads it) streamed was `scan:truncated`, in every piece
    size; read whole as a request's text is, it was not."""
    detectors = Detectors([DetectorSpec("email"), DetectorSpec("c", r"SECRET")])
    text = "the weather " * 30 + "\ufdfa" * 20 + " bob@example.com" + " bye" * 40
    assert TRUNCATED not in detectors.scan(text)
    _every_cut(detectors, text, {"pii:email"})
    _every_cut(Detectors([DetectorSpec("email")]), text, {"pii:email"})


def test_the_limit_still_truncates_what_is_past_it() -> None:
    detectors = Detectors([DetectorSpec("email"), DetectorSpec("c", r"^SECRET")], max_chars=300)
    text = "SECRET " + "\ufdfa" * 20 + " bye" * 100
    _every_cut(detectors, text, {"pii:c", TRUNCATED})


@pytest.mark.parametrize(("pattern", "found"), [(r"SECRET$", set()), (r"(?m)SECRET$", {"pii:c"})])
def test_a_window_ending_in_a_newline_is_not_the_text_end(pattern: str, found: set[str]) -> None:
    """`$` matches before a string's last newline too: a window ending in one, more after it, was read so (`SECRET$`
    before `\\nmore words`, `pii:c` streamed in any pieces longer than 128 characters, none whole)."""
    text = "x " * 100 + "SECRET\n" + "more words"
    _every_cut(Detectors([DetectorSpec("c", pattern)]), text, found, plain=True)
    long = "x " * 2200 + "SECRET\n" + "more words"
    _every_cut(Detectors([DetectorSpec("email"), DetectorSpec("c", pattern)]), long, found, step=5)


def test_the_end_read_again_is_read_for_the_patterns_alone() -> None:
    """The end of a text, read as not the end, is read again as the end for the custom patterns alone: read again for
    every detector, its tail (from the token before its white space, cut inside 200 `q`s) held a local part of 64
    characters or fewer, and the text fed whole was `pii:email` (adfeddf), not read whole as a request's text."""
    text = "x " * 10 + "q" * 200 + "bob@example.com " + "q" * 200 + "\u00e9"
    assert not Detectors([DetectorSpec("email")]).scan(text + "\n")
    # (cut 415 or later, as in the two pieces, it is an address still, a pattern or not: its tail then starts inside
    # the `q`s whatever it is read with)
    detectors = Detectors([DetectorSpec("email"), DetectorSpec("c", r"SECRET")])
    assert set(detectors.scan_output(text)) == set()
    for make in (detectors.stream, lambda: StreamScanner(detectors)):
        for sizes in ([len(text)], [1], [7, 3], [129], [300]):
            assert _streamed(make(), text, sizes) == set(), sizes


@pytest.mark.parametrize(("pattern", "found"), [(r"SECRET \Z", set()), (r"SECRET \n\Z", {"pii:c"})])
def test_a_text_end_is_read_with_its_newline_in_any_pieces(pattern: str, found: set[str]) -> None:
    """With a custom pattern, a text's end is read with the newline after it, streamed and whole: before 2026-12-05,
    read whole or fed in pieces of 129 characters or more, without it (`SECRET \\Z`: `pii:c`), in shorter ones with it
    (none). Fails on main before adfeddf."""
    _every_cut(Detectors([DetectorSpec("c", pattern)]), "x " * 100 + "SECRET ", found, plain=True)
    _every_cut(Detectors([DetectorSpec("email"), DetectorSpec("c", pattern)]), "x " * 2200 + "SECRET ", found, step=3)


def test_a_match_longer_than_what_is_read_again_counts_at_a_window_end() -> None:
    """A match ending at a window's end whose start the next window does not read again (a `_PatternStreamScanner`'s
    last 4,096 characters, the stream scanner's last 128) counts there: before, `SECRET\\S*` before a token of 5,000
    characters was found whole, not streamed in pieces of 1, 100, 4,096 or 5,000; by the stream scanner itself, before
    one of 300, not in pieces of 129."""
    detectors = Detectors([DetectorSpec("c", r"SECRET\S*")])
    _every_cut(detectors, "intro SECRET" + "x" * 5000 + " tail words here", {"pii:c"}, step=211)
    _every_cut(detectors, "intro SECRET" + "x" * 300 + " tail words here", {"pii:c"}, plain=True)
    both = Detectors([DetectorSpec("email"), DetectorSpec("c", r"SECRET\S*")])
    _every_cut(both, "intro SECRET" + "x" * 10000 + " tail", {"pii:c"}, step=997)


@pytest.mark.parametrize("custom", [False, True])
def test_a_window_is_folded_in_parts_within_the_scan_limit(custom: bool) -> None:
    """A window is read as NFKC folds it, up to 18 times its length (U+FDFA), a long one in parts each folded whole
    (`_FOLD_WHOLE`): a million U+FDFA in one piece held 74 MB at once to read (203 MB with a custom pattern) since
    5f1a094, 8 MB before it, ~2 MB now. Until 2026-12-05 (helper detectors) what folded past the limit was left unread,
    `scan:truncated`, though within it as it came, where the same text fed in shorter pieces was read all of it."""
    specs = [DetectorSpec(name) for name in BUILTIN_DETECTORS]
    detectors = Detectors(specs + ([DetectorSpec("c", r"SECRET")] if custom else []), 200_000)
    tracemalloc.start()
    try:
        scanner = detectors.stream()
        scanner.feed("\ufdfa" * 200_000)  # (3.6 M characters as NFKC reads them)
        scanner.end_text()
        found = scanner.found
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == set()
    assert peak < 8_000_000, peak
