"""A whole reply's output read without a stream scanner: `OutputText.add_output` (an output given whole, as a
whole reply's choice is) reads as `add` then `end_piece` did, and a reply's only output is scanned by
`Detectors.scan_output`, which finds what a new stream scanner fed that text and ended finds. Differential,
over texts near and past the scan limit (short and long pieces: a short one waits in the scanner, and its
end is read), non-ASCII and fullwidth text, values split across outputs, asides and unread text between."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from proxy import protocols
from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver
from tests.test_detector_card_and_phone_layouts import _streamed_differ

# and a pattern of the user's, which reads the text itself: where it ends, and what is read after it
SPECS = (
    *(DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")),
    DetectorSpec("line_end", r"[0-9]\n"),
)
LIMITS = st.sampled_from((0, 1, 5, 40, 127, 128, 129, 300, 4096, 100_000))
VALUES = (
    "ana@example.org", "ａｎａ＠ｅｘａｍｐｌｅ.ｏｒｇ", "+1 (415) 555-2671", "4111 1111 1111 1111", "192.168.10.20",
    "GB82 WEST 1234 5698 7654 32", "ana\u200b@example.org", "２００１:ｄｂ８::１", "fe80::1", "\n", " ", "é",
)  # fmt: skip
CHARACTERS = st.one_of(st.characters(blacklist_categories=("Cs",)), st.sampled_from("0123456789@:.- \nabcXYZ"))
TEXTS = st.one_of(
    st.lists(st.sampled_from(VALUES) | st.text(CHARACTERS, max_size=20), max_size=12).map("".join),
    st.text(CHARACTERS, max_size=200),
    st.tuples(st.sampled_from(VALUES), st.integers(1, 400)).map(lambda pair: pair[0] * pair[1]),
)


def _detectors(limit: int) -> Detectors:
    return Detectors(SPECS, limit)


@settings(max_examples=400, deadline=None)
@given(TEXTS, LIMITS)
# a text the limit's characters long that NFKC makes longer (`¼`: `1⁄4`): its end is past the limit read whole, and
# was read for the custom pattern in the stream scanner's last window until 2026-12-05 (`pii:line_end` streamed)
@example("ana@example.org" * 7 + "00000¼+1 (415) 555-2671", 128)
# and read whole, until 2026-12-05 (helper detectors), cut at the limit as NFKC reads it, `scan:truncated`, its end
# unread, where the stream's windows each folded within it and read it (helper scanend's finds at 20,000 examples)
@example(
    "GB82 WEST 1234 5698 7654 32GB82 WEST 1234 5698 7654 32\n0000000000000000000000000000¼+1 (415) 555-2671"
    "00000000000000¼:２００１:ｄｂ８::１",
    128,
)
@example("¼¼" + "x" * 103 + " call +1 (415) 555-2671", 128)
def test_scan_output_finds_what_a_new_stream_scanner_finds(text: str, limit: int) -> None:
    detectors = _detectors(limit)
    scanner = detectors.stream()
    scanner.feed(text)
    scanner.end_text()
    assert detectors.scan_output(text) == frozenset(scanner.found)


def test_scan_output_reads_the_end_of_a_short_text_and_the_limit() -> None:
    detectors = _detectors(100_000)
    assert detectors.scan_output("call +1 (415) 555-2671 now") == {"pii:phone"}
    assert detectors.scan_output("x" * 20 + " ana@example.org") == {"pii:email"}
    assert detectors.scan_output("order 42") == {"pii:line_end"}  # a short piece's end is read as a newline
    # a long one's last token too, since 2026-12-04 (it waits for the next piece or the end: `_unended`); and with a
    # custom pattern configured, since 2026-12-05, one longer than the overlap too, as a stream reads its end (5f1a094)
    assert detectors.scan_output("x" * 200 + " 42") == {"pii:line_end"}
    assert detectors.scan_output("x" * 200 + "42") == {"pii:line_end"}
    short = _detectors(10)
    assert short.scan_output("ana@example.org") == {TRUNCATED}


# what an output's text gets, in order: a piece (`add`), a whole output, the end of one, an aside, unread text
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), TEXTS),
        st.tuples(st.just("output"), TEXTS),
        st.tuples(st.just("end"), st.just("")),
        st.tuples(st.just("aside"), TEXTS),
        st.tuples(st.just("unread"), st.just("")),
    ),
    max_size=8,
)


def _read(ops: list[tuple[str, str]], limit: int, whole: bool, capture: bool) -> Outcome:
    detectors = _detectors(limit)
    outcome = Outcome(0)
    text = protocols.OutputText(outcome, detectors, capture)
    for at, (op, value) in enumerate(ops):
        if op == "add":
            text.add(value)
        elif op == "output" and whole:
            text.add_output(value)
        elif op == "output":  # as a whole reply's choice was read: its text added, its output ended
            text.add(value)
            text.end_piece()
        elif op == "end":
            text.end_piece()
        elif op == "aside":
            text.aside(at % 3, value)
        else:
            text.unread()
    text.finish(detectors)
    return outcome


@settings(max_examples=400, deadline=None)
@given(OPS, LIMITS, st.booleans())
def test_a_whole_output_reads_as_added_and_ended(ops: list[tuple[str, str]], limit: int, capture: bool) -> None:
    new, old = _read(ops, limit, True, capture), _read(ops, limit, False, capture)
    assert (new.output_digest, new.output_detected, new.content) == (
        old.output_digest,
        old.output_detected,
        old.content,
    )


def test_no_detectors_scan_nothing_and_digest_all_the_same() -> None:
    outcome = Outcome(0)
    text = protocols.OutputText(outcome, Detectors(()), False)
    text.add_output("ana@example.org")
    text.aside("k", "bob@example.org")
    text.finish()
    assert outcome.output_detected == frozenset() and outcome.output_digest is not None


MESSAGE_KEYS = st.fixed_dictionaries(
    {"role": st.just("assistant")},
    optional={
        "content": st.none() | TEXTS,
        "refusal": TEXTS,
        "reasoning_content": TEXTS,
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {"function": st.fixed_dictionaries({}, optional={"name": TEXTS, "arguments": TEXTS})}
            ),
            max_size=2,
        ),
    },
)
CHOICES = st.lists(
    st.fixed_dictionaries(
        {"index": st.integers(0, 3)},
        optional={"message": MESSAGE_KEYS, "text": TEXTS, "finish_reason": st.sampled_from(("stop", "length"))},
    ),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(CHOICES, LIMITS)
def test_a_whole_reply_reads_as_its_outputs_added_and_ended(choices: list[dict[str, Any]], limit: int) -> None:
    """A whole reply's labels and digest: as its choices' texts added and ended, in index order, then its asides."""
    detectors = _detectors(limit)
    outcome = Outcome(0)
    observer = ReplyObserver(outcome, detectors, False)
    observer.whole({"choices": choices})
    observer.finish()
    expected = Outcome(0)
    text = protocols.OutputText(expected, detectors, False)
    asides: list[tuple[Any, str]] = []
    for choice in sorted(choices, key=lambda c: c["index"]) if len(choices) != 1 else choices:
        index, message = choice["index"], choice.get("message")
        content = message.get("content") if message is not None else choice.get("text")
        for key, value in (message or {}).items():
            if key in ("refusal", "reasoning_content"):
                asides.append(((index, key), value))
            for position, call in enumerate(value if key == "tool_calls" else ()):
                for part in ("name", "arguments"):
                    if part in call["function"]:
                        asides.append(((index, position, part), call["function"][part]))
        if isinstance(content, str):
            text.add(content)
        if isinstance(content, str) or index == 0:
            text.end_piece()
    for key, value in asides:
        text.aside(key, value)
    text.finish(detectors)
    assert (outcome.output_digest, outcome.output_detected) == (expected.output_digest, expected.output_detected)


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("¼¼" + "x" * 103 + " call +1 (415) 555-2671", 128),
        ("ana@example.org" * 7 + "00000¼+1 (415) 555-2671", 128),
        # longer than a window folded whole (`_FOLD_WHOLE`), read in parts
        ("\u00bc" * 70_000 + " call +1 (415) 555-2671 or ana@example.org", 200_000),
        # ASCII whose escapes NFKC makes longer (`\\ufdfa`, 6 characters, reads as 18): before (the review of helper
        # detectors' change, helper revdetectors), fed in one piece the custom patterns' reading folded it at once, cut
        # at the limit, `scan:truncated`, where in shorter pieces it was read all of it
        ("\\ufdfa" * 30_000 + " call +1 (415) 555-2671 or ana@example.org", 200_000),
    ],
)
def test_a_text_within_the_limit_that_nfkc_makes_longer_is_read_all_of_it_whole_and_streamed(
    text: str, limit: int
) -> None:
    # the limit counts characters as they come (`StreamScanner.feed`): before (helper detectors, 2026-12-05) the text
    # read whole was cut at the limit as NFKC reads it (`¼`: `1⁄4`), `scan:truncated` and no phone, where streamed
    # in windows each folding within it, it was read all of it (and one piece of the long one: its first window cut so,
    # its held end read)
    builtin = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")], limit)
    for detectors in (builtin, _detectors(limit)):
        found = detectors.scan_output(text)
        assert TRUNCATED not in found and ("pii:phone" in found) == (" call " in text)
        for size in (len(text), 50_000, 4000, 61):
            scanner = detectors.stream()
            for at in range(0, len(text), size):
                scanner.feed(text[at : at + size])
            scanner.end_text()
            assert scanner.found == found, size
    if limit < 1000:
        assert _streamed_differ(builtin, text) == []
