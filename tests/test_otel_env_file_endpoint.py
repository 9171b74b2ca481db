"""An endpoint the config file names is spoken in the file's `telemetry.protocol` (grpc when it says nothing),
whatever OTEL_EXPORTER_OTLP_*ENDPOINT the environment sets (an OpenTelemetry operator injects one into every
pod): the http/protobuf such a variable implies goes with its own endpoint, which the file's replaces. It went
with the file's: a gRPC collector's port was sent HTTP, and every span was lost."""

from __future__ import annotations

import openai
import pytest

from proxy.config import parse
from tests.conftest import KEYS, sha
from tests.harness import dead_port
from tests.servers.vllm_like import SERVED

BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'
ENDPOINTS = [{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318"},
             {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://env:4318/v1/traces"}]  # fmt: skip


@pytest.mark.parametrize("env", ENDPOINTS, ids=["general", "traces"])
@pytest.mark.parametrize("key", ["endpoint", "traces_endpoint"])
def test_the_files_endpoint_keeps_the_files_protocol(env: dict[str, str], key: str) -> None:
    text = BASE + f'telemetry: {{exporter: otlp, {key}: "http://file:4317"}}\n'
    assert parse(text, env={}).telemetry.protocol == "grpc"
    telemetry = parse(text, env=env).telemetry
    assert telemetry.protocol == "grpc"
    assert (telemetry.endpoint if key == "endpoint" else telemetry.traces_endpoint) == "http://file:4317"
    assert telemetry.traces_endpoint is None or key == "traces_endpoint"


def test_a_grpc_host_and_port_in_the_file_is_taken_with_an_otel_endpoint_set() -> None:
    """Read as its gRPC exporter reads it: spoken http/protobuf, the same `host:port` was refused as no URL."""
    text = BASE + 'telemetry: {exporter: otlp, endpoint: "collector:4317"}\n'
    telemetry = parse(text, env=ENDPOINTS[0]).telemetry
    assert (telemetry.protocol, telemetry.endpoint) == ("grpc", "collector:4317")


def test_a_protocol_variable_still_applies_to_the_files_endpoint() -> None:
    """The file says no protocol: the environment's protocol variable is the one said."""
    text = BASE + 'telemetry: {exporter: otlp, endpoint: "http://file:4318"}\n'
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    assert parse(text, env=env).telemetry.protocol == "http/protobuf"
    assert parse(text, env={"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}).telemetry.protocol == "http/protobuf"
    assert parse(BASE, env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318"}).telemetry.protocol == "http/protobuf"


CONFIG = f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: vllm, url: "${{UPSTREAM}}"}}]
routes: [{{model: "*", upstream: vllm}}]
callers: [{{name: app, api_key_sha256: {sha(KEYS["glasses"])}, default_purpose: assistant}}]
telemetry: {{exporter: otlp, endpoint: "${{OTLP}}", export_timeout_s: 2}}
lineage: {{store: "${{STORE}}"}}
"""


def test_spans_reach_the_files_grpc_collector_with_an_otel_endpoint_set(vllm, otlp, make_proxy) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}",
                       OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{dead_port()}")  # fmt: skip
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=KEYS["glasses"], max_retries=0, timeout=10)
    reply = client.chat.completions.with_raw_response.create(model=SERVED, messages=[{"role": "user", "content": "hi"}])
    span = otlp.by_trace(reply.http_response.headers["x-trace-id"])
    assert span.attributes["lineage.decision"] == "allow"
