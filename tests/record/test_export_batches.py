"""What a span export batch holds: up to `batch_size` spans (BATCH_SPANS by default), cut short before the span
that would take it past `batch_bytes` (a request over gRPC's default 4 MiB receive limit is refused whole), and
never more spans than the queue can hold (a batch that cannot fill would wait for the interval while spans drop)."""

from __future__ import annotations

import threading

from proxy.record.export import BATCH_BYTES, BATCH_SPANS, BoundedExporter
from proxy.record.otlp import encode_request


class _Sizes:
    """A sink that keeps each batch's span sizes; waits for a number of spans sent."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.requests: list[int] = []
        self.changed = threading.Condition()

    def send(self, batch: list[bytes]) -> None:
        request = len(encode_request(b"r", b"s", batch))
        with self.changed:
            self.batches.append([len(span) for span in batch])
            self.requests.append(request)
            self.changed.notify_all()

    def close(self) -> None:
        pass

    def wait_for(self, total: int) -> list[list[int]]:
        with self.changed:
            assert self.changed.wait_for(lambda: sum(map(len, self.batches)) >= total, timeout=10), self.batches
            return [list(batch) for batch in self.batches]


def test_a_batch_stops_before_the_span_that_would_pass_its_bytes_and_what_is_cut_goes_at_once() -> None:
    sink = _Sizes()
    queue = BoundedExporter(sink, batch_size=6, batch_bytes=2500, interval_s=3600.0)
    try:
        sizes = [1000, 1000, 1000, 4000, 10, 10]  # a span over the bound alone goes alone
        for size in sizes:
            queue.submit(b"x" * size)  # the sixth fills a batch: the export thread wakes
        # cut by bytes: the rest goes without waiting for another full batch or the interval (an hour)
        assert sink.wait_for(6) == [[1000, 1000], [1000], [4000], [10, 10]]
        assert queue.exported == 6
    finally:
        queue.shutdown()


def test_a_queue_smaller_than_a_batch_is_exported_when_full() -> None:
    sink = _Sizes()
    queue = BoundedExporter(sink, max_queue=3, batch_size=8, interval_s=3600.0)
    try:
        for _ in range(3):
            queue.submit(b"x")
        assert sink.wait_for(3) == [[1, 1, 1]]  # it waited for the interval, dropping what came meanwhile
        assert queue.dropped == 0
    finally:
        queue.shutdown()


def test_by_default_a_batch_is_bounded_by_its_spans_and_its_request_stays_under_4_mib() -> None:
    sink = _Sizes()
    queue = BoundedExporter(sink, max_queue=10_000, interval_s=3600.0)
    try:
        small, fit = BATCH_SPANS, BATCH_BYTES // 2000  # benchmark-sized spans; then spans with content
        for _ in range(small):
            queue.submit(b"s" * 1100)
        assert [len(batch) for batch in sink.wait_for(small)] == [BATCH_SPANS]
        for _ in range(BATCH_SPANS):
            queue.submit(b"c" * 2000)
        batches = sink.wait_for(small + BATCH_SPANS)[1:]
        assert [len(batch) for batch in batches] == [fit, BATCH_SPANS - fit]  # the rest at once: cut by bytes
        assert max(sink.requests) < 4 << 20
    finally:
        queue.shutdown()
