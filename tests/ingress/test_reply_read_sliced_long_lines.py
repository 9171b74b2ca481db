"""What stayed in one loop turn of a large reply read a slice a turn (`SseObserver.more`): a line longer than a slice,
read to its end in one (64 MB without a line end, until 2026-12-05), and a kept reply that is no JSON by its first bytes,
its pieces joined and all of it checked by orjson (UTF-8) before it was read so. Now a slice of such a line at a time, as
a piece of a line streamed is, and a kept reply's pieces read as they came; what is found is what was."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from proxy.flow import Outcome
from proxy.protocols import ends_early
from proxy.protocols.openai import ReplyObserver
from proxy.protocols.sse import MAX_LINE
from tests.harness import LoopThread
from tests.ingress.test_compressed_replies_read import BODY, CONFIG
from tests.ingress.test_reply_whole_read_sliced import PIECE, _counted, _event, _observer, _peak, slices_turned
from tests.servers.raw_origin import proxy_in_front, request_body

MIB = 1 << 20


def _long_line(line_end: bytes) -> bytes:
    """An event stream whose comment line is 2 MiB long, an event holding an address after it."""
    events = _event("filler") * 10 + b": " + b"y" * (2 * MIB) + b"\n\n" + _event("write to bob@example.org")
    return (events + _event("", "stop") + b"data: [DONE]\n\n").replace(b"\n", line_end)


@pytest.mark.interpreted  # (counts what a compiled module calls directly)
@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("kept", [False, True])
def test_a_line_longer_than_a_slice_is_read_a_slice_at_a_time(
    monkeypatch: pytest.MonkeyPatch, line_end: bytes, kept: bool
) -> None:
    stream = _long_line(line_end)
    expected, expected_outcome = _observer("text/event-stream")
    expected.chunk(stream)  # (read in one call: as streamed)
    expected.finish()
    read = _counted(monkeypatch)
    observer, outcome = _observer("application/json" if kept else "text/plain")
    if kept:
        data = b"{}" + line_end + stream  # (begun as JSON does: kept, read at its end)
        for at in range(0, len(data), PIECE):
            observer.chunk(data[at : at + PIECE])
        read.clear()
        assert observer.ending() is True
        while observer.more():
            pass
        assert observer.unfinished() is False
    else:
        data = stream
        observer.body(data)
        while observer.more():
            pass
    observer.finish()
    assert max(read) <= PIECE, max(read)  # before: the 2 MiB line in one read
    assert sum(read) == len(data)
    expected_found = expected_outcome.output_detected | ({TRUNCATED} if kept else set())  # (`{}` no field)
    assert outcome.output_detected == expected_found, outcome.output_detected
    assert "pii:email" in outcome.output_detected
    assert outcome.finish_reasons == expected_outcome.finish_reasons == ("stop",)
    assert outcome.error_type == expected_outcome.error_type


@pytest.mark.interpreted  # (patches `_late_read`, which compiled `chunk` and `_give_up` call directly)
def test_a_line_without_an_end_is_read_a_slice_at_a_time_past_where_the_reply_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past `MAX_LINE` the reply is no longer read (`_give_up`), the rest looked at as the openai SDK decodes it: a
    slice at a time too (before 2026-12-05 all of it in one, decoded and copied whole)."""
    lengths: list[int] = []
    late = ReplyObserver._late_read

    def counted(self: ReplyObserver, data: bytes, last: bool = False) -> None:
        lengths.append(len(data))
        late(self, data, last)

    monkeypatch.setattr(ReplyObserver, "_late_read", counted)
    observer, outcome = _observer("text/plain")
    observer.json_every_event = True
    observer.body(b"data: " + b"x" * (20 * MIB))
    while observer.more():
        pass
    observer.finish()
    assert lengths and max(lengths) <= PIECE, max(lengths)  # before: one of 20 MiB
    assert outcome.output_detected == {TRUNCATED}


@pytest.mark.interpreted  # (counts what a compiled module calls directly)
@pytest.mark.parametrize("kept", [False, True])
@pytest.mark.parametrize("after", [b"x", b"{", b"{\xff", b'{"a": 1}\n'])
def test_a_large_reply_no_json_by_its_first_bytes_is_not_checked_whole_nor_joined(
    monkeypatch: pytest.MonkeyPatch, kept: bool, after: bytes
) -> None:
    """orjson checks all of a text's UTF-8 before it parses (64 MB 0.15 s in one loop turn), and a kept reply's pieces
    were joined (0.08 s) before its first bytes told it no JSON: now they are asked first, and it is read from its
    pieces. Read as before (the address past its first slices found)."""
    body = after + (b"lorem ipsum " * 40 + b"\n") * (3 * MIB // 481) + b"data: bob@example.org\n"
    parsed: list[int] = []
    loads = orjson.loads

    def counted(data: Any) -> Any:
        parsed.append(len(data))
        return loads(data)

    monkeypatch.setattr(orjson, "loads", counted)
    observer, outcome = _observer("application/json")
    if kept:
        for at in range(0, len(body), PIECE):
            observer.chunk(body[at : at + PIECE])  # (kept when it begins so: else read as it comes)
        peak = _peak(lambda: (observer.ending(), observer._drain()))
        assert peak < MIB, peak  # before: its pieces joined, 3 MiB
    else:
        observer.body(body)
        observer._drain()
    observer.finish()
    assert not parsed or max(parsed) <= PIECE, max(parsed)  # before: the whole, 3 MiB
    assert outcome.output_detected == {TRUNCATED}  # (a `data:` line no JSON: not read, as before)


# a chunked JSON reply that is none (begun `{`: kept whole, read at its end), a line of 2 MiB without an end in it
KEPT_LINE = b"{" + b"lorem ipsum " * (2 * MIB // 12) + b"\n\n" + _event("write to bob@example.org")


async def _answer_chunked(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    rng = random.Random(7)
    at = 0
    while at < len(KEPT_LINE):
        piece = KEPT_LINE[at : at + rng.choice((1000, 7000, PIECE, 3 * PIECE))]
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        await writer.drain()
        at += len(piece)
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


@pytest.mark.interpreted  # (patches what a compiled module calls directly)
def test_a_kept_reply_s_line_without_an_end_is_read_a_slice_a_loop_turn(
    make_proxy: Any, loop_thread: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    turned, read = slices_turned(monkeypatch, at_end=True)
    with proxy_in_front(loop_thread, make_proxy, CONFIG, _answer_chunked) as proxy:
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=BODY, timeout=30)
        assert reply.status_code == 200 and reply.content == KEPT_LINE
        assert sum(read) == len(KEPT_LINE)
    assert max(read) <= PIECE, max(read)  # before: the 2 MiB line in one read
    assert len(turned) >= 30, len(turned)
    assert all(turned), turned  # before: the line's slice and those after it in one turn


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32-le"])
def test_a_large_wide_reply_no_json_by_its_first_characters_is_not_decoded_whole_to_say_it_is_not_cut(
    encoding: str,
) -> None:
    """A kept reply in UTF-16 or UTF-32 (or one whose type names such a charset) that no reader read as JSON is asked
    whether it is JSON cut (`ends_early`): it was decoded and encoded as UTF-8 whole before its first characters were
    looked at (16 MiB of UTF-16 text 43 ms in one loop turn, until 2026-12-05). A cut one is still said to be."""
    text = "hello bob@example.org caf\u00e9 \U0001f600\n" * 200_000
    data = text.encode(encoding, "surrogatepass")
    peak = _peak(lambda: assert_not_cut(data))
    assert peak < 2 * MIB, peak  # before: the whole decoded and encoded, 46 MB
    cut = orjson.dumps({"a": text}).decode().encode(encoding, "surrogatepass")[: -len("a\n".encode(encoding)) - 8]
    assert ends_early(cut) is True


def assert_not_cut(data: bytes) -> None:
    assert ends_early(data) is False


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("kept", [0, PIECE, 5 * MIB])
def test_a_whole_reply_s_line_past_max_line_that_ends_is_read_as_before(line_end: bytes, kept: int) -> None:
    """A whole reply (or one kept whole: `buffer_max_bytes` above 16 MiB) holds its lines whole: one past `MAX_LINE`
    that ends is read, as it was when a line longer than a slice was read to its end. Sliced, its piece past `MAX_LINE`
    ended the reading (`_give_up`): its address and the finish reason after it not on the record (0325842, until
    2026-12-05). In pieces that came apart (`kept`: their size) too. A line past it without an end is still not read."""
    big = _event("write to bob@example.org " + "x" * (MAX_LINE + MIB))
    stream = (_event("hi") + big + _event("", "stop") + b"data: [DONE]\n\n").replace(b"\n", line_end)
    expected, expected_outcome = _observer("text/event-stream")
    expected.chunk(stream)  # (read in one call: its lines whole)
    expected.finish()
    assert "pii:email" in expected_outcome.output_detected
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, Detectors([DetectorSpec("email")], keep_max=66 * MIB), True)
    observer.head(200, {"content-type": "application/json" if kept else "text/plain"}.get)
    if kept:
        data = b"{" + line_end + stream  # (begun as JSON does: kept, read at its end)
        for at in range(0, len(data), kept):
            observer.chunk(data[at : at + kept])
        observer.ending()
        while observer.more():
            pass
        assert observer.unfinished() is False
    else:
        observer.body(stream)
        while observer.more():
            pass
    observer.finish()
    assert outcome.finish_reasons == expected_outcome.finish_reasons == ("stop",)  # before: ()
    expected_found = expected_outcome.output_detected | ({TRUNCATED} if kept else set())  # (`{` no field)
    assert outcome.output_detected == expected_found  # before: `scan:truncated` alone
    assert outcome.error_type == expected_outcome.error_type
