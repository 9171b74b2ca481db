"""Over OTLP/gRPC (`telemetry.protocol`'s default) the traces endpoint may be a `host:port`, as the OpenTelemetry
spec has a gRPC exporter take any form its gRPC client does (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector:4317`),
and the span exporter reads it so (`OtlpGrpcSink`). `check` refused such a config, and the proxy would not start
with it, once `telemetry.traces_endpoint` was checked as an http(s) URL; one whose port is none is still a problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.config import parse
from proxy.errors import ConfigError
from proxy.record.spans import make_sink

BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'
GRPC = {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ('telemetry: {exporter: otlp, traces_endpoint: "collector:4317"}\n', {}),
        ("", {**GRPC, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4317"}),
        ('telemetry: {exporter: otlp, protocol: grpc, traces_endpoint: "[::1]:4317"}\n', {}),
    ],
)
def test_a_host_and_port_is_a_grpc_traces_endpoint(text: str, env: dict[str, str]) -> None:
    telemetry = parse(BASE + text, env=env).telemetry
    assert telemetry.protocol == "grpc" and telemetry.traces_endpoint in ("collector:4317", "[::1]:4317")
    sink = make_sink(telemetry, b"", b"")
    assert sink is not None
    try:
        assert type(sink).__name__ == "OtlpGrpcSink"
    finally:
        sink.close()


@pytest.mark.parametrize("endpoint", ["collector:99999", "collector:abc", "[::1:4317"])
def test_a_grpc_traces_endpoint_whose_port_is_none_is_a_problem(endpoint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + f'telemetry: {{exporter: otlp, traces_endpoint: "{endpoint}"}}\n', env={})
    assert any(problem.startswith(("telemetry.traces_endpoint: expected", "telemetry.traces_endpoint: the port must be 1-65535"))
               for problem in caught.value.problems)  # fmt: skip


NO_HOST = "a host holds no '/', '?', '#' or white space, got "
DROPPED = (
    "an OTLP/gRPC endpoint is host:port or scheme://host:port, with no path, query or fragment (its exporter connects "
    "to the host and port alone, the rest dropped), got "
)


@pytest.mark.parametrize(
    ("endpoint", "said"),
    [
        ("gw/xyz/s3cret:4317", NO_HOST + "'***:4317'"),
        ("gw/xyz/s3cret", NO_HOST + "'***'"),
        # (as any URL's host holding white space since the reread of 2026-12-06: before, as a gRPC upstream's address)
        ("gate way:4317", "a host:port holds no white space in 'gate way:4317'"),
        # (until the reread of 2026-12-06 `expected host:port, got 'collector:4317/***'`, saying neither why nor what)
        ("collector:4317/v1/s3cret", DROPPED + "'collector:4317/***' (write 'collector:4317')"),
        ("collector:4317?key=s3cret", DROPPED + "'collector:4317?***' (write 'collector:4317')"),
        ("collector:4317/", DROPPED + "'collector:4317/' (write 'collector:4317')"),
    ],
)
@pytest.mark.parametrize("key", ["endpoint", "traces_endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
def test_a_grpc_endpoint_without_a_scheme_is_a_host_and_port_alone(key: str, endpoint: str, said: str) -> None:
    """Found reviewing urls2's change (2026-12-06): without a scheme, the exporter reads a `/`, `?` or `#` as the end
    of its host and port and drops the rest (`gw/xyz/s3cret:4317`: host `gw`, port 4317, what may be a token dropped;
    `collector:4317?key=...`: the key never sent), and a host holding white space is never resolved: they loaded.
    They are said as a gRPC upstream's address is (`parse_address`), what may be a token hidden."""
    env = {**GRPC, key: endpoint} if key.startswith("OTEL_") else {}
    text = "" if env else f'telemetry: {{exporter: otlp, protocol: grpc, {key}: "{endpoint}"}}\n'
    with pytest.raises(ConfigError) as caught:
        parse(BASE + text, env=env)
    path = "telemetry.traces_endpoint" if env else f"telemetry.{key}"
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}: {said}") and "s3cret" not in problem, problem


def test_a_grpc_endpoint_as_host_port_is_taken_as_the_traces_endpoint_is() -> None:
    """`telemetry.endpoint: collector:4317` under gRPC, which the exporter takes (as the traces endpoint's), was
    refused as no http:// URL; a port that is none still is."""
    base = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'
    taken = parse(base + "telemetry: {exporter: otlp, protocol: grpc, endpoint: collector:4317}\n", env={})
    assert taken.telemetry.endpoint == "collector:4317"
    with pytest.raises(ConfigError) as caught:
        parse(base + "telemetry: {exporter: otlp, protocol: grpc, endpoint: collector:99999}\n", env={})
    assert any(problem.startswith(("telemetry.endpoint: expected", "telemetry.endpoint: the port must be 1-65535"))
               for problem in caught.value.problems)  # fmt: skip


OVER_HTTP = "; or protocol: http/protobuf, whose endpoint is a URL, its path and query sent)"


@pytest.mark.parametrize(
    ("endpoint", "said"),
    [
        (
            "http://collector:4317/v1/traces",
            DROPPED + "'http://collector:4317/***' (write 'http://collector:4317'" + OVER_HTTP,
        ),
        (
            "http://collector:4317?x=s3cret",
            DROPPED + "'http://collector:4317?***' (write 'http://collector:4317'" + OVER_HTTP,
        ),
        (
            "https://collector/aB3/x+Yz/s3cret",
            DROPPED + "'https://collector/***' (write 'https://collector'" + OVER_HTTP,
        ),
        ("https://collector:4317#s3cret", DROPPED + "'https://collector:4317#***' (write 'https://collector:4317')"),
        # (a port after what may be a token: the first piece, `gw`, is what the exporter would resolve)
        ("http://gw/xyz/s3cret:4317", DROPPED + "'http://***' (write 'http://host:port'" + OVER_HTTP),
    ],
)
@pytest.mark.parametrize("key", ["endpoint", "traces_endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
def test_a_grpc_endpoint_with_a_scheme_holds_no_path_query_or_fragment(key: str, endpoint: str, said: str) -> None:
    """Found by the reread of 2026-12-06: the gRPC exporter connects to a URL's host and port alone (as
    opentelemetry-exporter-otlp-proto-grpc does, keeping its `netloc`), so a path, query or fragment loaded and was
    dropped unsaid, a collector's key in a query never sent, `http://collector:4318/v1/traces` (an OTLP/HTTP endpoint
    under the default protocol) spoken gRPC to, and the first piece of `http://gw/xyz/...:4317` resolved."""
    problems = _grpc_endpoint_problems(key, endpoint)
    path = "telemetry.traces_endpoint" if key.startswith("OTEL_") else f"telemetry.{key}"
    assert problems == [f"{path}: {said}"]


@pytest.mark.parametrize("endpoint", ["http://collector:4317/", "https://api.honeycomb.io/", "http://[::1]:4317"])
def test_a_grpc_endpoint_ending_in_a_slash_alone_loads(endpoint: str) -> None:
    """A `/` alone ends a URL's authority (`OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317/`): no path."""
    text = f'telemetry: {{exporter: otlp, protocol: grpc, traces_endpoint: "{endpoint}"}}\n'
    assert parse(BASE + text, env={}).telemetry.traces_endpoint == endpoint


def test_a_path_is_an_otlp_http_endpoints() -> None:
    """The same URL over OTLP/HTTP, whose exporter sends its path and query, loads as before."""
    text = 'telemetry: {exporter: otlp, protocol: http/protobuf, endpoint: "http://collector:4318/v1/traces?x=1"}\n'
    assert parse(BASE + text, env={}).telemetry.endpoint == "http://collector:4318/v1/traces?x=1"


def test_check_says_a_grpc_endpoints_path_is_dropped(tmp_path: Path) -> None:
    """`lineage-proxy check` says it so, through the CLI, and the mistyped port after a path's `@` too."""
    config = tmp_path / "proxy.yaml"
    config.write_text(BASE + 'telemetry: {exporter: otlp, endpoint: "http://collector:4317/v1/s3cret"}\n'
                      "lineage: {store: null, openlineage: {url: 'http://ops:12/s3cret@marquez:http'}}\n")  # fmt: skip
    root = str(Path(__file__).parent.parent)  # this tree's proxy, not the one installed
    done = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(config)], capture_output=True,
                          text=True, timeout=60, cwd=root, env={**os.environ, "PYTHONPATH": root})  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in said, said
    assert f"telemetry.endpoint: {DROPPED}'http://collector:4317/***' (write 'http://collector:4317'" in said, said
    assert "lineage.openlineage.url: a password holding '/' must be percent-encoded as %2F" in said, said
    assert "'http://ops:***@marquez:http'" in said and "s3cret" not in said, said


@pytest.mark.parametrize(
    ("endpoint", "said"),
    [
        # (until urls3's change `'collector :4317/***'`, said as an address; that change quoted the path)
        ("collector :4317/aB3/x+Yz/s3cret", "a host:port holds no white space in 'collector :4317/***'"),
        ("http://collector :4317/aB3/x+Yz/s3cret", "a host:port holds no white space in 'http://collector :4317/***'"),
        (
            "collector:\uff14\uff13\uff11\uff17/aB3/x+Yz/s3cret",  # (`４３１７`, fullwidth)
            "the port must be written in ASCII digits (0-9), got \uff14\uff13\uff11\uff17 in "
            "'collector:\uff14\uff13\uff11\uff17/***'",
        ),
        ("collector:99999/aB3/x+Yz/s3cret", "the port must be 1-65535, got 99999 in 'collector:99999/***'"),
        (
            "https://collector:99999/aB3/x+Yz/s3cret",
            "the port must be 1-65535, got 99999 in 'https://collector:99999/***'",
        ),
    ],
)
@pytest.mark.parametrize("key", ["endpoint", "traces_endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
def test_a_grpc_endpoint_refused_for_its_host_or_port_hides_its_path(key: str, endpoint: str, said: str) -> None:
    """Found reviewing urls3's change (2026-12-06): a gRPC endpoint's path is hidden wherever it is refused (an
    address's, `parse_address`; one with a scheme, `_grpc_dropped`), where a token may sit, but one refused for white
    space in its host:port, a port not ASCII's or out of range was quoted whole, path and all."""
    problems = _grpc_endpoint_problems(key, endpoint)
    path = "telemetry.traces_endpoint" if key.startswith("OTEL_") else f"telemetry.{key}"
    assert problems == [f"{path}: {said}"]
    assert not any("s3cret" in problem or "x+Yz" in problem for problem in problems)


def _grpc_endpoint_problems(key: str, endpoint: str) -> list[str]:
    """The problems of a config whose OTLP/gRPC endpoint, at `key` (a config key, or an `OTEL_` variable), is
    `endpoint`, which must be refused."""
    env = {**GRPC, key: endpoint} if key.startswith("OTEL_") else {}
    text = "" if env else f'telemetry: {{exporter: otlp, protocol: grpc, {key}: "{endpoint}"}}\n'
    with pytest.raises(ConfigError) as caught:
        parse(BASE + text, env=env)
    return list(caught.value.problems)
