"""The OTLP exporters against real receivers: none loses a span to a collector's habits (idle
connections closed, 429/503 with Retry-After), and hosted-backend settings (headers, gzip) reach the wire."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from proxy.record.export import (
    BoundedExporter,
    ExportRefused,
    OtlpHttpSink,
    SinkOptions,
    retry_after,
    retrying,
)
from proxy.record.otlp import encode_resource, encode_scope, encode_span
from tests.servers.otlp_http_receiver import OtlpHttpReceiver

RESOURCE = encode_resource({"service.name": "test"})
SCOPE = encode_scope("lineage-proxy", "0")


def span(n: int) -> bytes:
    return encode_span(trace_id=n + 1, span_id=n + 1, parent_span_id=None, trace_state=None, name=f"s{n}", kind=2,
                       start_ns=1, end_ns=2, attributes={"n": n})  # fmt: skip


@pytest.fixture
def receiver() -> Iterator[OtlpHttpReceiver]:
    server = OtlpHttpReceiver()
    server.start()
    yield server
    server.stop()


def sink_for(receiver: OtlpHttpReceiver, **options: object) -> OtlpHttpSink:
    return OtlpHttpSink(f"http://127.0.0.1:{receiver.port}", 5.0, RESOURCE, SCOPE, SinkOptions(**options))  # type: ignore[arg-type]


def test_a_connection_the_collector_closed_while_idle_loses_no_span(receiver: OtlpHttpReceiver) -> None:
    """The benchmark's lost spans: batch 2 found the keep-alive connection closed (BrokenPipeError or a
    reset) and was dropped whole. Now it goes again on a fresh connection."""
    sink = sink_for(receiver)
    queue = BoundedExporter(sink, interval_s=3600.0)  # the test flushes; the thread sleeps
    try:
        for round_ in range(5):
            for n in range(10):
                queue.submit(span(round_ * 10 + n))
            queue.force_flush()
            receiver.wait_idle()
            assert receiver.close_idle() == 1  # the collector's idle timeout fires between batches
        spans = receiver.wait_for(lambda spans: len(spans) == 50)
        assert sorted(s.name for s in spans) == sorted(f"s{n}" for n in range(50))
        assert (queue.exported, queue.failed, queue.dropped) == (50, 0, 0)
        assert sink.stale_retries == 4  # the first batch opened its connection; the next four found it closed
    finally:
        queue.shutdown()


def test_a_fresh_connection_that_fails_is_not_retried_as_stale() -> None:
    """Only a *reused* connection is presumed stale; a backend that is down fails the batch at once."""
    from tests.harness import dead_port

    sink = OtlpHttpSink(f"http://127.0.0.1:{dead_port()}", 1.0, RESOURCE, SCOPE)
    with pytest.raises(ConnectionRefusedError):
        sink.send([span(0)])
    assert sink.stale_retries == 0


def test_retryable_refusals_are_retried_after_retry_after() -> None:
    receiver = OtlpHttpReceiver(refusals=[(503, "0"), (429, "0"), (502, None)])
    receiver.start()
    try:
        sink = sink_for(receiver)
        sink.send([span(1), span(2)])
        assert receiver.statuses == [503, 429, 502, 200]
        assert [s.name for s in receiver.spans] == ["s1", "s2"]
    finally:
        receiver.stop()


def test_a_final_refusal_is_not_retried() -> None:
    receiver = OtlpHttpReceiver(refusals=[(400, None)])
    receiver.start()
    try:
        with pytest.raises(ExportRefused) as refused:
            sink_for(receiver).send([span(1)])
        assert not refused.value.retryable and receiver.statuses == [400]
    finally:
        receiver.stop()


def test_retries_stay_within_the_export_timeout() -> None:
    """A Retry-After longer than what is left of the timeout ends the export instead of waiting."""
    waits: list[float] = []
    attempts = [0]

    def refuse() -> None:
        attempts[0] += 1
        raise ExportRefused("503", True, 1.0 if attempts[0] < 3 else 60.0)

    with pytest.raises(ExportRefused):
        retrying(refuse, 10.0, waits.append)
    assert waits == [1.0, 1.0] and attempts[0] == 3


def test_backoff_grows_when_the_backend_gives_no_retry_after() -> None:
    waits: list[float] = []
    attempts = [0]

    def refuse_twice() -> None:
        attempts[0] += 1
        if attempts[0] <= 3:
            raise ExportRefused("429", True)

    retrying(refuse_twice, 10.0, waits.append)
    assert len(waits) == 3 and 0.05 <= waits[0] <= 0.15 and 0.1 <= waits[1] <= 0.3 and 0.2 <= waits[2] <= 0.6


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after("7") == 7.0
    assert retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait


def test_headers_and_gzip_reach_a_backend_that_requires_them() -> None:
    receiver = OtlpHttpReceiver(require_header=("x-honeycomb-team", "k3y"))
    receiver.start()
    try:
        with pytest.raises(ExportRefused):  # without the key: 401, final
            sink_for(receiver).send([span(0)])
        sink = sink_for(receiver, headers=(("x-honeycomb-team", "k3y"),), compression="gzip")
        sink.send([span(1)])
        assert [s.name for s in receiver.spans] == ["s1"]
        assert receiver.requests[-1]["content-encoding"] == "gzip"
    finally:
        receiver.stop()


def test_a_signal_specific_endpoint_is_used_as_is(receiver: OtlpHttpReceiver) -> None:
    base = OtlpHttpSink(
        f"http://127.0.0.1:{receiver.port}/v1/traces", 5.0, RESOURCE, SCOPE, SinkOptions(exact_path=True)
    )
    base.send([span(3)])
    other = OtlpHttpSink(f"http://127.0.0.1:{receiver.port}/custom", 5.0, RESOURCE, SCOPE, SinkOptions(exact_path=True))
    with pytest.raises(ExportRefused):  # the receiver only serves /v1/traces: the path was not rewritten
        other.send([span(4)])
    assert receiver.statuses == [200, 404]


class _Batches:
    """A sink that keeps each batch's size. `during_first` runs inside its first send (spans that
    arrive while an export is in flight); `first_done` is set as that send returns."""

    def __init__(self, during_first: Callable[[], None] = lambda: None) -> None:
        self.sizes: list[int] = []
        self.changed = threading.Condition()
        self.first_done = threading.Event()
        self._during_first = during_first

    def send(self, batch: list[bytes]) -> None:
        with self.changed:
            self.sizes.append(len(batch))
            self.changed.notify_all()
        if len(self.sizes) == 1:
            self._during_first()
            self.first_done.set()

    def close(self) -> None:
        pass

    def wait_for(self, total: int) -> list[int]:
        with self.changed:
            assert self.changed.wait_for(lambda: sum(self.sizes) >= total, timeout=10), self.sizes
            return list(self.sizes)


def test_spans_that_arrive_during_an_export_wait_for_a_full_batch() -> None:
    """Under load, the export thread used to send whatever had come in while its last export was in
    flight, back to back: one benchmark run exported 4 spans a batch, at the cost of a full batch each.
    The spans queued during an export now wait for a full batch (or the interval, an hour here)."""
    queue: BoundedExporter
    sink = _Batches(during_first=lambda: [queue.submit(span(n)) for n in range(8, 11)])
    queue = BoundedExporter(sink, batch_size=8, interval_s=3600.0)
    try:
        for n in range(8):
            queue.submit(span(n))
        assert sink.first_done.wait(10)
        for n in range(11, 16):
            queue.submit(span(n))
        assert sink.wait_for(16) == [8, 8]  # it was [8, 3, 5]
        queue.submit(span(16))
        queue.force_flush()  # what is left goes on a flush (or when the interval passes)
        assert sink.sizes == [8, 8, 1] and queue.exported == 17
    finally:
        queue.shutdown()


def test_a_partial_batch_goes_when_the_interval_passes() -> None:
    sink = _Batches()
    queue = BoundedExporter(sink, batch_size=512, interval_s=0.05)
    try:
        for n in range(3):
            queue.submit(span(n))
        assert sink.wait_for(3) == [3]
    finally:
        queue.shutdown()


def test_a_flush_waits_for_the_export_in_flight() -> None:
    """A flush (shutdown, `sinks.flush()`) returns once every span queued before it is exported or counted
    lost, including a batch the export thread has taken and is still sending."""
    release = threading.Event()
    sink = _Batches(during_first=lambda: release.wait(10))
    queue = BoundedExporter(sink, batch_size=2, interval_s=3600.0)
    try:
        queue.submit(span(0))
        queue.submit(span(1))  # a full batch: the export thread takes it; its send holds until released
        sink.wait_for(2)
        flushed = threading.Event()
        flusher = threading.Thread(target=lambda: (queue.force_flush(), flushed.set()))
        flusher.start()
        assert not flushed.wait(0.2)  # it used to return at once: the queue was empty, the batch still in flight
        release.set()
        assert flushed.wait(10) and queue.exported == 2
        flusher.join()
    finally:
        release.set()
        queue.shutdown()
