"""An OTLP/gRPC endpoint written as a target of one of grpc's resolvers other than its DNS one loads and the span
exporter sends to it as written, as opentelemetry-exporter-otlp-proto-grpc passes it on to grpc (it keeps a URL's
`netloc`, which these have none of; its `insecure` decides TLS, false by default): a list of IPv4 or IPv6 addresses
(`ipv4:10.0.0.5:4317`, `ipv6:[::1]:4317`), a Unix socket (`unix:/run/otel.sock`, `unix:///run/otel.sock`), one of
Linux's abstract namespace (`unix-abstract:otel`); and `dns:/collector:4317`, which grpc reads as `dns:///...`. Until
2026-12-06 each was refused (as no http URL, or `dns:/...` as a host holding a `/`). What grpc or that exporter would
read otherwise is refused, saying why: an authority (`unix://run/otel.sock`, host `run` to the exporter, refused by
grpc), a name in an `ipv4:` list, an IPv6 address without brackets, a socket's path holding a `?`, xDS."""

from __future__ import annotations

import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from proxy.config import parse
from proxy.errors import ConfigError
from proxy.record import ExportRefused
from proxy.record.export import OtlpGrpcSink, SinkOptions, grpc_secure
from proxy.record.otlp import encode_span
from proxy.record.spans import make_sink
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_otlp_grpc_scheme_less_tls import first_bytes

BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'
SPAN = encode_span(trace_id=7, span_id=1, parent_span_id=None, trace_state=None, name="through-target", kind=2,
                   start_ns=1, end_ns=2, attributes={})  # fmt: skip


def _telemetry(key: str, endpoint: str, extra: str = "") -> Any:
    return parse(
        BASE + f'telemetry: {{exporter: otlp, protocol: grpc, {key}: "{endpoint}"{extra}}}\n', env={}
    ).telemetry


def _loopback_v6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@dataclass
class Collector:
    """A real OTLP/gRPC receiver, and the places it listens on besides 127.0.0.1:`receiver.port`."""

    receiver: OtlpReceiver
    socket: str  # a Unix socket's path
    abstract: str  # a socket's name in Linux's abstract namespace
    port6: int | None  # its port on [::1], where this host has it


@pytest.fixture
def collector() -> Iterator[Collector]:
    directory = tempfile.mkdtemp(prefix="lp-otlp-")  # (short: a socket's path holds 107 bytes at most)
    socket_path, abstract = f"{directory}/otel.sock", f"lp-otlp-{Path(directory).name}"
    receiver = OtlpReceiver()
    receiver.start(f"unix:{socket_path}", f"unix-abstract:{abstract}", *(["[::1]:0"] if _loopback_v6() else []))
    try:
        yield Collector(receiver, socket_path, abstract, (receiver.ports[2:] or [None])[0])
    finally:
        receiver.stop()
        Path(socket_path).unlink(missing_ok=True)
        Path(directory).rmdir()


FORMS = [
    "dns:/127.0.0.1:{port}",
    "ipv4:127.0.0.1:{port}",
    "ipv4:///127.0.0.1:{port}",
    "ipv4:127.0.0.1:{port},127.0.0.1:{port}",
    "ipv6:[::1]:{port6}",
    "unix:{socket}",
    "unix://{socket}",
    "unix-abstract:{abstract}",
    # (a scheme in capitals: grpc finds its resolver in any case, the exporter's `urlparse` lowers it; until 2026-12-06
    # refused as no http URL, `UNIX:` said to be no host:port)
    "UNIX:{socket}",
    "IPV4:127.0.0.1:{port}",
    "DNS:///127.0.0.1:{port}",
    "Unix-Abstract:{abstract}",
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("key", ["endpoint", "traces_endpoint"])
def test_a_grpc_target_loads_and_the_spans_reach_the_collector(form: str, key: str, collector: Collector) -> None:
    if "port6" in form and collector.port6 is None:
        pytest.skip("this host has no IPv6 loopback")
    if "abstract" in form and not sys.platform.startswith("linux"):
        pytest.skip("the abstract namespace is Linux's")
    endpoint = form.format(port=collector.receiver.port, port6=collector.port6, socket=collector.socket,
                           abstract=collector.abstract)  # fmt: skip
    telemetry = _telemetry(key, endpoint, ", insecure: true")
    assert endpoint in (telemetry.endpoint, telemetry.traces_endpoint)
    sink = make_sink(telemetry, b"", b"")
    assert sink is not None
    try:
        sink.send([SPAN])
    finally:
        sink.close()
    assert [span.name for span in collector.receiver.wait_for(lambda spans: len(spans) == 1)] == ["through-target"]


def test_a_unix_target_from_the_environment_loads() -> None:
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "unix:///run/otel.sock"}
    assert parse(BASE, env=env).telemetry.endpoint == "unix:///run/otel.sock"


def test_a_grpc_target_is_spoken_over_tls_unless_insecure() -> None:
    """As opentelemetry-exporter-otlp-proto-grpc has it (plaintext for an `http` scheme alone, or `insecure`)."""
    assert first_bytes("ipv4:127.0.0.1:{port}", None) == b"\x16"
    for endpoint in ("unix:/run/otel.sock", "unix:///run/otel.sock", "ipv6:[::1]:4317", "unix-abstract:otel",
                     "UNIX:/run/otel.sock", "DNS:///collector:4317"):  # fmt: skip
        assert grpc_secure(endpoint, SinkOptions()), endpoint
        assert not grpc_secure(endpoint, SinkOptions(insecure=True)), endpoint


@pytest.mark.parametrize("scheme", ["unix", "UNIX"])
def test_tls_to_a_plaintext_collector_on_a_socket_says_to_set_insecure(scheme: str, collector: Collector) -> None:
    """No http:// URL writes a socket: the advice is `insecure` alone (named in lower case, written in capitals too)."""
    sink = OtlpGrpcSink(f"{scheme}:{collector.socket}", 1.0, b"", b"", SinkOptions())
    try:
        with pytest.raises(ExportRefused) as refused:
            sink.send([SPAN])
    finally:
        sink.close()
    assert refused.value.hint == (" (the collector answered in plain gRPC, not TLS: a unix: endpoint is spoken over "
                                  "TLS; for a plaintext collector set telemetry.insecure: true)")  # fmt: skip


IPV4 = "an ipv4: endpoint lists IPv4 addresses alone, which grpc reads without a resolver, got {!r} (write "
IPV4 += "ipv4:10.0.0.5:4317, or dns:///host:port for a name)"
IPV6 = "an ipv6: endpoint lists IPv6 addresses alone, in brackets, which grpc reads without a resolver, got {!r} "
IPV6 += "(write ipv6:[2001:db8::1]:4317, or dns:///host:port for a name)"
NEITHER = (
    "an OTLP/gRPC endpoint is host:port, http(s)://host:port or a target of dns:, ipv4:, ipv6:, unix: or unix-abstract:"
)


@pytest.mark.parametrize(
    ("endpoint", "said"),
    [
        ("unix://run/otel.sock", "a unix: endpoint names no authority, got 'unix://run/***': OpenTelemetry's "
         "OTLP/gRPC exporter reads it as the collector's host:port and grpc refuses it (write unix:///path or "
         "unix:path)"),
        ("ipv4://h/127.0.0.1:4317", "an ipv4: endpoint names no authority, got 'ipv4://h/***': OpenTelemetry's "
         "OTLP/gRPC exporter reads it as the collector's host:port and grpc refuses it (write ipv4:10.0.0.5:4317)"),
        # (what each is written as: an address list takes no name, an abstract socket is no file's path)
        ("ipv6://h/[::1]:4317", "an ipv6: endpoint names no authority, got 'ipv6://h/***': OpenTelemetry's "
         "OTLP/gRPC exporter reads it as the collector's host:port and grpc refuses it (write "
         "ipv6:[2001:db8::1]:4317)"),
        ("unix-abstract://otel/x", "a unix-abstract: endpoint names no authority, got 'unix-abstract://otel/***': "
         "OpenTelemetry's OTLP/gRPC exporter reads it as the collector's host:port and grpc refuses it (write "
         "unix-abstract:name)"),
        ("unix:", "a unix: endpoint names its socket, got 'unix:' (write unix:/run/otel.sock)"),
        # (a scheme in capitals is read as its lower-case one, and told its form: until 2026-12-06 `UNIX:` loaded,
        # `IPV6:::1:4317` was told to write `::1:4317`, itself refused, and `UNIX://...` said to be no http URL)
        ("UNIX:", "a unix: endpoint names its socket, got 'UNIX:' (write unix:/run/otel.sock)"),
        ("IPV6:::1:4317", IPV6.format("::1:4317")),
        ("UNIX://run/otel.sock", "a unix: endpoint names no authority, got 'UNIX://run/***': OpenTelemetry's "
         "OTLP/gRPC exporter reads it as the collector's host:port and grpc refuses it (write unix:///path or "
         "unix:path)"),
        ("unix:/run/otel?k=s3cret", "a unix: endpoint's socket holds no '?' or '#', which grpc reads as a query's or "
         "fragment's and drops, got 'unix:/run/otel?***' (write %3F or %23)"),
        ("ipv4:collector:4317", IPV4.format("collector:4317")),
        ("ipv4:127.0.0.1:4317,collector:4317", IPV4.format("collector:4317")),
        ("ipv4:[::1]:4317", IPV4.format("[::1]:4317")),
        ("ipv6:127.0.0.1:4317", IPV6.format("127.0.0.1:4317")),
        ("ipv6:::1:4317", IPV6.format("::1:4317")),
        ("ipv4:127.0.0.1", "an ipv4: endpoint is ipv4:ADDRESS:PORT[,ADDRESS:PORT...]: expected host:port, got "
         "'127.0.0.1'"),
        ("ipv4:127.0.0.1:4317/s3cret", "an ipv4: endpoint is ipv4:ADDRESS:PORT[,ADDRESS:PORT...]: expected "
         "host:port, got '127.0.0.1:4317/***'"),
        ("xds:///collector", "xds: is a gRPC target the span exporter does not send to (xDS asks a control plane "
         "for the collector, which grpc finds through a bootstrap file the proxy neither writes nor checks): "
         + NEITHER),
        ("vsock:2:4317", "vsock: is a gRPC target the span exporter does not send to (grpcio resolves it as a "
         "host's name, which no resolver finds): " + NEITHER),
        ("dns:////collector:4317", "a dns: endpoint is dns:///host:port: a host holds no '/', '?', '#' or white "
         "space, got '***:4317' (write host:port, the server's name or address and its port alone: an address "
         "holds no path, query or key)"),
    ],
)  # fmt: skip
def test_a_grpc_target_grpc_or_the_exporter_would_misread_is_refused(endpoint: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _telemetry("endpoint", endpoint)
    assert caught.value.problems == [f"telemetry.endpoint: {said}"]
    assert "s3cret" not in said


def test_a_unix_target_over_http_protobuf_is_no_url() -> None:
    """Over OTLP/HTTP the endpoint is a URL: a gRPC target is none, as before."""
    with pytest.raises(ConfigError) as caught:
        parse(BASE + 'telemetry: {exporter: otlp, protocol: http/protobuf, endpoint: "unix:///run/otel.sock"}\n',
              env={})  # fmt: skip
    assert caught.value.problems == [
        "telemetry.endpoint: expected an http:// or https:// URL, got 'unix:///run/otel.sock'"
    ]
