"""A collector that speaks plain gRPC, named by an endpoint without a scheme (`jaeger:4317`, as Jaeger's and the
Collector's docs write it), which the exporter speaks over TLS as the OpenTelemetry spec has it: what `serve` says.

Found by a first user's afternoon (helper huntuser): grpc's C core wrote its own lines to stderr, one a retry
(`I1205 07:45:40.162627 11717 ssl_transport_security.cc:2563] Handshake failed ...`), so under `logging.format: json`
stderr was no longer one JSON object a line; and the proxy's one line said OpenSSL's `WRONG_VERSION_NUMBER`, not what
to do (write the endpoint with http://, or telemetry.insecure: true). Over http/protobuf an `https://` endpoint whose
collector serves plain HTTP likewise said `SSLError: [SSL: WRONG_VERSION_NUMBER]` alone, where an upstream's says
what to do (README, Use it)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.harness import ServeProcess, dead_port
from tests.servers.otlp_http_receiver import OtlpHttpReceiver
from tests.servers.otlp_receiver import OtlpReceiver

# each protocol's plaintext collector, the endpoint its exporter speaks TLS to, and what the line must advise
PROTOCOLS = {
    "grpc": ("{port}", ("plain gRPC", "http://", "telemetry.insecure: true")),
    "http/protobuf": ("https://{port}", ("plain HTTP", "http://")),
}


@pytest.fixture(params=list(PROTOCOLS))
def plaintext_collector(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    receiver = OtlpReceiver() if request.param == "grpc" else OtlpHttpReceiver()
    port = receiver.start()
    try:
        yield request.param, port
    finally:
        receiver.stop()


def test_tls_to_a_plaintext_collector_is_said_in_json_lines_with_what_to_do(
    tmp_path: Path, plaintext_collector: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    protocol, port = plaintext_collector
    endpoint, advice = PROTOCOLS[protocol]
    config = tmp_path / "proxy.yaml"
    config.write_text(
        "listen: {http: '127.0.0.1:0'}\n"
        f"upstreams: [{{name: m, url: 'http://127.0.0.1:{dead_port()}'}}]\n"
        "routes: [{model: '*', upstream: m}]\npolicy: {anonymous: allow}\nlineage: {store: null}\n"
        f"telemetry: {{exporter: otlp, protocol: {protocol}, endpoint: '{endpoint.format(port=f'127.0.0.1:{port}')}', "
        "export_timeout_s: 1}\nlogging: {format: json}\n"
    )
    for key in ("GRPC_VERBOSITY", "GRPC_TRACE"):  # as a user's shell has them: unset
        monkeypatch.delenv(key, raising=False)
    proxy = ServeProcess(str(config))
    try:
        request = urllib.request.Request(f"{proxy.url}/v1/chat/completions", method="POST",
                                         data=b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}',
                                         headers={"content-type": "application/json"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError):  # 502: the upstream is down; its span goes to the collector
            urllib.request.urlopen(request, timeout=10)
        failed = proxy.wait_log("span export failed", timeout=30)
    finally:
        assert proxy.stop() == 0
    for line in proxy.stderr:
        assert line.startswith("{"), f"not a JSON line: {line!r}"
    message = orjson.loads(failed)["message"]
    assert all(words in message for words in advice), message


@pytest.mark.parametrize(
    ("endpoint", "certificate", "said", "unsaid"),
    [
        ("{addr}", False, "an endpoint without a scheme is spoken over TLS; for a plaintext collector write the "
                          "endpoint with http://", "certificate"),
        ("https://{addr}", False, "an https:// endpoint is spoken over TLS; for a plaintext collector write the "
                                  "endpoint with http://", "without a scheme"),
        ("http://{addr}", True, "an http:// endpoint given a certificate, telemetry.certificate or "
                                "OTEL_EXPORTER_OTLP_CERTIFICATE, is spoken over TLS; for a plaintext collector give none",
         "write the endpoint with http://"),
    ],
)  # fmt: skip
def test_the_advice_fits_what_made_the_grpc_export_tls(
    tmp_path: Path, endpoint: str, certificate: bool, said: str, unsaid: str
) -> None:
    """Reviewing 3621091 (helper revuser): its advice was one sentence whatever made the export TLS, so an
    `https://` endpoint was told `an endpoint without a scheme is spoken over TLS`, and an `http://` one given a
    certificate (which the spec has speak TLS) was told to write the endpoint with http://, as it was already."""
    from proxy.record import ExportRefused
    from proxy.record.export import OtlpGrpcSink, SinkOptions
    from proxy.record.otlp import encode_resource, encode_scope
    from tests.certs import Authority

    receiver = OtlpReceiver()
    port = receiver.start()
    options = SinkOptions(certificate=str(Authority(tmp_path).pair.cert) if certificate else None)
    sink = OtlpGrpcSink(endpoint.format(addr=f"127.0.0.1:{port}"), 1.0, encode_resource({}), encode_scope("t", "0"),
                        options)  # fmt: skip
    try:
        with pytest.raises(ExportRefused) as refused:
            sink.send([])
    finally:
        sink.close()
        receiver.stop()
    assert "plain gRPC" in refused.value.hint and said in refused.value.hint, refused.value.hint
    assert unsaid not in refused.value.hint, refused.value.hint
