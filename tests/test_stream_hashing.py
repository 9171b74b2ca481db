"""A streamed reply's output digest and labels, read a token an event: the pieces of an output are hashed
together (`OutputText.add` keeps them until `_HASH_RUN` characters of them, or the output's end), and the
event stream's line ends are found with int needles (`SseObserver.chunk`). Differential: the digest is the
one of the pieces hashed one by one, in turn (as each `add` did), whatever the pieces, their characters
(lone surrogates too), where outputs end and how the stream is split or its lines ended."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import protocols
from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver

DETECTORS = Detectors((DetectorSpec("email"), DetectorSpec("phone")), 100_000)
NONE = Detectors((), 100_000)

# any character, lone surrogates (which `surrogatepass` encodes one by one) and email-shaped text among them
CHARACTERS = st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr), st.sampled_from("ana@example.org "))
PIECES = st.text(CHARACTERS, max_size=12) | st.text(CHARACTERS, min_size=600, max_size=1500)
# an output's piece, or its end
OPS = st.lists(st.one_of(PIECES, st.none()), max_size=40)


def old_digest(ops: list[str | None]) -> str | None:
    """The digest as each piece hashed in turn made it: b"\\n" at each output's end, none without text."""
    digest = hashlib.sha256()
    seen = False
    for op in ops:
        if op is None:
            digest.update(b"\n")
        elif op:
            seen = True
            digest.update(op.encode("utf-8", "surrogatepass"))
    return "sha256:" + digest.hexdigest() if seen else None


@settings(max_examples=100, deadline=None)
@given(OPS, st.booleans())
def test_pieces_hashed_together_make_the_digest_of_pieces_hashed_in_turn(ops: list[str | None], scan: bool) -> None:
    detectors = DETECTORS if scan else NONE
    outcome = Outcome(started_ns=1)
    text = protocols.OutputText(outcome, detectors, True)
    for op in ops:
        if op is None:
            text.end_piece()
        else:
            text.add(op)
    text.finish(detectors)
    assert outcome.output_digest == old_digest(ops)
    pieces = "".join(op for op in ops if op)  # and the content captured is the pieces in turn
    assert outcome.content == ((detectors.mask(pieces[: detectors.max_chars + 1]),) if pieces else ())


def test_a_long_output_is_hashed_as_it_comes_not_kept() -> None:
    """Pieces past `_HASH_RUN` characters are hashed then, not held to the output's end."""
    text = protocols.OutputText(Outcome(started_ns=1), NONE, False)
    for _ in range(protocols._HASH_RUN):
        text.add("x")
    assert text._unhashed_size == 0 and not text._unhashed
    text.add("y")
    assert text._unhashed == ["y"]


def stream(tokens: list[str], end: bytes) -> bytes:
    events = [{"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]}
              for t in tokens]  # fmt: skip
    events.append({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    lines = [b"data: " + orjson.dumps(e) for e in events] + [b"data: [DONE]"]
    return b"".join(line + end + end for line in lines)


def observed(pieces: list[bytes]) -> tuple[Outcome, bool]:
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, DETECTORS, False)
    for piece in pieces:
        observer.chunk(piece)
    ended = observer.ended
    observer.finish()
    return outcome, ended


# (no lone surrogates: JSON text carries none; drawn so, not filtered out of CHARACTERS, a third of whose draws are)
TOKENS = st.lists(st.text(st.characters(exclude_categories=("Cs",)) | st.sampled_from("ana@example.org "),
                          min_size=1, max_size=6), min_size=1, max_size=12)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(TOKENS, st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_a_stream_split_at_every_point_reads_as_its_tokens_hashed_in_turn(tokens: list[str], end: bytes) -> None:
    data = stream(tokens, end)
    expected: dict[str, Any] = {"digest": old_digest([*tokens, None]), "ended": True, "reasons": ("stop",)}
    whole, _ = observed([data])
    for cut in range(len(data) + 1):
        outcome, ended = observed([data[:cut], data[cut:]])
        got = {"digest": outcome.output_digest, "ended": ended, "reasons": outcome.finish_reasons}
        assert got == expected, cut
        assert outcome.output_detected == whole.output_detected, cut
    outcome, ended = observed([data[i : i + 1] for i in range(len(data))])  # a byte a read
    assert (outcome.output_digest, ended, outcome.output_detected) == (expected["digest"], True, whole.output_detected)


def test_an_address_split_across_events_is_found() -> None:
    outcome, _ = observed([stream(["write to ana@exa", "mple.org", " today"], b"\n")])
    assert outcome.output_detected == frozenset({"pii:email"})
