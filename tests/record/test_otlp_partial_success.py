"""A collector that takes a batch but rejects some of its spans answers success with `partial_success`
(OTLP spec: HTTP 200 / gRPC OK, `rejected_spans` and an `error_message`, not to be retried). Those spans are
lost: counted as failed (`lineage_proxy_spans_export_failed_total`), not as exported, and the collector's reason
logged; before, they counted as exported and nothing said so."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: origin, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: origin}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: otlp, protocol: "${PROTOCOL}", endpoint: "${OTLP}"}
"""
REASON = "span too old for this tenant"
BATCHES: list[int] = []  # the spans of each batch the collector answered


def _partly(request: trace_service_pb2.ExportTraceServiceRequest) -> bytes:
    """The answer: every span but the first taken."""
    spans = sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
    BATCHES.append(spans)
    answer = trace_service_pb2.ExportTraceServiceResponse()
    answer.partial_success.rejected_spans = min(1, spans)
    answer.partial_success.error_message = REASON
    return answer.SerializeToString()


class PartlyGrpc(OtlpReceiver):
    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any) -> Any:
        super().Export(request, context)
        return trace_service_pb2.ExportTraceServiceResponse.FromString(_partly(request))


@pytest.fixture
def collector(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(protocol, endpoint) of a collector that rejects one span of each batch."""
    BATCHES.clear()
    if request.param == "grpc":
        receiver = PartlyGrpc()
        port = receiver.start()
        yield "grpc", f"http://127.0.0.1:{port}"
        receiver.stop()
        return

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            payload = _partly(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http/protobuf", f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def sample(scraped: str, name: str) -> int:
    found = re.search(rf"^{name} (\S+)$", scraped, re.MULTILINE)
    assert found is not None, name
    return int(float(found.group(1)))


@pytest.mark.parametrize("collector", ["http/protobuf", "grpc"], indirect=True)
def test_spans_a_collector_rejects_are_counted_failed_and_logged(  # type: ignore[no-untyped-def]
    vllm, make_proxy, loop_thread, collector, caplog
) -> None:
    _, upstream = vllm
    protocol, endpoint = collector
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, PROTOCOL=protocol, OTLP=endpoint)
    for _ in range(3):
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=10,
                           json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert reply.status_code == 200
    with caplog.at_level("WARNING", logger="lineage_proxy"):
        loop_thread.run(proxy.process.runtime.sinks.flush())  # one batch of 3 (or more, on a busy machine)
    scraped = proxy.process.metrics_text()
    rejected = sum(1 for spans in BATCHES if spans)  # one span of each batch
    assert sum(BATCHES) == 3 and rejected >= 1
    assert sample(scraped, "lineage_proxy_spans_exported_total") == 3 - rejected
    assert sample(scraped, "lineage_proxy_spans_export_failed_total") == rejected
    assert [r for r in caplog.records if REASON in r.getMessage()]


def test_a_partial_success_is_read_as_protobuf_writes_it_and_anything_else_is_none() -> None:
    from proxy.record.export import rejected

    for spans, message in ((1, REASON), (2**40, ""), (7, "é ✓ " * 100), (0, "nothing rejected")):
        answer = trace_service_pb2.ExportTraceServiceResponse()
        answer.partial_success.rejected_spans = spans
        answer.partial_success.error_message = message
        assert rejected(answer.SerializeToString()) == ((spans, message) if spans else None)
    assert rejected(trace_service_pb2.ExportTraceServiceResponse().SerializeToString()) is None
    for garbage in (b"", b"<html>ok</html>", b"\x0a\xff", b"\x0a\x02\x08", b"\xff" * 12, b"{}"):
        assert rejected(garbage) is None
