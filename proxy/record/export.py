"""Span export off the hot path: a bounded queue drained by one thread into any SpanExporter.

`submit` never blocks and never waits for the network. When the queue is full (the collector is slow
or down) spans are dropped and counted; an export failure is logged once per outage, not per span.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = logging.getLogger("lineage_proxy.export")


class BoundedExporter:
    """When to export (batches, bounded queue, drops) apart from where (the wrapped SpanExporter)."""

    def __init__(
        self, exporter: SpanExporter, *, max_queue: int = 4096, batch_size: int = 512, interval_s: float = 0.5
    ) -> None:
        self._exporter = exporter
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stopping = False
        self._outage = False
        self.dropped = 0  # spans refused because the queue was full
        self.failed = 0  # spans the exporter could not deliver
        self.exported = 0
        self._thread = threading.Thread(target=self._run, name="span-export", daemon=True)
        self._thread.start()

    def submit(self, span: ReadableSpan) -> None:
        if len(self._queue) >= self._max_queue:
            self.dropped += 1
            return
        self._queue.append(span)
        if len(self._queue) == self._batch_size:
            self._wake.set()

    def _take(self) -> list[ReadableSpan]:
        batch: list[ReadableSpan] = []
        queue = self._queue
        while queue and len(batch) < self._batch_size:
            batch.append(queue.popleft())
        return batch

    def _export(self, batch: Sequence[ReadableSpan]) -> None:
        try:
            result = self._exporter.export(batch)
        except Exception as exc:  # an exporter bug must not kill the thread
            result = SpanExportResult.FAILURE
            log.debug("span exporter raised: %r", exc)
        if result is SpanExportResult.SUCCESS:
            self.exported += len(batch)
            if self._outage:
                self._outage = False
                log.warning("span export recovered; %d spans were lost during the outage", self.failed + self.dropped)
            return
        self.failed += len(batch)
        if not self._outage:
            self._outage = True
            log.error("span export failed (collector down or slow?); dropping spans until it recovers")

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            while self._queue:
                self._export(self._take())
                if self._stopping:
                    break

    def force_flush(self, timeout_s: float = 5.0) -> None:
        """Export what is queued now (tests, shutdown); bounded by the exporter's own timeout."""
        while self._queue:
            self._export(self._take())

    def shutdown(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self.force_flush(timeout_s)
        self._exporter.shutdown()
