"""`telemetry.certificate` is checked where every other file a config names is: `check`, `serve` and a reload
name it when it cannot be read or is not a PEM bundle. Unchecked, `check` passed it, `serve` stopped saying
"cannot open the lineage store ...: no such file or directory", and a reload raised half applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import load
from proxy.errors import ConfigError

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: origin, url: "http://127.0.0.1:9"}]
routes: [{model: "*", upstream: origin}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: otlp, protocol: PROTOCOL, endpoint: "https://127.0.0.1:9", certificate: "CA"}
lineage: {store: lineage.db}
"""


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_check_names_an_exporter_ca_bundle_it_cannot_use(tmp_path: Path, protocol: str) -> None:
    not_pem = tmp_path / "not-a-bundle.pem"
    not_pem.write_text("not a certificate\n")
    for ca, said in ((tmp_path / "missing-ca.pem", "cannot read"), (not_pem, "cannot use")):
        path = tmp_path / "config.yaml"
        path.write_text(CONFIG.replace("PROTOCOL", protocol).replace("CA", str(ca)))
        with pytest.raises(ConfigError) as caught:
            load(str(path))
        assert [p for p in caught.value.problems if p.startswith("telemetry.certificate") and said in p], (
            caught.value.problems
        )
