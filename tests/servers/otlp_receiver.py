"""A real OTLP/gRPC trace receiver, as Jaeger runs one on 4317: it decodes the
`opentelemetry-proto` ExportTraceServiceRequest messages and keeps the spans for assertions."""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


@dataclass
class ReceivedSpan:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int
    status_message: str
    events: list[tuple[str, dict[str, Any]]]
    start_ns: int
    end_ns: int


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, *, hang: bool = False) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._cond = threading.Condition()
        self._hang = threading.Event() if hang else None
        self._server: grpc.Server | None = None
        self.port = 0
        self.ports: list[int] = []

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any) -> Any:
        if self._hang is not None:
            self._hang.wait(30)
        with self._cond:
            self.requests += 1
            for resource_spans in request.resource_spans:
                resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append(
                            ReceivedSpan(
                                name=span.name,
                                kind=span.kind,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                attributes={kv.key: _value(kv.value) for kv in span.attributes},
                                resource=resource,
                                status_code=span.status.code,
                                status_message=span.status.message,
                                events=[
                                    (e.name, {kv.key: _value(kv.value) for kv in e.attributes}) for e in span.events
                                ],
                                start_ns=span.start_time_unix_nano,
                                end_ns=span.end_time_unix_nano,
                            )
                        )
            self._cond.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def start(self, *also: str) -> int:
        """Listen on a free port of 127.0.0.1, and on each of `also` (grpc's forms: `unix:/path`, `[::1]:0`), the port
        each got kept in `ports`; returns the first's."""
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.ports = [self._server.add_insecure_port(address) for address in also]
        self._server.start()
        return self.port

    def release(self) -> None:
        """A hanging receiver answers the exports it holds, and those to come."""
        if self._hang is not None:
            self._hang.set()

    def cut(self) -> None:
        """Shut at once: the exports it holds (hanging) are cut unanswered, and it answers no more."""
        if self._server is not None:
            self._server.stop(0)

    def stop(self) -> None:
        if self._hang is not None:
            self._hang.set()
        if self._server is not None:
            self._server.stop(0)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Block until `predicate(spans)` holds (or fail after `timeout`); returns the spans."""
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self.spans), timeout)
            assert ok, f"spans never satisfied the condition; got {[s.name for s in self.spans]}"
            return list(self.spans)

    def by_trace(self, trace_id: str, timeout: float = 10.0) -> ReceivedSpan:
        spans = self.wait_for(lambda spans: any(s.trace_id == trace_id for s in spans), timeout)
        return next(s for s in spans if s.trace_id == trace_id)
