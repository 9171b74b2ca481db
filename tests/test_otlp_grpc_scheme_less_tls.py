"""An OTLP/gRPC endpoint written without a scheme (`api.honeycomb.io:443`, `collector:4317`, as the OpenTelemetry spec
lets a gRPC exporter take it) is spoken over TLS unless `insecure` (OTEL_EXPORTER_OTLP_INSECURE) says plaintext: the
spec's `insecure` defaults to false, and OpenTelemetry's own SDKs (Python, Go) connect such an endpoint with TLS. The
proxy spoke plaintext to it, sending the export's headers (a backend's API key: `x-honeycomb-team`) and every span in
clear to a backend that expects TLS. `http://host:port` stays plaintext; `insecure: true` makes any endpoint so."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import pytest

from proxy.config import parse
from proxy.record.export import ExportRefused
from proxy.record.spans import make_sink

BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'


def _export(sink: Any) -> None:
    """One batch, which the listener never answers: refused once the export's timeout is spent."""
    with contextlib.suppress(ExportRefused):
        sink.send([b""])


def first_bytes(endpoint: str, insecure: str | None) -> bytes:
    """What the gRPC exporter writes first on a connection to `endpoint`, `{port}` in it a listener's that answers
    nothing (tests/test_otlp_grpc_dns_target.py asks it too)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(10)
        port = listener.getsockname()[1]
        extra = f", insecure: {insecure}" if insecure is not None else ""
        telemetry = parse(
            BASE + f'telemetry: {{exporter: otlp, protocol: grpc, export_timeout_s: 1, traces_endpoint: "'
            f'{endpoint.format(port=port)}", headers: {{x-honeycomb-team: s3cret-key}}{extra}}}\n',
            env={},
        ).telemetry
        sink = make_sink(telemetry, b"", b"")
        assert sink is not None
        sending = threading.Thread(target=_export, args=(sink,), daemon=True)
        sending.start()
        try:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                return conn.recv(1)
        finally:
            sending.join(10)
            sink.close()


def test_a_scheme_less_grpc_endpoint_is_spoken_over_tls() -> None:
    first = first_bytes("127.0.0.1:{port}", None)
    assert first == b"\x16", f"plaintext to a scheme-less endpoint (first byte {first!r}, not a TLS ClientHello)"


@pytest.mark.parametrize(("endpoint", "insecure"), [("http://127.0.0.1:{port}", None), ("127.0.0.1:{port}", "true")])
def test_plaintext_where_the_scheme_or_insecure_says(endpoint: str, insecure: str | None) -> None:
    assert first_bytes(endpoint, insecure) == b"P"  # the HTTP/2 preface, "PRI * HTTP/2.0"
