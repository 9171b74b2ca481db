"""The OTLP exporters say who they are. The OTLP specification (Exporter, "User Agent"): exporters SHOULD emit a
User-Agent header identifying the exporter, the language of its implementation and its version, as the
OpenTelemetry SDKs do (`OTel-OTLP-Exporter-Python/1.x`). Collectors and hosted backends read it to tell
which producer sent a batch (the Collector's receivers put it on their own telemetry, vendors count SDKs by
it). The proxy's OTLP/HTTP exporter sent none at all (http.client adds no User-Agent), and its OTLP/gRPC
exporter only grpc's own (`grpc-python/1.x`), which names no exporter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from proxy import __version__
from proxy.record.export import OtlpGrpcSink, OtlpHttpSink, SinkOptions
from proxy.record.otlp import encode_resource, encode_scope, encode_span
from tests.servers.otlp_http_receiver import OtlpHttpReceiver
from tests.servers.otlp_receiver import OtlpReceiver

RESOURCE = encode_resource({"service.name": "t"})
SCOPE = encode_scope("t", "0")
SPAN = encode_span(trace_id=1, span_id=1, parent_span_id=None, trace_state=None, name="s", kind=2, start_ns=1,
                   end_ns=2, attributes={})  # fmt: skip
AGENT = f"lineage-proxy/{__version__}"


@pytest.fixture
def http_receiver() -> Iterator[OtlpHttpReceiver]:
    server = OtlpHttpReceiver()
    server.start()
    yield server
    server.stop()


def test_the_http_exporter_names_itself(http_receiver: OtlpHttpReceiver) -> None:
    sink = OtlpHttpSink(f"http://127.0.0.1:{http_receiver.port}", 5.0, RESOURCE, SCOPE)
    try:
        sink.send([SPAN])
    finally:
        sink.close()
    assert http_receiver.requests[-1].get("user-agent", "").startswith(AGENT)


def test_a_user_agent_the_user_gives_replaces_the_exporters_in_any_case(http_receiver: OtlpHttpReceiver) -> None:
    options = SinkOptions(headers=(("user-agent", "my-gateway-client/2"),))
    sink = OtlpHttpSink(f"http://127.0.0.1:{http_receiver.port}", 5.0, RESOURCE, SCOPE, options)
    try:
        sink.send([SPAN])
    finally:
        sink.close()
    agents = [value for name, value in http_receiver.fields[-1] if name.lower() == "user-agent"]
    assert agents == ["my-gateway-client/2"]  # not the proxy's beside it


class _AgentReceiver(OtlpReceiver):
    def __init__(self) -> None:
        super().__init__()
        self.agents: list[str] = []

    def Export(self, request: Any, context: Any) -> Any:
        self.agents += [value for key, value in context.invocation_metadata() if key == "user-agent"]
        return super().Export(request, context)


def test_the_grpc_exporter_names_itself() -> None:
    receiver = _AgentReceiver()
    receiver.start()
    sink = OtlpGrpcSink(f"http://127.0.0.1:{receiver.port}", 5.0, RESOURCE, SCOPE)
    try:
        sink.send([SPAN])
    finally:
        sink.close()
        receiver.stop()
    assert len(receiver.agents) == 1 and receiver.agents[0].startswith(AGENT), receiver.agents
