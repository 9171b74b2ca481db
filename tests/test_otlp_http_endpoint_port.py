"""An OTLP/HTTP endpoint is a URL: one without a port is its scheme's, as the OpenTelemetry SDKs read
`OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-gateway.internal` (an ingress or a gateway on port 80). The proxy put
4318 in its place (443 for https, as the URL says), so spans meant for such a gateway went to a port nothing
listens on: every export failed, every span lost, where the same variables served the applications beside it.
(OTLP/gRPC's endpoint is a host and port: without a port it is 4317, or 443 with `https://`, as written.)

The receiver is real; only the address the exporter connects to is seen and led to it, as port 80 is not one
a test may bind."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from proxy.record.export import OtlpHttpSink
from proxy.record.otlp import encode_resource, encode_scope, encode_span
from tests.servers.otlp_http_receiver import OtlpHttpReceiver


@pytest.fixture
def receiver() -> Iterator[OtlpHttpReceiver]:
    server = OtlpHttpReceiver()
    server.start()
    yield server
    server.stop()


def test_an_http_endpoint_without_a_port_is_port_80(
    receiver: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, int]] = []
    connect = socket.create_connection

    def seen(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        asked.append(address)
        return connect(("127.0.0.1", receiver.port), *args, **kwargs)  # wherever it asked: the receiver

    monkeypatch.setattr(socket, "create_connection", seen)
    sink = OtlpHttpSink("http://127.0.0.1", 5.0, encode_resource({"service.name": "t"}), encode_scope("t", "0"))
    try:
        sink.send([encode_span(trace_id=1, span_id=1, parent_span_id=None, trace_state=None, name="s", kind=2,
                               start_ns=1, end_ns=2, attributes={})])  # fmt: skip
    finally:
        sink.close()
    assert [s.name for s in receiver.spans] == ["s"] and receiver.paths == ["/v1/traces"]
    assert asked == [("127.0.0.1", 80)]
