"""A plain-text reply whose type names a charset, passed on as it arrives, is kept to be read in that charset
(`SseObserver._keep`, badffd4); past `Detectors.keep_max` it is read as an event stream from its start. That reading
took what was kept joined, at once: a 16 MiB binary `text/plain; charset=iso-8859-1` reply held the event loop
0.3-0.7 s in one chunk (the framing's substitutions over 16 MiB) and took 127-152 MiB where 33 did before (a 100 MB
reply, `maxrss`). It is read a piece at a time, as the pieces came."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver
from tests.ingress.test_compressed_replies_read import STREAM

KEEP = 1 << 20
PIECE = 64 << 10


def _observer(detectors: Detectors, charset: str = "iso-8859-1") -> tuple[ReplyObserver, Outcome]:
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, detectors, True)
    observer.head(200, {"content-type": f"text/plain; charset={charset}"}.get)
    return observer, outcome


def test_a_plain_reply_past_keep_max_is_read_without_joining_what_was_kept() -> None:
    detectors = Detectors([DetectorSpec("email")], keep_max=KEEP)
    observer, outcome = _observer(detectors)
    rng = random.Random(1)
    for _ in range(KEEP // PIECE):  # kept: `keep_max` bytes, no more
        observer.chunk(rng.randbytes(PIECE))
    crossing = rng.randbytes(PIECE)
    tracemalloc.start()
    try:
        observer.chunk(crossing)  # past `keep_max`: read as an event stream from its start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # before: the kept megabyte joined, then copied by the framing's substitutions (several MiB at once)
    assert peak < KEEP // 2, peak
    for _ in range(8):
        observer.chunk(rng.randbytes(PIECE))
    observer.finish()
    assert outcome.output_detected == {TRUNCATED}


def test_an_event_stream_typed_as_text_past_keep_max_is_still_read_as_one() -> None:
    """Past `keep_max`, read a piece at a time: its events are the output, as when it was read joined."""
    detectors = Detectors([DetectorSpec("email")], keep_max=256)
    assert len(STREAM) > 256
    observer, outcome = _observer(detectors, "shift_jis")
    for at in range(0, len(STREAM), 50):
        observer.chunk(STREAM[at : at + 50])
    assert observer.unfinished() is False
    observer.finish()
    assert outcome.output_detected == {"pii:email", TRUNCATED}  # (its reading in its charset not whole)
    assert outcome.content == ("write to [pii:email]",)
    assert outcome.finish_reasons == ("stop",)


@pytest.mark.interpreted  # (counts what a compiled module calls directly)
def test_a_plain_reply_kept_whole_is_read_as_an_event_stream_a_piece_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under `keep_max`, at its end: read in its charset whole, then as an event stream a piece at a time (before,
    1 MiB at once through the framing's substitutions; 15 MiB of a binary reply held the event loop 1 s)."""
    read: list[int] = []
    framing = ReplyObserver._framing_dropped

    def counted(self: ReplyObserver, data: bytes) -> bytes:
        read.append(len(data))
        return framing(self, data)

    monkeypatch.setattr(ReplyObserver, "_framing_dropped", counted)
    detectors = Detectors([DetectorSpec("email")], keep_max=4 * KEEP)
    observer, outcome = _observer(detectors)
    rng = random.Random(2)
    text = ("Grüße, bob@example.org\n" * 3000).encode("latin-1")
    for _ in range(KEEP // PIECE):
        observer.chunk(rng.randbytes(PIECE - 1) + b"\n")
    observer.chunk(text)
    assert read == []  # (kept)
    observer.finish()
    assert read and max(read) <= PIECE, max(read)
    assert outcome.output_detected == {"pii:email", TRUNCATED}
