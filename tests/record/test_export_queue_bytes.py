"""The span queue is bounded in bytes as well as in spans (`queue_size`): a span may be up to 1 MiB (a caller's model
name or stop sequences of that size, captured content), and while a collector is slow the default 4,096 of them
queued held 4 GiB. Past `QUEUE_BYTES` a span is dropped and counted, as past `queue_size`; taken, its bytes are room
again."""

from __future__ import annotations

import threading

from proxy.record.export import BoundedExporter

SPAN = b"s" * (1 << 20)  # a span as large as one goes uncut (`spans.SPAN_MAX_BYTES`)
QUEUED_MAX = 64 << 20


class _Hung:
    """A collector that takes the first batch and answers only when `answer` is set; keeps what it was sent."""

    def __init__(self) -> None:
        self.answer = threading.Event()
        self.sent: list[int] = []
        self.first = threading.Event()

    def send(self, batch: list[bytes]) -> None:
        self.sent.append(len(batch))
        self.first.set()
        assert self.answer.wait(10)

    def close(self) -> None:
        pass


def test_spans_queued_behind_a_slow_collector_are_bounded_in_bytes() -> None:
    sink = _Hung()
    queue = BoundedExporter(sink, batch_size=1, interval_s=3600.0)
    try:
        queue.submit(SPAN)  # fills a batch: taken and sent, and the collector holds it
        assert sink.first.wait(10)
        for _ in range(200):
            queue.submit(SPAN)
        queued = sum(len(span) for span in queue._queue)
        assert queued <= QUEUED_MAX, f"{queued >> 20} MiB of spans queued"
        assert queue.dropped == 200 - queued // len(SPAN)
    finally:
        sink.answer.set()
        queue.shutdown()


def test_what_is_taken_is_room_again() -> None:
    sink = _Hung()
    sink.answer.set()
    queue = BoundedExporter(sink, batch_size=64, interval_s=3600.0)
    try:
        for _ in range(3):  # three queues' worth, each sent before the next
            for _ in range(64):
                queue.submit(SPAN)
            queue.force_flush()
        assert queue.dropped == 0 and queue.exported == 3 * 64
    finally:
        queue.shutdown()
