"""A ModelStreamInfer whose request message's last bytes come in the DATA frame that ends the client's messages
(END_STREAM) is that message forwarded, answered and recorded, wherever the message is split. Once in ~130 runs of a
test on the raw client (`tests/servers/h2_hostile.py`) a stream sent so was answered as an empty stream (recorded OK,
nothing forwarded): the client wrote its final frame before the message's last chunk, which it had counted sent before
writing it, and grpc drops a message cut short by END_STREAM (`test_a_final_frame_goes_after_the_bytes_counted_sent`).
Driven on raw HTTP/2 frames: a small message whose final frame carries each of its tails (the whole of it, from any
byte of its length prefix or of the message, or none of it: an empty frame), and messages of 40 KiB (under a call's
window) and 512 KiB (over it) whose final frame carries their last bytes, up to a whole frame; with each stream's read
asked before its final frame comes, and asked only after (the arriving-bytes room full, `_Room`). Each stream is
forwarded to a grpc.aio upstream, answered with its reply and recorded OK with its model."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc_arriving_bounded import CONFIG, EACH, INFER, MESSAGE, STREAM_INFER, _request
from tests.ingress.test_grpc_too_large import Upstream
from tests.servers.h2_hostile import HostileClient
from tests.servers.otlp_receiver import OtlpReceiver


def _framed(message: bytes) -> bytes:
    """`message` as gRPC frames it: a flag (uncompressed), its length, the message."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


SMALL = _request(16)  # a ModelInferRequest of a few dozen bytes
FRAMED = _framed(SMALL)
FRAME = 16_384  # HTTP/2's initial SETTINGS_MAX_FRAME_SIZE: the most a final frame carries
# (message, the bytes its final frame carries): the small one's every tail (all of it ... none of it); the larger
# ones' last bytes
CASES = [(SMALL, len(FRAMED) - at) for at in range(len(FRAMED) + 1)] + [
    (message, kept) for message in (_request(40 * 1024), MESSAGE) for kept in (1, 2, 3, 100, FRAME - 1, FRAME)
]
BATCH = 16  # streams at once (limits.grpc_max_calls is 64 in CONFIG)
ROOM = {"asked-first": BATCH * 3 * EACH, "asked-after": EACH}  # limits.grpc_arriving_max_bytes


def _held_until(loop_thread: LoopThread, ingress: Any, condition: Callable[[Any], bool]) -> bool:
    """Whether `condition` of the ingress held within 10 s, read on its loop (between its steps)."""

    async def poll() -> bool:
        for _ in range(10_000):
            if condition(ingress):
                return True
            await asyncio.sleep(0.001)
        return False

    return bool(loop_thread.run(poll()))


def _start(client: HostileClient, cases: list[tuple[bytes, int]], first: int) -> tuple[list[int], list[str]]:
    """A ModelStreamInfer stream for each case, sending its message but the bytes its final frame carries (as flow
    control allows, on a thread of its own); the streams and their trace ids."""
    streams, ids = [], []
    for n, (message, kept) in enumerate(cases):
        trace_id, parent = traced(first + n, 0xA241_0000)
        stream = client.open(STREAM_INFER, ("traceparent", parent.encode()))
        if kept > len(message):  # (a final frame carrying part of the length prefix: the rest goes first, whole)
            client.data(stream, _framed(message)[: len(message) + 5 - kept])
        else:
            client.push(stream, message, kept)
        streams.append(stream)
        ids.append(trace_id)
    return streams, ids


Sent = list[tuple[int, tuple[bytes, int]]]  # streams, each with its case


def _end(client: HostileClient, sent: Sent) -> None:
    """Each stream's final frame, once it has sent the rest of its message: its message's last bytes, with END_STREAM
    (in turn: with room for one read, a stream's read ends before the next's is asked, and its window opened)."""
    for stream, (message, kept) in sent:
        assert client.wait(lambda s=stream, m=message, k=kept: client.pushed(s, m, k), 20.0), client.sent
        client.data(stream, _framed(message)[len(message) + 5 - kept :], True)


def _answered(
    client: HostileClient, otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture, streams: list[int], ids: list[str],
    cases: list[tuple[bytes, int]],
) -> None:  # fmt: skip
    """Each stream ended with its reply (the upstream's empty message, 5 bytes framed) and was recorded OK, its message
    read (its model named)."""
    assert client.wait_ended(streams, 20.0), f"ended: {client.ended} of {streams}"
    said = [
        (len(message), kept)
        for stream, (message, kept) in zip(streams, cases, strict=True)
        if client.replied.get(stream) != 5
    ]
    assert not said, f"streams (message size, bytes in its final frame) answered with no reply: {said}"
    for trace_id, (message, kept) in zip(ids, cases, strict=True):
        span, line = recorded(otlp, caplog, trace_id)
        assert line.status == 0 and "error.type" not in span.attributes, (len(message), kept, span.status_message)
        assert span.attributes.get("gen_ai.request.model") == "simple", (len(message), kept, span.attributes)


@pytest.mark.parametrize("room", ROOM)
def test_a_message_ended_in_its_last_frame_is_forwarded_wherever_it_is_split(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, caplog: pytest.LogCaptureFixture, room: str
) -> None:
    """asked-first: room for every stream's read, each asked as its stream starts (its handler running), before its
    final frame comes. asked-after: room for one read, held by a ModelInfer that holds back its message's last byte:
    each stream sends all its window lets it (a message under it whole, with its final frame: a PING answered after
    them says the listener has them) before its read is asked, in its turn, once the held call ends; a message over the
    window then goes on, its final frame after."""
    caplog.set_level(logging.INFO, logger=ACCESS)
    upstream = Upstream()
    config = CONFIG.replace(f"grpc_arriving_max_bytes: {2 * EACH}", f"grpc_arriving_max_bytes: {ROOM[room]}")
    with proxied(loop_thread, otlp, make_proxy, config, upstream) as proxy:
        ingress = proxy.process._grpc
        port = int(proxy.grpc.rsplit(":", 1)[1])
        client, holder = HostileClient(port), HostileClient(port)
        try:
            for at in range(0, len(CASES), BATCH):
                cases = CASES[at : at + BATCH]
                if room == "asked-after":
                    held = holder.open(INFER)
                    holder.push(held, MESSAGE)
                    assert holder.wait(lambda h=held: holder.pushed(h, MESSAGE), 10.0), holder.sent
                streams, ids = _start(client, cases, at)
                calls = len(cases) + (room == "asked-after")  # (and the held call)
                assert _held_until(loop_thread, ingress, lambda i, n=calls: i.calls == n)
                sent = list(zip(streams, cases, strict=True))
                if room == "asked-first":
                    _end(client, sent)
                else:
                    # a message under a call's window, and its final frame, come before its read is asked
                    _end(client, [(s, case) for s, case in sent if len(case[0]) < client.initial_window])
                    client.ping()  # the listener has read every frame sent before it
                    # every stream's handler waits for room: no read asked for any of them yet
                    waiting = len(cases)
                    assert _held_until(loop_thread, ingress, lambda i, n=waiting: len(i.room.waiting) == n)
                    holder.finish(held, MESSAGE)
                    _end(client, [(s, case) for s, case in sent if len(case[0]) >= client.initial_window])
                    assert holder.wait_ended([held], 20.0), holder.ended
                _answered(client, otlp, caplog, streams, ids, cases)
                assert _held_until(loop_thread, ingress, lambda i: i.calls == 0), ingress.calls
            batches = (len(CASES) + BATCH - 1) // BATCH
            assert upstream.messages == len(CASES) + (batches if room == "asked-after" else 0)  # (and each held call)
        finally:
            client.close()
            holder.close()


class _HeldWrite:
    """The raw client's write lock, holding its push thread's first write (`HostileClient._message`) back until `go`:
    its window taken, not yet on the wire (`entered` says when it got there)."""

    def __init__(self, lock: Any) -> None:
        self._lock = lock
        self.entered, self.go = threading.Event(), threading.Event()
        self._held = False

    def __enter__(self) -> Any:
        if not self._held and "_message" in threading.current_thread().name:  # (a thread's name ends with its target's)
            self._held = True
            self.entered.set()
            assert self.go.wait(10), "never let go"
        return self._lock.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._lock.__exit__(*exc)


def test_a_final_frame_goes_after_the_bytes_counted_sent(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The flake this module chased was the raw client's: it counted a DATA frame sent (`pushed`) as it took its window,
    before writing it, so a test that then sent the final frame (`finish`) could write it first. The message was cut
    short at END_STREAM, which grpc drops (`test_a_message_cut_short_by_the_end_of_the_stream_is_not_forwarded`): the
    stream was read as one with no message and answered OK, empty. Counted once written, a message whose head's write
    is held back is not yet `pushed`, and the final frame sent once it is goes after it."""
    caplog.set_level(logging.INFO, logger=ACCESS)
    upstream = Upstream()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy:
        client = HostileClient(int(proxy.grpc.rsplit(":", 1)[1]))
        try:
            trace_id, parent = traced(0, 0xA243_0000)
            stream = client.open(STREAM_INFER, ("traceparent", parent.encode()))
            held = _HeldWrite(client._send)
            client._send = held  # type: ignore[assignment]
            client.push(stream, SMALL)
            assert held.entered.wait(10), "the push thread wrote nothing"
            assert not client.pushed(stream, SMALL), client.sent  # its window taken, its bytes not written
            held.go.set()
            assert client.wait(lambda: client.pushed(stream, SMALL), 10.0), client.sent
            client.finish(stream, SMALL)
            _answered(client, otlp, caplog, [stream], [trace_id], [(SMALL, 1)])
            assert upstream.messages == 1
        finally:
            client.close()


def test_a_message_cut_short_by_the_end_of_the_stream_is_not_forwarded(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that ends its messages (END_STREAM) in the middle of one: grpc drops the bytes of a message that
    cannot be whole (chttp2's `maybe_complete_recv_message`) and reads the stream as ended, so the proxy sees what a
    stream ended with no message is (README, gRPC). Nothing of it reaches the upstream, and each stream is recorded
    (no model named: none was read) and answered with its status: a ModelStreamInfer OK, a ModelInfer
    INVALID_ARGUMENT, `invalid_request`. A stream's later message cut so ends the stream after the messages before
    it: they are forwarded, answered and recorded, it is not."""
    caplog.set_level(logging.INFO, logger=ACCESS)
    upstream = Upstream()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy:
        client = HostileClient(int(proxy.grpc.rsplit(":", 1)[1]))
        try:
            cuts = [1, 4, 5, 6, len(FRAMED) - 1]  # in its length prefix, just after it, in the message, its last byte
            calls = [(method, cut) for method in (STREAM_INFER, INFER) for cut in cuts]
            traces = [traced(n, 0xA244_0000) for n in range(len(calls))]
            streams = [client.open(method, ("traceparent", parent.encode())) for (method, _), (_, parent) in
                       zip(calls, traces, strict=True)]  # fmt: skip
            for stream, (_, cut) in zip(streams, calls, strict=True):
                client.data(stream, FRAMED[:cut], end=True)
            assert client.wait_ended(streams, 20.0), client.ended
            for stream, (method, cut), (trace_id, _) in zip(streams, calls, traces, strict=True):
                span, line = recorded(otlp, caplog, trace_id)
                assert "gen_ai.request.model" not in span.attributes, (method, cut, span.attributes)
                if method == STREAM_INFER:
                    assert line.status == 0 and not client.replied.get(stream), (cut, line.status)
                else:
                    assert span.attributes["error.type"] == "invalid_request", (cut, span.attributes)
            assert upstream.messages == 0
            later = [client.open(STREAM_INFER, ("traceparent", traced(len(calls) + n, 0xA244_0000)[1].encode()))
                     for n in range(len(cuts))]  # fmt: skip
            for stream, cut in zip(later, cuts, strict=True):
                client.data(stream, FRAMED)
                client.data(stream, FRAMED[:cut], end=True)
            ids = [traced(len(calls) + n, 0xA244_0000)[0] for n in range(len(cuts))]
            _answered(client, otlp, caplog, later, ids, [(SMALL, len(FRAMED))] * len(cuts))  # (its first message's)
            assert upstream.messages == len(cuts)
        finally:
            client.close()
