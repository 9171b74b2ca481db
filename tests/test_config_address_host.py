"""An address whose host no resolver finds is refused at load with the address to write (`parse_address`): a host
holding a `:` that is no IPv6 address (`c:4317:4317`, a port written twice), a list of hosts (`c,d:4317`), brackets
around what is no IPv6 address (`[c,d]:4317`), a name holding what no name does (`tri*ton:8001`). Until 2026-12-06 each
loaded: a listener failed at its start, a gRPC upstream at each call, an OTLP/gRPC endpoint (`dns:///c,d:4317`, or
`c,d:4317` without a scheme) at each export. A password the host may hold is hidden (`admin:***:8001`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.config import parse
from proxy.errors import ConfigError

ROUTES = 'routes: [{model: "*", upstream: u}]\n'
UPSTREAM = 'upstreams: [{name: u, url: "http://h:1"}]\n'
BASE = 'listen: {http: "127.0.0.1:0"}\n' + UPSTREAM + ROUTES
# (a config holding the address, and the key the problem is said at)
PLACES = [
    ("listen: {http: %s}\n" + UPSTREAM + ROUTES, "listen.http"),
    ('listen: {http: "127.0.0.1:0", grpc: %s}\n' + UPSTREAM + ROUTES, "listen.grpc"),
    ('listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, protocol: oip, grpc: %s}]\n' + ROUTES, "upstreams[0].grpc"),
    (BASE + "telemetry: {protocol: grpc, endpoint: %s}\n", "telemetry.endpoint"),
]
IDS = ["listen.http", "listen.grpc", "upstream.grpc", "otlp.grpc"]
COLON = (
    "a host holds no ':' but an IPv6 address's, written in brackets, [2001:db8::1]:{port}, got {shown!r} (write {to!r})"
)
NAME = "a host's name is labels of letters, digits, '-' and '_' between single dots, got {shown!r}"


def _problems(config: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(config, env={})
    return caught.value.problems


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("c:4317:4317", COLON.format(port=4317, shown="c:4317:4317", to="c:4317")),
        ("c:4317:4318", COLON.format(port=4318, shown="c:***:4318", to="host:port")),
        ("2001:db8:::1:4317", COLON.format(port=4317, shown="2001:db8:::1:4317", to="host:port")),
        ("admin:s3cret:8001", COLON.format(port=8001, shown="admin:***:8001", to="host:port")),
        # (a password of hex digits, four at most, as an IPv6 address's piece: hidden all the same)
        ("admin:1234:8001", COLON.format(port=8001, shown="admin:***:8001", to="host:port")),
        ("root:cafe:8001", COLON.format(port=8001, shown="root:***:8001", to="host:port")),
        ("ad,min:1234:8001", COLON.format(port=8001, shown="ad,min:***:8001", to="host:port")),
        ("tok+en:s3cret:8001", COLON.format(port=8001, shown="***:8001", to="host:port")),
        ("c,d:4317", "an address names one host, got 'c,d:4317' (write 'c:4317')"),
        ("[c,d]:4317", "brackets hold an IPv6 address, got '[c,d]:4317' (write 'host:port')"),
        ("[c:4317]:4317", "brackets hold an IPv6 address, got '[c:4317]:4317' (write 'host:port')"),
        ("[s3cret]:4317", "brackets hold an IPv6 address, got '[***]:4317' (write 'host:port')"),
        ("[s3cret,x]:4317", "brackets hold an IPv6 address, got '[***]:4317' (write 'host:port')"),
        ("tri*ton:8001", NAME.format(shown="***:8001") + " (write 'host:port')"),
        ("tok+en=:8001", NAME.format(shown="***:8001") + " (write 'host:port')"),
        # (an empty label: Python's idna codec refuses it before any lookup, no DNS query holds one)
        (".triton:8001", NAME.format(shown=".triton:8001") + " (write 'host:port')"),
        ("tri..ton:8001", NAME.format(shown="tri..ton:8001") + " (write 'host:port')"),
    ],
)
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_an_address_whose_host_no_resolver_finds_is_refused(config: str, path: str, address: str, said: str) -> None:
    problems = _problems(config % json.dumps(address))
    assert problems == [f"{path}: {said}"]
    assert not any(secret in problem for problem in problems for secret in ("s3cret", "tok+en", "1234", "cafe"))


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("dns:///c,d:4317", "an address names one host, got 'c,d:4317' (write 'c:4317')"),
        ("dns:c:4317:4317", COLON.format(port=4317, shown="c:4317:4317", to="c:4317")),
    ],
)
def test_a_dns_target_whose_host_no_resolver_finds_is_refused(target: str, said: str) -> None:
    problems = _problems(BASE + f"telemetry: {{protocol: grpc, endpoint: {json.dumps(target)}}}\n")
    assert problems == [f"telemetry.endpoint: a dns: endpoint is dns:///host:port: {said}"]


@pytest.mark.parametrize(
    "address",
    ["::1:8001", "[::1]:8001", "[fe80::1%eth0]:8001", "fe80::1%eth0:8001", "2001:db8::1:8001", "my_host:8001",
     "bücher.example:8001", "नमस्ते.example:8001", "cafe\u0301.example:8001", "triton.:8001", "0.0.0.0:8001",
     "localhost:8001", "otel-collector.monitoring.svc:8001", "triton-:8001", "-triton:8001"],
)  # fmt: skip
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_an_address_of_a_host_loads(config: str, path: str, address: str) -> None:
    """A name (an IDN's, one whose letters hold a combining mark too, a Devanagari vowel sign's, `नमस्ते`, or a
    decomposed accent's, which Python's sockets write as the idna codec does, `xn--...`; a compose service's `_`), an
    IPv4 address, an IPv6 one in brackets or without them (read as its address and the port after its last `:`, as
    before), with a zone; but for an OTLP/gRPC endpoint, whose exporter gives it to grpc as written, which reads an IPv6
    address without brackets whole, on port 443 (refused as before, now saying so)."""
    if path == "telemetry.endpoint" and ":" in address.rpartition(":")[0] and not address.startswith("["):
        assert _problems(config % json.dumps(address)) == [
            f"{path}: an IPv6 address is written in brackets, [::1]:4317: grpc reads {address!r} as one address, on "
            "its default port"
        ]
    else:
        assert parse(config % json.dumps(address), env={})


def test_check_lists_each_address_whose_host_no_resolver_finds(tmp_path: Path) -> None:
    """Through the CLI: `check` says each at its key, the password hidden, exit 1."""
    config = tmp_path / "proxy.yaml"
    config.write_text('listen: {http: "c:8080:8080", grpc: "root:cafe:8001"}\n'
                      'upstreams: [{name: u, protocol: oip, grpc: "admin:s3cret:8001"}]\n' + ROUTES +
                      'telemetry: {protocol: grpc, endpoint: "dns:///c,d:4317"}\n')  # fmt: skip
    root = str(Path(__file__).parent.parent)  # this tree's proxy, not the one installed
    done = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(config)], capture_output=True,
                          text=True, timeout=60, cwd=root, env={**os.environ, "PYTHONPATH": root})  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in said and "s3cret" not in said and "cafe" not in said, said
    assert "listen.grpc: " + COLON.format(port=8001, shown="root:***:8001", to="host:port") in said, said
    assert "listen.http: " + COLON.format(port=8080, shown="c:8080:8080", to="c:8080") in said, said
    assert "upstreams[0].grpc: " + COLON.format(port=8001, shown="admin:***:8001", to="host:port") in said, said
    assert "telemetry.endpoint: a dns: endpoint is dns:///host:port: an address names one host" in said, said


@pytest.mark.parametrize(
    ("address", "to"),
    [("dns:triton:8001", "triton:8001"), ("ipv4:10.0.0.5:8001", "10.0.0.5:8001"), ("ipv6:[::1]:8001", "[::1]:8001"),
     ("DNS:triton:8001", "triton:8001")],
)  # fmt: skip
@pytest.mark.parametrize(("config", "path"), PLACES[:3], ids=IDS[:3])
def test_an_address_written_as_a_grpc_target_is_said_so(config: str, path: str, address: str, to: str) -> None:
    """A target of grpc's resolvers (`dns:triton:8001`, which an OTLP/gRPC endpoint may be) where an address is
    host:port: said with the host:port to write, not as a host holding a `:` that is no IPv6 address's."""
    assert _problems(config % json.dumps(address)) == [
        f"{path}: an address is host:port, without a gRPC target's scheme ({address.partition(':')[0]}:), got "
        f"{address!r} (write {to!r})"
    ]
