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


NO_HOST = "a host holds no '/', '?', '#' or white space, got "


@pytest.mark.parametrize(
    ("endpoint", "said"),
    [
        ("gw/xyz/s3cret:4317", NO_HOST + "'***:4317'"),
        ("gw/xyz/s3cret", NO_HOST + "'***'"),
        ("gate way:4317", NO_HOST + "'gate way:4317'"),
        ("collector:4317/v1/s3cret", "expected host:port, got 'collector:4317/***'"),
        ("collector:4317?key=s3cret", "expected host:port, got 'collector:4317?***'"),
    ],
)
@pytest.mark.parametrize("key", ["endpoint", "traces_endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
def test_a_grpc_endpoint_without_a_scheme_is_a_host_and_port_alone(key: str, endpoint: str, said: str) -> None:
    """Found reviewing urls2's change (2026-12-06): without a scheme, the exporter reads a `/`, `?` or `#` as the end
    of its host and port and drops the rest (`gw/xyz/s3cret:4317`: host `gw`, port 4317, what may be a token dropped;
    `collector:4317?key=...`: the key never sent), and a host holding white space is never resolved: they loaded.
    They are said as a gRPC upstream's address is (`parse_address`), what may be a token hidden."""
    env = {**GRPC, key: endpoint} if key.startswith("OTEL_") else {}
    text = "" if env else f'telemetry: {{exporter: otlp, protocol: grpc, {key}: "{endpoint}"}}\n'
    with pytest.raises(ConfigError) as caught:
        parse(BASE + text, env=env)
    path = "telemetry.traces_endpoint" if env else f"telemetry.{key}"
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}: {said}") and "s3cret" not in problem, problem


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
