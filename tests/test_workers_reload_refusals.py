"""A `--workers` supervisor's reload (`as_reloaded`, on its load's thread: `run_workers.follow_reload`) follows the rule
its workers' reloads follow (`server.reload_refusal`, `_unmade`, the span exporter's): a file the config names, renewed
badly after the loader read it (half written), refuses the reload in both. The supervisor read no file: it applied
the reload its workers refused, and a worker restarted later ran the new config (with the broken file: or failed its
every start) while its siblings kept the old.

Each file is broken between the load and the reload's read of it, as a renewal written in place breaks it."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import Config, load
from proxy.server import ReloadFiles, _unmade, as_reloaded, reload_refusal
from tests.certs import Authority
from tests.harness import dead_port

CONFIG = """
listen: {http: 127.0.0.1:0, tls: {cert: "CERT", key: "KEY"}}
upstreams:
  - {name: hosted, url: "https://localhost:HTTPS_PORT", tls: {ca: "HTTPS_CA"}}
  - {name: triton, protocol: oip, grpc: "127.0.0.1:1", tls: {ca: "GRPC_CA"}}
routes: [{model: "*", upstream: hosted}]
policy: {anonymous: allow, default_purpose: PURPOSE}
TELEMETRY
"""

# each file the reload reads again, and its config's words for it when it cannot be used
BROKEN = {
    "listener certificate": ("cert.pem", "listen.tls: cannot use the certificate, key or client_ca now"),
    "gRPC upstream's CA": ("grpc-ca.pem", "Problems: upstreams[1].tls: cannot use the ca, cert or key"),
    "HTTPS upstream's CA": ("https-ca.pem", "Problems: upstreams[0].tls: cannot use the ca, cert or key"),
    "span exporter's CA bundle": ("collector-ca.pem", "telemetry: cannot build the span exporter"),
}


def _configs(tmp_path: Path) -> tuple[Config, Path]:
    """The config the workers run (no span exporter), and a reload of it (another purpose, an exporter over TLS)."""
    ca = Authority(tmp_path)
    server = ca.issue("listener", common_name="localhost", server=True)
    for name in ("grpc-ca.pem", "https-ca.pem", "collector-ca.pem"):
        (tmp_path / name).write_bytes(ca.pair.cert.read_bytes())
    (tmp_path / "cert.pem").write_bytes(Path(server.cert).read_bytes())
    text = (CONFIG.replace("CERT", str(tmp_path / "cert.pem")).replace("KEY", str(server.key))
            .replace("HTTPS_PORT", str(dead_port())).replace("HTTPS_CA", str(tmp_path / "https-ca.pem"))
            .replace("GRPC_CA", str(tmp_path / "grpc-ca.pem")))  # fmt: skip
    running = tmp_path / "running.yaml"
    running.write_text(text.replace("PURPOSE", "assistant").replace("TELEMETRY", ""))
    changed = tmp_path / "changed.yaml"
    telemetry = (f'telemetry: {{exporter: otlp, protocol: http/protobuf, endpoint: "https://127.0.0.1:{dead_port()}",'
                 f' certificate: "{tmp_path / "collector-ca.pem"}"}}')  # fmt: skip
    changed.write_text(text.replace("PURPOSE", "support").replace("TELEMETRY", telemetry))
    return load(str(running)), changed


def test_the_supervisor_applies_a_reload_whose_files_are_usable(tmp_path: Path) -> None:
    current, changed = _configs(tmp_path)
    reloaded = as_reloaded(current, load(str(changed)))
    assert reloaded is not None and reloaded.policy.default_purpose == "support"


@pytest.mark.parametrize("broken", list(BROKEN))
def test_the_supervisor_refuses_a_reload_its_workers_refuse_for_a_file_renewed_badly(
    tmp_path: Path, broken: str
) -> None:
    current, changed = _configs(tmp_path)
    new = load(str(changed))  # the loader read the file whole
    name, said = BROKEN[broken]
    (tmp_path / name).write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB")  # then its renewal, half written
    files = ReloadFiles.in_supervisor(current, new)  # read as a worker's reload reads them
    why = reload_refusal(current, current.lineage.store, new, files) or files.unbuilt or _unmade(new.upstreams, files)
    assert why is not None and why.startswith(said), why
    # (before: applied, the new config for every worker started since, its siblings on the old)
    assert as_reloaded(current, new) is None


def test_after_a_reload_changing_telemetry_metrics_the_supervisor_decides_the_exporter_as_its_workers(
    tmp_path: Path,
) -> None:
    """telemetry.metrics applies on restart only: the supervisor keeps it as it started (`as_reloaded`), its workers'
    config takes the reload's. A later reload leaving the span exporter's settings as they were builds no exporter in
    a worker (its bundle not read): the supervisor read it all the same, against its kept `metrics`, and refused the
    reload the workers applied (a bundle renewed badly meanwhile): a worker restarted later ran the old config."""
    current, changed = _configs(tmp_path)
    text = changed.read_text()
    changed.write_text(text.replace("telemetry: {", "telemetry: {metrics: false, "))
    first = load(str(changed))
    assert first.telemetry.metrics != current.telemetry.metrics
    running = as_reloaded(current, first)
    assert running is not None and running.telemetry.metrics == current.telemetry.metrics
    changed.write_text(changed.read_text().replace("support", "billing"))
    later = load(str(changed))
    assert later.telemetry == first.telemetry  # the workers' exporter stays: nothing for them to build or read
    (tmp_path / "collector-ca.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB")  # renewed badly meanwhile
    reloaded = as_reloaded(running, later)
    assert reloaded is not None and reloaded.policy.default_purpose == "billing"
