"""`telemetry.endpoint: http://collector` over gRPC, a URL naming no port, is refused by `lineage-proxy check`: the
OpenTelemetry Python SDK's gRPC exporter (opentelemetry-exporter-otlp-proto-grpc, `OTLPExporterMixin.__init__`) keeps
the URL's `netloc` alone, `collector`, and gives it to grpc, whose default port is 443 (grpc's doc/naming.md); this
proxy's exporter sent to 4317. One URL read on two ports loses spans whichever the collector listens on, so it is said,
with the URL to write. Until 2026-12-07 it loaded unsaid. https:// without a port is 443 to both (loads)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE = "listen:\n  http: 127.0.0.1:0\nupstreams:\n  - name: u\n    url: http://127.0.0.1:9\nroutes:\n  - model: '*'\n" \
       "    upstream: u\n"  # fmt: skip
SAID = ("{key}: {url!r} names no port: OpenTelemetry's gRPC exporter sends an http:// URL without one to 443, grpc's "
        "default, not to OTLP/gRPC's 4317; write {write!r}, or the port the collector listens on")  # fmt: skip


def check(tmp_path: Path, text: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, env={**clean, **env})  # fmt: skip


@pytest.mark.parametrize(
    ("url", "write"),
    [
        ("http://collector", "http://collector:4317"),
        ("http://collector/", "http://collector:4317"),
        ("HTTP://collector", "http://collector:4317"),
        ("http://10.0.0.5", "http://10.0.0.5:4317"),
        ("http://[::1]", "http://[::1]:4317"),
    ],
)
def test_an_http_url_without_a_port_is_refused_over_grpc(tmp_path: Path, url: str, write: str) -> None:
    result = check(tmp_path, BASE + f"telemetry:\n  protocol: grpc\n  endpoint: '{url}'\n")
    said = SAID.format(key="telemetry.endpoint", url=url, write=write)
    assert (result.returncode, result.stderr.splitlines()) == (1, [f"lineage-proxy check: {tmp_path / 'config.yaml'}: invalid "
                                                                   "configuration:", f"  {said}"])  # fmt: skip


@pytest.mark.parametrize("key", ["endpoint", "traces_endpoint"])
@pytest.mark.parametrize(
    ("url", "write"), [("http://collector:", "http://collector:4317"), ("http://[::1]:/", "http://[::1]:4317")]
)
def test_a_colon_without_a_port_is_not_written_twice(tmp_path: Path, key: str, url: str, write: str) -> None:
    """`http://collector:` names no port either (grpc reads `collector:` on 443): the URL to write is `:4317` after
    the host, not after its `:` (review revconfig17: it said `write 'http://collector::4317'`, no URL)."""
    result = check(tmp_path, BASE + f"telemetry:\n  protocol: grpc\n  {key}: '{url}'\n")
    said = SAID.format(key=f"telemetry.{key}", url=url, write=write)
    assert (result.returncode, result.stderr.splitlines()[1:]) == (1, [f"  {said}"]), result.stderr


def test_from_the_environment_too(tmp_path: Path) -> None:
    result = check(tmp_path, BASE, OTEL_EXPORTER_OTLP_ENDPOINT="http://collector", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    said = SAID.format(key="telemetry.endpoint", url="http://collector", write="http://collector:4317")
    assert result.returncode == 1 and said.split(": ", 1)[1] in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("protocol", "url"),
    [("grpc", "http://collector:4317"), ("grpc", "https://collector"), ("http/protobuf", "http://collector")],
)
def test_a_port_written_https_or_http_protobuf_loads(tmp_path: Path, protocol: str, url: str) -> None:
    """https:// is 443 to OpenTelemetry's exporter and to this one; over http/protobuf a URL's port is its scheme's."""
    result = check(tmp_path, BASE + f"telemetry:\n  protocol: {protocol}\n  endpoint: '{url}'\n")
    assert result.returncode == 0, result.stderr
