"""Span export off the hot path: a bounded queue drained by one thread into a sink.

Spans arrive already encoded (see spans.py), so the thread does little but frame bytes and wait on
the network, with the GIL released. `submit` never blocks: when the queue is full (the collector is
slow or down) spans are dropped and counted; a failed export is logged once per outage, not per span.
"""

from __future__ import annotations

import collections
import http.client
import logging
import sys
import threading
import time
from typing import Protocol
from urllib.parse import urlsplit

from proxy.record.otlp import encode_request

log = logging.getLogger("lineage_proxy.export")

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class Sink(Protocol):
    """Where spans go. `send` raises on failure; it runs on the export thread only."""

    def send(self, batch: list[bytes]) -> None: ...

    def close(self) -> None: ...


class OtlpGrpcSink:
    """OTLP over gRPC (Jaeger and the Collector listen on 4317)."""

    def __init__(self, endpoint: str, timeout_s: float, resource: bytes, scope: bytes) -> None:
        import grpc

        parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        target = f"{parts.hostname}:{parts.port or 4317}"
        self._channel = (
            grpc.secure_channel(target, grpc.ssl_channel_credentials())
            if parts.scheme == "https"
            else grpc.insecure_channel(target)
        )
        self._export = self._channel.unary_unary(TRACE_EXPORT)
        self._timeout_s = timeout_s
        self._resource, self._scope = resource, scope

    def send(self, batch: list[bytes]) -> None:
        self._export(encode_request(self._resource, self._scope, batch), timeout=self._timeout_s)

    def close(self) -> None:
        self._channel.close()


class OtlpHttpSink:
    """OTLP over HTTP with protobuf bodies (Jaeger and the Collector listen on 4318, path /v1/traces)."""

    def __init__(self, endpoint: str, timeout_s: float, resource: bytes, scope: bytes) -> None:
        parts = urlsplit(endpoint)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 4318)
        path = parts.path.rstrip("/")
        self._path = path if path.endswith("/v1/traces") else path + "/v1/traces"
        self._timeout_s = timeout_s
        self._resource, self._scope = resource, scope
        self._conn: http.client.HTTPConnection | None = None

    def send(self, batch: list[bytes]) -> None:
        body = encode_request(self._resource, self._scope, batch)
        if self._conn is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = kind(self._host, self._port, timeout=self._timeout_s)
        try:
            self._conn.request("POST", self._path, body, {"Content-Type": "application/x-protobuf"})
            reply = self._conn.getresponse()
            reply.read()
        except Exception:
            self._conn.close()
            self._conn = None
            raise
        if not 200 <= reply.status < 300:
            raise ConnectionError(f"OTLP/HTTP export answered {reply.status}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class ConsoleSink:
    """One JSON line per span on stdout (items are encoded as JSON by the recorder)."""

    def send(self, batch: list[bytes]) -> None:
        sys.stdout.buffer.write(b"\n".join(batch) + b"\n")
        sys.stdout.flush()

    def close(self) -> None:
        pass


class BoundedExporter:
    """When to export (batches, bounded queue, drops) apart from where (the sink)."""

    def __init__(self, sink: Sink, *, max_queue: int = 4096, batch_size: int = 512, interval_s: float = 0.5) -> None:
        self._sink = sink
        self._queue: collections.deque[bytes] = collections.deque()
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stopping = False
        self._outage = False
        self._next_probe = 0.0
        self.dropped = 0  # spans refused because the queue was full
        self.failed = 0  # spans the sink could not deliver
        self.exported = 0
        self._thread = threading.Thread(target=self._run, name="span-export", daemon=True)
        self._thread.start()

    def accepting(self) -> bool:
        """Whether a new span is worth encoding. During an outage, one span per interval goes on as a
        probe for the collector's return; the others are counted as dropped before they cost anything."""
        if not self._outage:
            return True
        now = time.monotonic()
        if now >= self._next_probe:
            self._next_probe = now + self._interval_s
            return True
        self.dropped += 1
        return False

    def submit(self, span: bytes) -> None:
        if len(self._queue) >= self._max_queue:
            self.dropped += 1
            return
        self._queue.append(span)
        if len(self._queue) == self._batch_size:
            self._wake.set()

    def _take(self) -> list[bytes]:
        batch: list[bytes] = []
        queue = self._queue
        while queue and len(batch) < self._batch_size:
            batch.append(queue.popleft())
        return batch

    def _export(self, batch: list[bytes]) -> None:
        try:
            self._sink.send(batch)
        except Exception as exc:
            self.failed += len(batch)
            if not self._outage:
                self._outage = True
                log.error("span export failed (%s); dropping spans until the collector is back", _short(exc))
            return
        self.exported += len(batch)
        if self._outage:
            self._outage = False
            log.warning("span export recovered; %d spans were lost during the outage", self.failed + self.dropped)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            while self._queue and not self._stopping:
                self._export(self._take())

    def force_flush(self) -> None:
        """Export what is queued now (tests, shutdown); stops at the first failure, so a dead
        collector costs at most one sink timeout."""
        while self._queue:
            failed = self.failed
            self._export(self._take())
            if self.failed != failed:
                self.dropped += len(self._queue)
                self._queue.clear()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self.force_flush()
        self._sink.close()


def _short(exc: Exception) -> str:
    text = getattr(exc, "details", None)
    detail = text() if callable(text) else str(exc)
    return f"{type(exc).__name__}: {detail}"[:300]
