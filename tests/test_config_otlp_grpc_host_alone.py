"""`telemetry.endpoint` over gRPC is one of a gRPC target's forms, as `lineage-proxy check` says it: host:port, an
http(s):// URL, or a target of dns:, ipv4:, ipv6:, unix:. A host alone (`notaurl`, `collector`) is none: grpc reads it
on port 443, the OpenTelemetry SDKs pass it so, and this exporter sent to 4317. Until 2026-12-07 it loaded unsaid,
where http/protobuf refused it (`expected an http:// or https:// URL, got 'notaurl'`); now refused in those words."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE = "listen:\n  http: 127.0.0.1:0\nupstreams:\n  - name: u\n    url: http://127.0.0.1:9\nroutes:\n  - model: '*'\n" \
       "    upstream: u\n"  # fmt: skip
SAID = ("telemetry.endpoint: expected host:port, an http:// or https:// URL or a gRPC target (dns:, ipv4:, ipv6:, "
        "unix:, unix-abstract:), got {!r}: a host alone names no port (OTLP/gRPC's is 4317)")  # fmt: skip


def check(tmp_path: Path, text: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, env={**os.environ, **env})  # fmt: skip


@pytest.mark.parametrize("endpoint", ["notaurl", "collector", "otel.example.com", "127.0.0.1", "[::1]"])
def test_a_host_alone_is_refused_over_grpc(tmp_path: Path, endpoint: str) -> None:
    result = check(tmp_path, BASE + f"telemetry:\n  protocol: grpc\n  endpoint: '{endpoint}'\n")
    assert (result.returncode, result.stderr.splitlines()[1:]) == (1, ["  " + SAID.format(endpoint)])


def test_http_protobuf_says_it_in_the_same_words(tmp_path: Path) -> None:
    result = check(tmp_path, BASE + "telemetry:\n  protocol: http/protobuf\n  endpoint: notaurl\n")
    assert (result.returncode, result.stderr.splitlines()[1:]) == (
        1, ["  telemetry.endpoint: expected an http:// or https:// URL, got 'notaurl'"])  # fmt: skip


def test_from_the_environment_too(tmp_path: Path) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT is read by the same check where the file names no endpoint."""
    result = check(tmp_path, BASE, OTEL_EXPORTER_OTLP_ENDPOINT="notaurl", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    assert result.returncode == 1 and SAID.format("notaurl").split(": ", 1)[1] in result.stderr, result.stderr


@pytest.mark.parametrize("endpoint", ["collector:4317", "https://collector", "https://collector:4317",
                                      "dns:///collector:4317", "ipv4:127.0.0.1:4317", "ipv6:[::1]:4317",
                                      "unix:/run/otel.sock", "[::1]:4317", "unix-abstract:otel",
                                      "unix:///run/otel.sock", "localhost:4317"])  # fmt: skip
def test_each_grpc_target_form_loads(tmp_path: Path, endpoint: str) -> None:
    result = check(tmp_path, BASE + f"telemetry:\n  protocol: grpc\n  endpoint: '{endpoint}'\n")
    assert result.returncode == 0, result.stderr
