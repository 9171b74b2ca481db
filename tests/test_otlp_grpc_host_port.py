"""Over OTLP/gRPC (`telemetry.protocol`'s default) the traces endpoint may be a `host:port`, as the OpenTelemetry
spec has a gRPC exporter take any form its gRPC client does (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector:4317`),
and the span exporter reads it so (`OtlpGrpcSink`). `check` refused such a config, and the proxy would not start
with it, once `telemetry.traces_endpoint` was checked as an http(s) URL; one whose port is none is still a problem."""

from __future__ import annotations

import pytest

from proxy.config import parse
from proxy.errors import ConfigError
from proxy.record.spans import make_sink

BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'
GRPC = {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ('telemetry: {exporter: otlp, traces_endpoint: "collector:4317"}\n', {}),
        ("", {**GRPC, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4317"}),
        ('telemetry: {exporter: otlp, protocol: grpc, traces_endpoint: "[::1]:4317"}\n', {}),
    ],
)
def test_a_host_and_port_is_a_grpc_traces_endpoint(text: str, env: dict[str, str]) -> None:
    telemetry = parse(BASE + text, env=env).telemetry
    assert telemetry.protocol == "grpc" and telemetry.traces_endpoint in ("collector:4317", "[::1]:4317")
    sink = make_sink(telemetry, b"", b"")
    assert sink is not None
    try:
        assert type(sink).__name__ == "OtlpGrpcSink"
    finally:
        sink.close()


@pytest.mark.parametrize("endpoint", ["collector:99999", "collector:abc", "[::1:4317"])
def test_a_grpc_traces_endpoint_whose_port_is_none_is_a_problem(endpoint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + f'telemetry: {{exporter: otlp, traces_endpoint: "{endpoint}"}}\n', env={})
    assert any(problem.startswith(("telemetry.traces_endpoint: expected", "telemetry.traces_endpoint: the port must be 1-65535"))
               for problem in caught.value.problems)  # fmt: skip


def test_a_grpc_endpoint_as_host_port_is_taken_as_the_traces_endpoint_is() -> None:
    """`telemetry.endpoint: collector:4317` under gRPC, which the exporter takes (as the traces endpoint's), was
    refused as no http:// URL; a port that is none still is."""
    base = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'
    taken = parse(base + "telemetry: {exporter: otlp, protocol: grpc, endpoint: collector:4317}\n", env={})
    assert taken.telemetry.endpoint == "collector:4317"
    with pytest.raises(ConfigError) as caught:
        parse(base + "telemetry: {exporter: otlp, protocol: grpc, endpoint: collector:99999}\n", env={})
    assert any(problem.startswith(("telemetry.endpoint: expected", "telemetry.endpoint: the port must be 1-65535"))
               for problem in caught.value.problems)  # fmt: skip
