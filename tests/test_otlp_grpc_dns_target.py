"""An OTLP/gRPC endpoint written as a target of grpc's DNS resolver, `dns:///collector:4317` (or `dns:collector:4317`),
loads and the span exporter sends to it, as the OpenTelemetry spec has a gRPC exporter take any form its gRPC client
does and opentelemetry-exporter-otlp-proto-grpc passes such a target on to grpc as written (it keeps a URL's `netloc`,
which this has none of; its `insecure` decides TLS, false by default). Until 2026-12-06 it was refused as no http URL.
One naming a DNS server (`dns://8.8.8.8/collector:4317`) is refused, saying why: that exporter reads its authority as
the collector's host:port, so connects to 8.8.8.8."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from proxy.config import parse
from proxy.errors import ConfigError
from proxy.record.export import SinkOptions, grpc_secure
from proxy.record.otlp import encode_span
from proxy.record.spans import make_sink
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_otlp_grpc_scheme_less_tls import first_bytes

BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'
SPAN = encode_span(trace_id=7, span_id=1, parent_span_id=None, trace_state=None, name="through-dns", kind=2,
                   start_ns=1, end_ns=2, attributes={})  # fmt: skip


def _telemetry(key: str, endpoint: str, extra: str = "") -> Any:
    return parse(BASE + f'telemetry: {{exporter: otlp, {key}: "{endpoint}"{extra}}}\n', env={}).telemetry


@pytest.mark.parametrize("form", ["dns:///127.0.0.1:{port}", "dns:127.0.0.1:{port}", "dns:///localhost:{port}"])
@pytest.mark.parametrize("key", ["endpoint", "traces_endpoint"])
def test_a_dns_target_loads_and_the_spans_reach_the_collector(form: str, key: str) -> None:
    receiver = OtlpReceiver()
    receiver.start()
    try:
        endpoint = form.format(port=receiver.port)
        telemetry = _telemetry(key, endpoint, ", insecure: true")
        assert telemetry.protocol == "grpc" and endpoint in (telemetry.endpoint, telemetry.traces_endpoint)
        sink = make_sink(telemetry, b"", b"")
        assert sink is not None
        try:
            sink.send([SPAN])
        finally:
            sink.close()
        assert [span.name for span in receiver.wait_for(lambda spans: len(spans) == 1)] == ["through-dns"]
    finally:
        receiver.stop()


def test_a_dns_target_from_the_environment_loads() -> None:
    env = {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "dns:///collector:4317"}
    assert parse(BASE, env=env).telemetry.traces_endpoint == "dns:///collector:4317"


def test_a_dns_target_is_spoken_over_tls_unless_insecure() -> None:
    """As opentelemetry-exporter-otlp-proto-grpc has it (plaintext for an `http` scheme alone, or `insecure`), and as
    an endpoint without a scheme is: a TLS ClientHello is what reaches the listener first."""
    assert first_bytes("dns:///127.0.0.1:{port}", None) == b"\x16"
    assert grpc_secure("dns:///collector:4317", SinkOptions())
    assert not grpc_secure("dns:///collector:4317", SinkOptions(insecure=True))


@pytest.mark.parametrize(
    ("endpoint", "said"),
    [
        (
            "dns://8.8.8.8/collector:4317",
            "a dns: endpoint naming a DNS server, 'dns://8.8.8.8/***', is read by OpenTelemetry's OTLP/gRPC exporter "
            "as the collector's host:port (its authority): write dns:///host:port, resolved by the system's resolver",
        ),
        ("dns:///collector", "a dns: endpoint is dns:///host:port: expected host:port, got 'collector'"),
        (
            "dns:///collector:4317/v1/s3cret",
            "a dns: endpoint is dns:///host:port: expected host:port, got 'collector:4317/***'",
        ),
        (
            "dns:///u:s3cret@collector:4317",
            "a dns: endpoint is dns:///host:port: a host:port holds no user or "
            "password, got 'u:***@collector:4317' (write 'collector:4317')",
        ),
        (
            "dns:///collector:99999",
            "a dns: endpoint is dns:///host:port: the port must be 1-65535, got 99999 in 'collector:99999'",
        ),
    ],
)
def test_a_dns_target_the_exporter_would_misread_is_refused(endpoint: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _telemetry("endpoint", endpoint)
    assert caught.value.problems == [f"telemetry.endpoint: {said}"]


def test_a_dns_target_over_http_protobuf_is_no_url() -> None:
    """Over OTLP/HTTP the endpoint is a URL: a gRPC target is none, as before."""
    with pytest.raises(ConfigError) as caught:
        _telemetry("endpoint", "dns:///collector:4318", ", protocol: http/protobuf")
    assert caught.value.problems == [
        "telemetry.endpoint: expected an http:// or https:// URL, got 'dns:///collector:4318'"
    ]


UNBRACKETED = (
    "a dns: endpoint's IPv6 address is written in brackets, dns:///[::1]:4317: grpc reads {endpoint!r} as one address, "
    "on its default port"
)


@pytest.mark.parametrize("endpoint", ["dns:///::1:4317", "dns:::1:4317", "dns:///2001:db8::1:4317"])
def test_a_dns_target_of_an_ipv6_address_without_brackets_is_refused(endpoint: str) -> None:
    """Found reviewing urls4's change: these loaded, read by the check as `[::1]:4317`, which grpc reads as the address
    `::1:4317` (`::0.1.67.23`) on port 443: the spans sent to another address and port than the check read."""
    with pytest.raises(ConfigError) as caught:
        _telemetry("endpoint", endpoint)
    assert caught.value.problems == ["telemetry.endpoint: " + UNBRACKETED.format(endpoint=endpoint)]


def test_a_dns_target_of_an_ipv6_address_in_brackets_loads() -> None:
    assert _telemetry("endpoint", "dns:///[::1]:4317").endpoint == "dns:///[::1]:4317"


def test_grpc_reads_an_ipv6_address_without_brackets_whole() -> None:
    """Why: grpc's own reading of such a target, the address it tried named in its error (port 443, not 4317)."""
    with grpc.insecure_channel("dns:///::1:4317") as channel, pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/x/y")(b"", timeout=10)
    assert "ipv6:%5B::0.1.67.23%5D:443" in caught.value.details()
