"""The gRPC span exporter's target is the endpoint's host and port as the URL says them: an IPv6 literal keeps its
brackets (`[::1]:4317`; without them grpc reads `::1:4317` as a host with no port, and never reaches the collector),
and an `https://` URL without a port is port 443, the URL's, as OpenTelemetry's SDKs take it
(`https://api.honeycomb.io`): 4317, where TLS backends on the internet do not listen, lost every span."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import grpc
import pytest

from proxy.config import parse
from proxy.record.export import ExportRefused
from proxy.record.spans import make_sink

BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'


def _export(sink: Any) -> None:
    """One batch, which the listener never answers: refused once the export's timeout is spent."""
    with contextlib.suppress(ExportRefused):
        sink.send([b""])


def _sink(endpoint: str, extra: str = "") -> Any:
    telemetry = parse(
        BASE + f'telemetry: {{exporter: otlp, protocol: grpc, export_timeout_s: 1, traces_endpoint: "{endpoint}"'
        f"{extra}}}\n",
        env={},
    ).telemetry
    sink = make_sink(telemetry, b"", b"")
    assert sink is not None
    return sink


def test_an_ipv6_collector_is_reached() -> None:
    try:
        listener = socket.socket(socket.AF_INET6)
        listener.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    with listener:
        listener.listen(1)
        listener.settimeout(5)
        sink = _sink(f"http://[::1]:{listener.getsockname()[1]}")
        sending = threading.Thread(target=_export, args=(sink,), daemon=True)
        sending.start()
        try:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                pytest.fail("the exporter never connected to [::1]")
            with conn:
                conn.settimeout(5)
                assert conn.recv(3) == b"PRI"  # the HTTP/2 preface: the exporter's own connection
        finally:
            sending.join(10)
            sink.close()


def test_an_https_endpoint_without_a_port_is_port_443(monkeypatch: pytest.MonkeyPatch) -> None:
    targets: list[str] = []
    secure_channel = grpc.secure_channel

    def recorded(target: str, *args: Any, **kwargs: Any) -> Any:
        targets.append(target)
        return secure_channel(target, *args, **kwargs)

    monkeypatch.setattr(grpc, "secure_channel", recorded)
    _sink("https://otlp.example.com").close()
    _sink("https://otlp.example.com:4317").close()
    assert targets == ["otlp.example.com:443", "otlp.example.com:4317"]
