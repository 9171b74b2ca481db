"""The OTEL_* variables users already set configure the exporter; config keys win over them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from proxy.config import parse
from proxy.config.otel_env import parse_pairs, telemetry_from_env
from proxy.errors import ConfigError
from tests.conftest import KEYS, sha
from tests.harness import ServeProcess
from tests.servers.otlp_http_receiver import OtlpHttpReceiver
from tests.servers.vllm_like import SERVED

BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'


def ready(base: str, attempts: int = 200) -> None:
    """Wait on /readyz (every upstream answered its metadata); each attempt is a real request."""
    for _ in range(attempts):
        if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
            return
    raise AssertionError("never ready")


def test_pairs_are_percent_decoded_and_junk_is_skipped() -> None:
    assert parse_pairs("a=1, b = x%20y ,junk,=v,c=k=v") == (("a", "1"), ("b", "x y"), ("c", "k=v"))
    assert parse_pairs("") == ()


def test_env_alone_configures_an_http_exporter() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example.com",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-honeycomb-team=k3y,x-tenant=a%2Cb",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/ssl/certs/ca-certificates.crt",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_SERVICE_NAME": "sidecar-eu",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=ignored",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
    }
    telemetry = parse(BASE, env=env).telemetry
    assert (telemetry.exporter, telemetry.protocol, telemetry.endpoint) == (
        "otlp",
        "http/protobuf",
        "https://otel.example.com",
    )
    assert telemetry.headers == (("x-honeycomb-team", "k3y"), ("x-tenant", "a,b"))
    assert (telemetry.compression, telemetry.certificate, telemetry.export_timeout_s) == (
        "gzip",
        "/etc/ssl/certs/ca-certificates.crt",
        2.5,
    )
    assert telemetry.service_name == "sidecar-eu" and telemetry.sample_ratio == 0.25
    assert telemetry.resource_attributes == (("deployment.environment", "prod"),)


def test_env_values_are_taken_as_they_are_not_expanded_as_config_text() -> None:
    """A `${` in a token is part of the token: the environment's values are not config text (they were expanded
    again, and `${cd}` was an unset variable that refused the config)."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318/${path}",
           "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Basic%20ab${cd}ef,x-b=${HOME:-x}",
           "OTEL_SERVICE_NAME": "svc-${region}", "OTEL_RESOURCE_ATTRIBUTES": "team=${team}", "HOME": "/root"}  # fmt: skip
    telemetry = parse(BASE, env=env).telemetry
    assert telemetry.headers == (("authorization", "Basic ab${cd}ef"), ("x-b", "${HOME:-x}"))
    assert (telemetry.endpoint, telemetry.service_name) == ("http://otel:4318/${path}", "svc-${region}")
    assert telemetry.resource_attributes == (("team", "${team}"),)
    text = BASE + 'telemetry: {headers: {x-file: "${HOME}"}}\n'  # the file's own text is still expanded (and wins)
    assert parse(text, env=env).telemetry.headers == (("x-file", "/root"),)


def test_signal_specific_variables_win_over_general_ones() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:9",
           "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}  # fmt: skip
    telemetry = parse(BASE, env=env).telemetry
    assert (telemetry.traces_endpoint, telemetry.protocol) == ("http://b:9", "grpc")


def test_config_keys_win() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://env:1/x",
           "OTEL_SERVICE_NAME": "env", "OTEL_RESOURCE_ATTRIBUTES": "a=env,b=env", "OTEL_TRACES_SAMPLER": "always_off"}  # fmt: skip
    text = BASE + ('telemetry: {exporter: otlp, protocol: grpc, endpoint: "http://file:4317", service_name: file,'
                   " sample_ratio: 0.5, resource_attributes: {a: file}}\n")  # fmt: skip
    telemetry = parse(text, env=env).telemetry
    assert (telemetry.endpoint, telemetry.traces_endpoint, telemetry.protocol) == ("http://file:4317", None, "grpc")
    assert (telemetry.service_name, telemetry.sample_ratio) == ("file", 0.5)
    assert dict(telemetry.resource_attributes) == {"a": "file", "b": "env"}


def test_sdk_disabled_turns_spans_off_unless_the_file_asks_for_them() -> None:
    env = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318"}
    assert parse(BASE, env=env).telemetry.exporter == "none"
    assert parse(BASE + "telemetry: {exporter: console}\n", env=env).telemetry.exporter == "console"
    assert parse(BASE, env={}).telemetry.exporter == "none"  # nothing set: as before


def test_unsupported_values_are_problems_naming_the_variable() -> None:
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_TRACES_SAMPLER": "jaeger_remote",
           "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "zstd"}  # fmt: skip
    with pytest.raises(ConfigError) as error:
        parse(BASE, env=env)
    text = "\n".join(error.value.problems)
    assert "OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json'" in text and "OTEL_TRACES_SAMPLER: 'jaeger_remote'" in text
    assert "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'zstd'" in text
    warned: list[str] = []  # a number that is none is ignored with a warning, not a problem (test_otel_env_numbers)
    assert telemetry_from_env({"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, warned) == ({}, [])
    assert warned[0].startswith("OTEL_EXPORTER_OTLP_TIMEOUT: expected whole milliseconds up to 3600000")


def test_a_backend_behind_a_header_and_gzip_gets_every_span_from_env_alone(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`serve` with a config that says nothing about telemetry, and only the usual OTEL_* variables."""
    _, upstream = vllm
    receiver = OtlpHttpReceiver(require_header=("x-api-key", "s3cret"))
    receiver.start()
    config = tmp_path / "proxy.yaml"
    config.write_text(f"""
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: gpu-pool, url: "{upstream}"}}]
routes: [{{model: "*", upstream: gpu-pool}}]
callers: [{{name: app, api_key_sha256: {sha(KEYS["glasses"])}, purposes: [assistant]}}]
lineage: {{store: null}}
""")
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cret",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_SERVICE_NAME": "sidecar-test",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci",
    }
    serve = ServeProcess(str(config), env=env)
    try:
        ready(serve.url)  # the upstream's metadata (which names the engine) has been read
        trace_ids = []
        for _ in range(5):
            reply = httpx.post(f"{serve.url}/v1/chat/completions", timeout=10,
                               headers={"Authorization": f"Bearer {KEYS['glasses']}", "x-purpose": "assistant"},
                               json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
            assert reply.status_code == 200
            trace_ids.append(reply.headers["x-trace-id"])
        spans = receiver.wait_for(lambda spans: len(spans) == 5, timeout=15)
    finally:
        assert serve.stop() == 0
        receiver.stop()
    assert sorted(s.trace_id for s in spans) == sorted(trace_ids)
    assert all(request["content-encoding"] == "gzip" for request in receiver.requests)
    span = spans[0]
    assert span.resource["service.name"] == "sidecar-test" and span.resource["deployment.environment"] == "ci"
    # the engine, as the upstream's /v1/models says (owned_by), not the upstream's config name
    assert span.attributes["gen_ai.provider.name"] == "vllm" and span.attributes["lineage.upstream"] == "gpu-pool"
