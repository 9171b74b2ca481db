"""A collector that speaks plain gRPC, named by an endpoint without a scheme (`jaeger:4317`, as Jaeger's and the
Collector's docs write it), which the exporter speaks over TLS as the OpenTelemetry spec has it: what `serve` says.

Found by a first user's afternoon (helper huntuser): grpc's C core wrote its own lines to stderr, one a retry
(`I1205 07:45:40.162627 11717 ssl_transport_security.cc:2563] Handshake failed ...`), so under `logging.format: json`
stderr was no longer one JSON object a line; and the proxy's one line said OpenSSL's `WRONG_VERSION_NUMBER`, not what
to do (write the endpoint with http://, or telemetry.insecure: true)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.harness import ServeProcess, dead_port
from tests.servers.otlp_receiver import OtlpReceiver


@pytest.fixture
def plaintext_collector() -> Iterator[int]:
    receiver = OtlpReceiver()
    port = receiver.start()
    try:
        yield port
    finally:
        receiver.stop()


def test_tls_to_a_plaintext_collector_is_said_in_json_lines_with_what_to_do(
    tmp_path: Path, plaintext_collector: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(
        "listen: {http: '127.0.0.1:0'}\n"
        f"upstreams: [{{name: m, url: 'http://127.0.0.1:{dead_port()}'}}]\n"
        "routes: [{model: '*', upstream: m}]\npolicy: {anonymous: allow}\nlineage: {store: null}\n"
        f"telemetry: {{exporter: otlp, protocol: grpc, endpoint: '127.0.0.1:{plaintext_collector}', "
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
    assert "plain" in message and "http://" in message and "telemetry.insecure: true" in message, message
