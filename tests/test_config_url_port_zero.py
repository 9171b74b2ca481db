"""A URL's port 0 is a problem at every URL key (an upstream's `url`, the telemetry endpoints over either protocol,
OpenLineage's `url`), said as a host:port's is (`collector:0`: `the port must be 1-65535, got 0`): no reader connects
to port 0, and the gRPC span exporter read the 0 as no port (`parts.port or 4317`) and sent to 4317 (443 for
`https://`), where opentelemetry-exporter-otlp-proto-grpc gives grpc the netloc, `collector:0`. Until 2026-12-07 each
loaded (review revconfig17)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

UPSTREAM = "http://127.0.0.1:9"
BASE = (
    "listen:\n  http: 127.0.0.1:0\nupstreams:\n  - name: u\n    url: {url}\nroutes:\n  - model: '*'\n    upstream: u\n"
)
# the key, the config text after BASE holding {url}, and the URL as the problem shows it
WHERE = {
    "upstreams[0].url": ("", "{url}"),
    "telemetry.endpoint": ("telemetry:\n  protocol: grpc\n  endpoint: '{url}'\n", "{url}"),
    "telemetry.traces_endpoint": (
        "telemetry:\n  protocol: http/protobuf\n  traces_endpoint: '{url}/v1/traces?key=s3cret'\n",
        "{url}/v1/traces?***",
    ),
    "lineage.openlineage.url": ("lineage:\n  openlineage:\n    url: '{url}'\n", "{url}"),
}


def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, env=clean)  # fmt: skip


@pytest.mark.parametrize("url", ["http://collector:0", "https://collector:00", "http://[::1]:0"])
@pytest.mark.parametrize("key", WHERE)
def test_a_urls_port_0_is_a_problem_at_every_url_key(tmp_path: Path, key: str, url: str) -> None:
    after, shown = WHERE[key]
    upstream = url if key == "upstreams[0].url" else UPSTREAM
    result = check(tmp_path, BASE.format(url=upstream) + after.format(url=url))
    port = url.rpartition(":")[2]
    said = f"  {key}: the port must be 1-65535, got {port} in {shown.format(url=url)!r}"
    assert (result.returncode, result.stderr.splitlines()[1:]) == (1, [said]), result.stderr


@pytest.mark.parametrize("key", WHERE)
def test_ports_1_and_65535_load(tmp_path: Path, key: str) -> None:
    after, _ = WHERE[key]
    for url in ("http://collector:1", "http://collector:65535"):
        upstream = url if key == "upstreams[0].url" else UPSTREAM
        result = check(tmp_path, BASE.format(url=upstream) + after.format(url=url))
        assert result.returncode == 0, result.stderr
