"""`check --explain` names the listener that refuses a call only when the config has that listener.

config/minimal.yaml, the README's first config, has an HTTP listener and an HTTP upstream: every explained call
ended `listener:  HTTP only: on the gRPC listener this call is refused (502 / UNAVAILABLE ...)`, about a gRPC
listener the config does not have (no `listen.grpc`), so no call of it can be refused there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def explain(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(config), "--explain", *args],
                          capture_output=True, text=True, timeout=60, env={"PATH": "", "PYTHONPATH": str(ROOT)})  # fmt: skip


def test_the_minimal_config_explained_names_no_grpc_listener() -> None:
    said = explain(ROOT / "config" / "minimal.yaml")
    assert said.returncode == 0, said.stderr
    assert "upstream:  vllm" in said.stdout
    assert "listener:" not in said.stdout, said.stdout


def test_a_grpc_only_upstream_is_still_said_to_be_refused_on_the_http_listener(tmp_path: Path) -> None:
    config = tmp_path / "grpc-only.yaml"
    config.write_text("""listen: {http: "127.0.0.1:0"}
upstreams: [{name: triton, grpc: "127.0.0.1:8001", protocol: oip}]
routes: [{model: "*", upstream: triton}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: null}
""")
    said = explain(config, "--model", "iris")
    assert said.returncode == 0, said.stderr
    assert "listener:  gRPC only: on the HTTP listener this call is refused" in said.stdout, said.stdout
