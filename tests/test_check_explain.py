"""`check --explain` says what `serve` does with a call whose checkpoint only the upstream's metadata can name:
with `lineage.on_unapproved: block` and no baseline entry approving any checkpoint, serve refuses it (503
checkpoint_unknown) until the metadata names one; explain said "approved: yes" (exit 0) for the same call."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.harness import ProxyHandle
from tests.servers.vllm_like import ROOT, SERVED, VllmLike

BASELINE = """version: 1
flows:
  - caller: anonymous
    purpose: assistant
    checkpoints: ["{checkpoint}"]
"""

CONFIG = """listen: {{http: "127.0.0.1:0"}}
upstreams:
  - name: llama
    url: "{upstream}"
    protocol: {protocol}
routes:
  - model: "*"
    upstream: llama
policy:
  mode: {policy}
  anonymous: allow
  default_purpose: assistant
telemetry: {{exporter: none}}
lineage:
  store: null
  baseline: {baseline}
  on_unapproved: {mode}
"""


def explain(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(config), "--explain", *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def write(tmp_path: Path, upstream: str, *, mode: str = "block", protocol: str = "openai",
          checkpoint: str = ROOT, policy: str = "enforce") -> Path:  # fmt: skip
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(BASELINE.format(checkpoint=checkpoint))
    config = tmp_path / f"{mode}-{protocol}-{policy}.yaml"
    config.write_text(CONFIG.format(upstream=upstream, protocol=protocol, baseline=baseline, mode=mode, policy=policy))
    return config


def test_explain_refuses_an_unnamed_checkpoint_as_serve_does(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    _, upstream = vllm
    config = write(tmp_path, upstream)
    proxy = make_proxy(config.read_text())
    served = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "unlisted", "messages": []}, timeout=10)
    assert served.status_code == 503 and served.json()["error"]["code"] == "checkpoint_unknown"
    listed = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": SERVED, "messages": []}, timeout=10)
    assert listed.status_code == 200 and listed.headers["x-lineage-checkpoint"] == ROOT

    said = explain(config, "--model", "unlisted")
    assert said.returncode == 2, said.stdout + said.stderr
    assert "decision:  deny" in said.stdout and "code:      checkpoint_unknown" in said.stdout
    assert "Until llama's metadata names it, serve refuses this call: 503 checkpoint_unknown" in said.stdout
    # as serve answers a name the metadata, asked, does not list (a typo) since 2026-12-05
    assert "once its metadata, asked about the model, does not list it, 404 model_not_found" in said.stdout
    assert f"approved:  once the metadata names one of: {ROOT}" in said.stdout
    assert "approved:  yes" not in said.stdout
    # the checkpoint the metadata names, given: decided on it, as serve decides once it is known
    named = explain(config, "--model", SERVED, "--checkpoint", ROOT)
    assert named.returncode == 0 and "approved:  yes" in named.stdout and f"checkpoint: {ROOT}" in named.stdout
    other = explain(config, "--model", SERVED, "--checkpoint", "other/weights")
    assert other.returncode == 2 and "code:      flow_not_approved" in other.stdout
    audit = explain(write(tmp_path, upstream, policy="audit"), "--model", "unlisted")  # serve forwards it, marked
    assert audit.returncode == 0 and "decision:  audit-deny" in audit.stdout, audit.stdout
    assert "serve forwards this call as audit-deny (enforced: 503 checkpoint_unknown)" in audit.stdout


def test_explain_approves_where_the_checkpoint_cannot_change_the_verdict(tmp_path: Path) -> None:
    """Approved for any checkpoint, warn mode, or an upstream whose metadata names none: serve forwards it."""
    anything = write(tmp_path, "http://127.0.0.1:1", checkpoint="*")
    said = explain(anything, "--model", "unlisted")
    assert said.returncode == 0 and "approved:  yes" in said.stdout, said.stdout
    warn = write(tmp_path, "http://127.0.0.1:1", mode="warn")
    said = explain(warn, "--model", "unlisted")
    assert said.returncode == 0 and "approved:  yes" in said.stdout, said.stdout
    assert "serve takes it from upstream llama's metadata" in said.stdout
    passthrough = write(tmp_path, "http://127.0.0.1:1", protocol="passthrough")
    said = explain(passthrough, "--model", "unlisted")
    assert said.returncode == 0 and "not known before the reply (any approved one fits)" in said.stdout, said.stdout


def test_explain_normalises_the_purpose_as_serve_normalises_x_purpose(tmp_path: Path) -> None:
    """serve reads `x-purpose: Assistant` as `assistant` (labels.normalize); explain decided `Assistant` as given."""
    config = write(tmp_path, "http://127.0.0.1:1", mode="warn")
    said = explain(config, "--model", "m", "--purpose", " Assistant")
    assert said.returncode == 0, said.stdout
    assert "purpose:   assistant" in said.stdout and "approved:  yes" in said.stdout, said.stdout
    bad = explain(config, "--purpose", "a b")
    assert bad.returncode == 1 and "--purpose: invalid purpose 'a b'" in bad.stderr


def test_explain_says_which_listener_an_upstream_speaking_one_protocol_serves(tmp_path: Path) -> None:
    """A call routed to an upstream that speaks gRPC only is refused on the HTTP listener (and the reverse), which
    explain, deciding the call without a listener, said `allow` to with nothing more."""
    config = tmp_path / "one-each.yaml"
    config.write_text("""listen: {http: "127.0.0.1:0", grpc: "127.0.0.1:0"}
upstreams:
  - {name: triton, grpc: "127.0.0.1:8001", protocol: oip}
  - {name: vllm, url: "http://127.0.0.1:8000"}
routes: [{model: iris, upstream: triton}, {model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: null}
""")
    grpc_only = explain(config, "--model", "iris")
    assert grpc_only.returncode == 0, grpc_only.stderr
    assert "listener:  gRPC only: on the HTTP listener this call is refused" in grpc_only.stdout
    assert "rule upstream:triton" in grpc_only.stdout
    http_only = explain(config, "--model", "llama")
    assert "listener:  HTTP only: on the gRPC listener this call is refused" in http_only.stdout
