"""A whole reply that is no JSON object is read as an event stream (`SseObserver.body`), as is a reply kept whole that
began as JSON does and is none (`_read_kept`): before 2026-12-05 in one `chunk` call over all of it, 15 MiB of a binary
`text/plain` reply holding the event loop 0.7 s in the framing's substitutions. It is read `_PIECE` bytes at a time,
each slice ending at a line end, and finds what the whole found (an address across a slice's edge too)."""

from __future__ import annotations

import asyncio
import random
import socket
import tracemalloc
from typing import Any

import httpx
import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from proxy.flow import Outcome
from proxy.protocols import ends_early
from proxy.protocols.openai import ReplyObserver
from tests.harness import LoopThread
from tests.held import until
from tests.ingress.test_compressed_replies_read import BODY, CONFIG
from tests.servers.raw_origin import proxy_in_front, request_body

PIECE = 64 << 10


def _observer(kind: str) -> tuple[ReplyObserver, Outcome]:
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, Detectors([DetectorSpec("email")]), True)
    observer.head(200, {"content-type": kind}.get)
    return observer, outcome


def _counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    read: list[int] = []
    chunk = ReplyObserver.chunk

    def counted(self: ReplyObserver, data: bytes) -> None:
        read.append(len(data))
        chunk(self, data)

    monkeypatch.setattr(ReplyObserver, "chunk", counted)
    return read


@pytest.mark.interpreted  # (counts what a compiled module calls directly)
def test_a_sized_reply_that_is_no_json_is_read_a_slice_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    read = _counted(monkeypatch)
    observer, outcome = _observer("text/plain")
    body = random.Random(3).randbytes(1 << 20)
    observer.body(body)
    observer.finish()
    assert len(read) > 1 and max(read) <= PIECE, (len(read), max(read))  # before: one read of 1 MiB
    assert sum(read) == len(body)
    assert TRUNCATED in outcome.output_detected


@pytest.mark.interpreted  # (counts what a compiled module calls directly)
def test_a_kept_reply_that_begins_as_json_and_is_none_is_read_a_slice_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    observer, outcome = _observer("application/json")
    rng = random.Random(4)
    pieces = [b"{" + rng.randbytes(PIECE - 1)] + [rng.randbytes(PIECE) for _ in range(15)]
    for piece in pieces:
        observer.chunk(piece)  # (kept: its end may make it JSON)
    read = _counted(monkeypatch)
    assert observer.unfinished() is False
    observer.finish()
    assert len(read) > 1 and max(read) <= PIECE, (len(read), max(read))  # before: one read of 1 MiB
    assert sum(read) == sum(map(len, pieces))
    assert TRUNCATED in outcome.output_detected


def slices_turned(monkeypatch: pytest.MonkeyPatch, at_end: bool = False) -> tuple[list[bool], list[int]]:
    """`ReplyObserver.chunk` watched: for each slice after the first, whether the loop turned since the one before (a
    callback the loop runs once it turns sets its mark), and each slice's length. `at_end`: only the slices a kept
    reply is read in at its end, not the pieces kept as they passed."""
    turned: list[bool] = []
    read: list[int] = []
    chunk = ReplyObserver.chunk
    marks: list[list[bool]] = []

    def counted(self: ReplyObserver, data: bytes) -> None:
        if not at_end or (self._kept is None and not self._sniff):
            if marks:
                turned.append(marks[-1][0])
            marks.append([False])
            asyncio.get_running_loop().call_soon(marks[-1].__setitem__, 0, True)
            read.append(len(data))
        chunk(self, data)

    monkeypatch.setattr(ReplyObserver, "chunk", counted)
    return turned, read


def _peak(read: Any) -> int:
    """The most Python memory `read()` held at once beyond what it began with."""
    tracemalloc.start()
    try:
        begun = tracemalloc.get_traced_memory()[0]
        read()
        return tracemalloc.get_traced_memory()[1] - begun
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kept", [False, True])
@pytest.mark.parametrize("after", [b"", b"{", b'{"a": ', b"  \n{"])
def test_a_large_reply_that_is_no_json_from_its_first_bytes_is_not_decoded_whole(kept: bool, after: bytes) -> None:
    """Its first JSON reading (after orjson refused it) decoded all of it, each byte no UTF-8 a U+FFFD, and read it
    as a kept reply cut (`ends_early`) so again: 15 MB of binary 0.13 s, kept 0.45 s, in one loop turn (until
    2026-12-05); now its first 64 KiB tell that it is none (`_fails_early`), as the whole would have. Read as before."""
    observer, outcome = _observer("application/json")
    body = after + random.Random(6).randbytes(4 << 20)
    body = body if body[len(after)] not in b" \t\r\n" else after + b"x" + body[len(after) + 1 :]
    if kept:
        for at in range(0, len(body), PIECE):
            observer.chunk(body[at : at + PIECE])  # (kept only when it begins so: else read as it comes)
        peak = _peak(observer.finish)
    else:
        peak = _peak(lambda: observer.body(body))
        observer.finish()
    # (kept: its pieces joined once, as before) before: 8-16 MiB more, the whole decoded (2 bytes a U+FFFD) and encoded
    assert peak < (len(body) if kept else 0) + (2 << 20), peak
    assert TRUNCATED in outcome.output_detected


@pytest.mark.parametrize("kept", [False, True])
def test_a_large_reply_whose_first_bytes_are_json_is_read_whole_as_before(kept: bool) -> None:
    """JSON for more than its first 64 KiB (its strings Latin-1, no UTF-8): read whole, as its client's `json` reads it
    (each such byte U+FFFD: `scan:truncated`), the address in it found; and one whose JSON breaks off past them is none
    (read as an event stream), or cut (kept: `unfinished`)."""
    reply = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "caf\u00e9 " * 20_000 + "bob@x.org"}}]
    }
    body = orjson.dumps(reply).replace("\u00e9".encode(), b"\xe9")
    for cut in (False, True):
        observer, outcome = _observer("application/json")
        data = body[: len(body) // 2] if cut else body
        if kept:
            for at in range(0, len(data), PIECE):
                observer.chunk(data[at : at + PIECE])
            assert observer.unfinished() is cut
        else:
            observer.body(data)
        observer.finish()
        if cut:
            assert TRUNCATED in outcome.output_detected and "pii:email" not in outcome.output_detected
        else:
            assert outcome.output_detected == {"pii:email", TRUNCATED}, outcome.output_detected


@pytest.mark.parametrize("cut", [False, True])
def test_a_kept_reply_whose_long_number_crosses_its_first_64_kib_is_told_cut_as_the_whole_is(cut: bool) -> None:
    """orjson says a number of more digits than a double holds is infinity, where it begins: its first 64 KiB alone
    (`_fails_early`), which end within 2,000 digits that an exponent past them makes finite, said no JSON far before
    their end, and a JSON reply so cut was read as an event stream, not cut (`unfinished` False, until 2026-12-05)."""
    content = "x" * (63 << 10) + " bob@x.org"
    number = b"1" + b"0" * 2000 + b"e-1995"  # (1e5: past a double's range where its digits are cut)
    reply = b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "%s"}}], "usage": {"n": %s}}'
    body = reply % (content.encode(), number)
    assert body.index(number) < PIECE < body.index(number) + 2000  # (the number's digits cross the first 64 KiB)
    data = body[:-2] if cut else body
    assert ends_early(data) is cut
    observer, outcome = _observer("application/json")
    for at in range(0, len(data), PIECE):
        observer.chunk(data[at : at + PIECE])
    assert observer.unfinished() is cut
    observer.finish()
    assert ("pii:email" in outcome.output_detected) is not cut, outcome.output_detected


def _event(content: str, reason: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": reason}
    return b"data: " + orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "choices": [choice]}) + b"\n\n"


def _stream(address_at: int, line_end: bytes) -> bytes:
    """An event stream whose event holding an address straddles `address_at` bytes (a slice's edge), its events'
    lines ended by `line_end`, and a `: comment` line longer than a slice before it."""
    head = (_event("filler text " * 8) * 200).replace(b"\n", line_end)
    comment = b": " + b"x" * (PIECE + 100) + line_end + line_end
    stream = head + comment
    held = _event("write to bob@example.org now").replace(b"\n", line_end)
    pad = address_at - len(stream) - held.index(b"example")
    stream += _event("p" * pad).replace(b"\n", line_end) if pad > 0 else b""
    return stream + held + _event("", "stop").replace(b"\n", line_end) + b"data: [DONE]" + line_end * 2


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("address_at", [2 * PIECE, 3 * PIECE + 7])
def test_a_reply_read_a_slice_at_a_time_finds_what_read_whole_did(line_end: bytes, address_at: int) -> None:
    stream = _stream(address_at, line_end)
    assert len(stream) > address_at > PIECE
    whole, whole_outcome = _observer("text/event-stream")
    whole.chunk(stream)  # (read in one call: as a sized reply was before)
    whole.finish()
    sliced, sliced_outcome = _observer("text/plain")
    sliced.body(stream)
    sliced.finish()
    assert sliced_outcome.output_detected == whole_outcome.output_detected == {"pii:email"}
    assert sliced_outcome.content == whole_outcome.content
    assert sliced_outcome.finish_reasons == whole_outcome.finish_reasons == ("stop",)


# an event stream sent sized as `text/plain` (read whole, no JSON object: an event stream), 1 MiB, an address near
# its end
SIZED_STREAM = _event("filler text") * ((1 << 20) // len(_event("filler text"))) + _event("write to bob@example.org")


async def _answer_sized(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(SIZED_STREAM))
    writer.write(SIZED_STREAM)
    await writer.drain()
    return True


@pytest.mark.interpreted  # (patches what a compiled module calls directly)
def test_a_sized_reply_read_as_an_event_stream_lets_the_loop_turn_between_its_slices(
    make_proxy: Any, loop_thread: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each slice in a loop turn of its own (`Exchange.more`): before 2026-12-05 the whole reply was read in one, what
    else the loop had to do (other calls, their replies) waiting behind it."""
    turned, _ = slices_turned(monkeypatch)
    with proxy_in_front(loop_thread, make_proxy, CONFIG, _answer_sized) as proxy:
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=BODY, timeout=30)
    assert reply.status_code == 200 and reply.content == SIZED_STREAM
    assert reply.headers["x-data-labels"] == "pii:email"  # (read to its end before its head was sent)
    assert len(turned) >= 10, len(turned)  # before: none (one read of 1 MiB)
    assert all(turned), turned


@pytest.mark.interpreted  # (patches what a compiled module calls directly)
def test_a_client_that_leaves_while_the_slices_are_read_leaves_the_rest_read_a_slice_a_loop_turn(
    make_proxy: Any, loop_thread: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its client gone (its FIN) at the third slice, the handler is cancelled at its wait for the next loop turn: before
    2026-12-05 (b6a1c75) `finish` then read every slice left in that turn (`SseObserver._drain`), the loop held as it
    was before; now they are read on a slice a loop turn before the call is recorded, whole."""
    turned: list[bool] = []
    read: list[int] = []
    chunk = ReplyObserver.chunk
    marks: list[list[bool]] = []
    client: list[socket.socket] = []

    def counted(self: ReplyObserver, data: bytes) -> None:
        if marks:
            turned.append(marks[-1][0])
        marks.append([False])
        asyncio.get_running_loop().call_soon(marks[-1].__setitem__, 0, True)
        read.append(len(data))
        if len(read) == 3:
            client[0].shutdown(socket.SHUT_WR)  # its FIN: the proxy hears it gone on a later turn
        chunk(self, data)

    monkeypatch.setattr(ReplyObserver, "chunk", counted)
    body = orjson.dumps(BODY)
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    request += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    with (
        proxy_in_front(loop_thread, make_proxy, CONFIG, _answer_sized) as proxy,
        socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock,
    ):
        client.append(sock)
        sock.sendall(request)
        assert sock.recv(65536) == b""  # it left before its reply: nothing sent to it
        assert until(lambda: not proxy.process._http.connections)
        # read whole, to its address near the end: the rest a slice a loop turn after its connection is gone, so waited
        # for before the proxy stops (under load the stop came first, 458,500 of 1,048,668 bytes read)
        assert until(lambda: sum(read) == len(SIZED_STREAM))
    assert len(turned) >= 10 and all(turned), turned  # before: the slices after the third in one turn


# a chunked JSON reply that is none (begun `{`: kept whole, to be read at its end), an event stream after its first line
KEPT_STREAM = b"{}\n" + SIZED_STREAM


async def _answer_chunked(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    for at in range(0, len(KEPT_STREAM), PIECE):
        piece = KEPT_STREAM[at : at + PIECE]
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


async def _answer_sized_kept(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(KEPT_STREAM))
    for at in range(0, len(KEPT_STREAM), PIECE):
        writer.write(KEPT_STREAM[at : at + PIECE])
        await writer.drain()
    return True


# a sized reply past `limits.buffer_max_bytes` is passed on as it arrives, kept whole as a chunked one is
SMALL_BUFFER = CONFIG.replace("detectors: [email]", "detectors: [email]\nlimits: {buffer_max_bytes: 65536}")


@pytest.mark.interpreted  # (patches what a compiled module calls directly)
@pytest.mark.parametrize("sized", [False, True])
def test_a_reply_kept_whole_that_is_no_json_is_read_a_slice_a_loop_turn_at_its_end(
    make_proxy: Any, loop_thread: LoopThread, monkeypatch: pytest.MonkeyPatch, sized: bool
) -> None:
    """Kept whole as it passed (it began as JSON does), read at its last chunk (`Exchange.ending`), or its last byte, sized
    (`Exchange.reads_on`): before 2026-12-05 all of it in that loop turn (`unfinished`), 15 MB of binary after a `{` 0.5
    s; now its slices a loop turn each, as a sized reply's read whole (`_read_on`), before the call is recorded."""
    turned, read = slices_turned(monkeypatch, at_end=True)
    config, answer = (SMALL_BUFFER, _answer_sized_kept) if sized else (CONFIG, _answer_chunked)
    with proxy_in_front(loop_thread, make_proxy, config, answer) as proxy:
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=BODY, timeout=30)
        assert reply.status_code == 200 and reply.content == KEPT_STREAM
        assert sum(read) == len(KEPT_STREAM)  # (read before its body ended: its last chunk waits for the record)
    assert len(turned) >= 10, len(turned)
    assert all(turned), turned  # before: none (every slice in the turn that read the last chunk)
