"""A real OTLP/HTTP trace receiver, as the Collector and Jaeger run one on 4318, with the habits of the
backends the proxy meets in production: it decodes `opentelemetry-proto` ExportTraceServiceRequest
bodies (gzip too), can require a header (an API key, as hosted backends do), can answer a scripted
series of refusals (429/503 with Retry-After), and closes idle keep-alive connections when told to, as
a Collector does after its idle timeout.
"""

from __future__ import annotations

import gzip
import http.server
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.servers.otlp_receiver import ReceivedSpan, _value


class OtlpHttpReceiver:
    """Keeps every span it accepted; `refusals` are answered first, one per request, in order."""

    def __init__(
        self,
        *,
        require_header: tuple[str, str] | None = None,
        refusals: list[tuple[int, str | None]] | None = None,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests: list[dict[str, str]] = []  # each request's headers, lower-cased names
        self.fields: list[list[tuple[str, str]]] = []  # each request's header fields as sent, one given twice twice
        self.paths: list[str] = []  # each request's target, its query included
        self.statuses: list[int] = []
        self.times: list[float] = []  # when each request was answered (the monotonic clock)
        self.refusals = list(refusals or [])
        self.require_header = require_header
        self._cond = threading.Condition()
        self._idle: set[socket.socket] = set()  # connections waiting for their next request
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real collector

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle_one_request(self) -> None:
                with receiver._cond:
                    receiver._idle.add(self.connection)
                    receiver._cond.notify_all()
                try:
                    super().handle_one_request()
                finally:
                    with receiver._cond:
                        receiver._idle.discard(self.connection)
                        receiver._cond.notify_all()

            def parse_request(self) -> bool:
                with receiver._cond:
                    receiver._idle.discard(self.connection)  # a request is being read: not idle
                return super().parse_request()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.fields.append(list(self.headers.items()))
                status, extra = receiver._answer(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for key, value in extra:
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/x-protobuf")
                payload = trace_service_pb2.ExportTraceServiceResponse().SerializeToString() if status == 200 else b""
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> int:
        self._thread.start()
        return self.port

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.close_idle()

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list[tuple[str, str]]]:
        lowered = {key.lower(): value for key, value in headers.items()}
        with self._cond:
            self.requests.append(lowered)
            self.paths.append(path)
            status, extra = self._status(path, lowered)
            self.statuses.append(status)
            self.times.append(time.monotonic())
            if status == 200:
                if lowered.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                self._keep(request)
            self._cond.notify_all()
        return status, extra

    def _status(self, path: str, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]]]:
        if path.partition("?")[0] != "/v1/traces":
            return 404, []
        if self.require_header is not None and headers.get(self.require_header[0]) != self.require_header[1]:
            return 401, []
        if self.refusals:
            status, after = self.refusals.pop(0)
            return status, [("Retry-After", after)] if after is not None else []
        return 200, []

    def _keep(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append(
                        ReceivedSpan(
                            name=span.name, kind=span.kind, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes={kv.key: _value(kv.value) for kv in span.attributes}, resource=resource,
                            status_code=span.status.code, status_message=span.status.message,
                            events=[(e.name, {kv.key: _value(kv.value) for kv in e.attributes}) for e in span.events],
                            start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano,
                        )
                    )  # fmt: skip

    def close_idle(self, timeout: float = 10.0) -> int:
        """Close every keep-alive connection waiting for a request, as a collector's idle timeout does,
        and wait until their handlers are gone. Returns how many were closed."""
        with self._cond:
            idle = list(self._idle)
            for conn in idle:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            assert self._cond.wait_for(lambda: not (self._idle & set(idle)), timeout), "idle handlers never ended"
            return len(idle)

    def wait_for(self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 10.0) -> list[ReceivedSpan]:
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self.spans), timeout)
            assert ok, f"spans never satisfied the condition; got {len(self.spans)}"
            return list(self.spans)

    def wait_idle(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block until `count` connections are waiting for their next request."""
        with self._cond:
            assert self._cond.wait_for(lambda: len(self._idle) >= count, timeout), "no idle connection"
