"""`Replacing` (a span exporter a reload replaced, kept beside its successor for the calls in flight): its flush and
stop reach the successor too when the replaced one's raise, where a plain sequence of awaits left the successor's
export thread running and its spans unflushed past the proxy's stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import pytest

from proxy.config.model import Telemetry
from proxy.record.export import BATCH_SPANS
from proxy.record.sinks import Replacing
from proxy.record.spans import SpanRecorder
from tests.record.test_export import span
from tests.servers.otlp_receiver import OtlpReceiver


class Sink:
    name = "spans"
    durable = False

    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.done: list[str] = []

    def start(self) -> None:
        pass

    def on_end(self, *_: object) -> None:
        return None

    async def flush(self) -> None:
        self.done.append("flush")
        if self.fails:
            raise OSError("replaced one's failed")

    async def stop(self) -> None:
        self.done.append("stop")
        if self.fails:
            raise OSError("replaced one's failed")

    def metrics(self) -> Iterable[str]:
        return ()


def test_the_successor_is_flushed_and_stopped_when_the_replaced_ones_raise() -> None:
    replaced, successor = Sink(fails=True), Sink()
    replacing = Replacing(replaced, successor, 0, 1, lambda _: None)  # type: ignore[arg-type]
    for step in (replacing.flush, replacing.stop):
        with pytest.raises(OSError):
            asyncio.run(step())
    assert replaced.done == successor.done == ["flush", "stop"]


def test_its_stop_takes_the_slower_exporter_s_bound_not_their_sum() -> None:
    """Both collectors stalled as the proxy stops in a hand-over: each exporter's stop waits up to its
    `export_timeout_s` (2 s here) for its export in flight, then counts and says its spans. The fan-out waits for a sink
    as long as its `stop_bound_s` (and 5 s to spare, `FanOut.stop_retired`): the slower exporter's. Review revrec13:
    the two stops ran one after the other; the new exporter's first batch, sent a second before the stop, failed as the
    replaced one's stop ran, and its next went out then, which its own stop, begun after the other's, waited 2 s for: 3 s
    in all (with the default 5 s a stop, past what the fan-out waited: the process ended with those spans unsaid)."""
    receivers = [OtlpReceiver(hang=True), OtlpReceiver(hang=True)]
    for receiver in receivers:
        receiver.start()
    try:
        recorders = [SpanRecorder(Telemetry(exporter="otlp", endpoint=f"http://127.0.0.1:{receiver.port}",
                                            export_timeout_s=2.0)) for receiver in receivers]  # fmt: skip
        for n in range(BATCH_SPANS + 1):  # a full batch sent at once, and one more span once it has failed
            recorders[1].queue.submit(span(n))
        recorders[0].queue.submit(span(0))
        time.sleep(1.0)  # the phase, not a wait for anything: the new exporter's batch half through its 2 s
        replacing = Replacing(recorders[0], recorders[1], 0, 1, lambda _: None)  # type: ignore[arg-type]
        assert replacing.stop_bound_s == 2.0
        began = time.monotonic()
        asyncio.run(replacing.stop())
        took = time.monotonic() - began
        assert took < replacing.stop_bound_s + 0.8, took  # (one after the other: 3.0 s; the slack for a loaded machine)
        assert [r.queue.failed + r.queue.dropped for r in recorders] == [1, BATCH_SPANS + 1]  # each counted
    finally:
        for receiver in receivers:
            receiver.stop()
