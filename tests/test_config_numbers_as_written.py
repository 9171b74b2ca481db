"""A value YAML reads as a number where the config expects text is the text written, as the baseline reads it.

PyYAML resolves an unquoted `2024.10` to the float 2024.1, `0755` to the octal 493 and `1:30` to the sexagesimal 90;
the loader took `str()` of that number. A zone written `labels: [2024.10]` then held the label `2024.1`, and a call
sending `x-data-labels: 2024.10` (the label as written) carried no zoned label: it reached the model for a purpose
the zone forbids. A route `model: 1.10` limited the purposes of model `1.1`, not of the model asked for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from proxy.config import parse

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: u, url: "http://127.0.0.1:9", region: 01}]
routes:
  - {model: 1.10, upstream: u, purposes: [assistant]}
  - {model: "*", upstream: u}
callers:
  - {name: app, api_key_sha256: %s, purposes: [1.50, assistant], labels: [0755]}
zones:
  - {name: z, labels: [2024.10, 0755, 1:30], allow_purposes: [assistant], regions: [01]}
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: null}
telemetry: {headers: {x-api-version: 2024.10}, resource_attributes: {deployment.version: 1.20}}
""" % ("ab" * 32)


def test_numbers_where_text_is_expected_are_the_text_written() -> None:
    config = parse(CONFIG, env={})
    assert config.zones[0].labels == frozenset({"2024.10", "0755", "1:30"})
    assert config.zones[0].regions == frozenset({"01"}) and config.upstreams[0].region == "01"
    assert config.routes[0].model == "1.10"
    assert config.callers[0].purposes == frozenset({"1.50", "assistant"})
    assert config.callers[0].labels == frozenset({"0755"})
    assert dict(config.telemetry.headers) == {"x-api-version": "2024.10"}
    assert dict(config.telemetry.resource_attributes) == {"deployment.version": "1.20"}


def test_numbers_elsewhere_are_still_numbers() -> None:
    config = parse(CONFIG + "limits: {drain_timeout_s: 2.50, max_connections: 0x40}\n", env={})
    assert config.limits.drain_timeout_s == 2.5 and config.limits.max_connections == 64


def test_a_zoned_label_written_as_a_number_is_enforced(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG)
    explain = [sys.executable, "-m", "proxy", "check", "--config", str(path), "--explain", "--purpose", "ads"]
    for label in ("2024.10", "0755", "1:30"):
        result = subprocess.run([*explain, "--labels", label], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (label, result.stdout, result.stderr)  # denied: zone z allows assistant only
        assert "rule:      zone:z" in result.stdout
