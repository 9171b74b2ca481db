"""An OTLP endpoint with a `user:password@` is refused at load: neither span sink sends a userinfo (`OtlpGrpcSink`
dials the host and port alone, `OtlpHttpSink` connects to the host and sends only telemetry.headers), so before
2026-12-05 its credentials were accepted and silently dropped, and the collector saw an unauthenticated exporter."""

from __future__ import annotations

import pytest

from proxy.config import parse
from proxy.errors import ConfigError

BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'


@pytest.mark.parametrize(
    ("text", "env", "path"),
    [
        ('telemetry: {exporter: otlp, protocol: grpc, endpoint: "http://ops:hunter2@collector:4317"}\n', {},
         "telemetry.endpoint"),
        ('telemetry: {exporter: otlp, protocol: grpc, endpoint: "ops:hunter2@collector:4317"}\n', {},
         "telemetry.endpoint"),
        ('telemetry: {exporter: otlp, traces_endpoint: "https://ops:hunter2@collector:4317"}\n', {},
         "telemetry.traces_endpoint"),
        ('telemetry: {exporter: otlp, protocol: http/protobuf, endpoint: "http://ops:hunter2@collector:4318"}\n', {},
         "telemetry.endpoint"),
        ("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://ops:hunter2@collector:4318"}, "telemetry.endpoint"),
    ],
    ids=["grpc url", "grpc host:port", "grpc traces", "http", "http from OTEL_*"],
)  # fmt: skip
def test_credentials_in_an_otlp_endpoint_are_a_problem(text: str, env: dict[str, str], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + text, env=env)
    found = [problem for problem in caught.value.problems if problem.startswith(f"{path}: a user or password in")]
    assert found and "ops:***@collector" in found[0] and "telemetry.headers" in found[0]
    assert not any("hunter2" in problem for problem in caught.value.problems)


def test_credentials_given_as_headers_load() -> None:
    text = ('telemetry: {exporter: otlp, protocol: grpc, endpoint: "http://collector:4317", '
            'headers: {authorization: "Basic b3BzOmh1bnRlcjI="}}\n')  # fmt: skip
    assert parse(BASE + text, env={}).telemetry.headers == (("authorization", "Basic b3BzOmh1bnRlcjI="),)
