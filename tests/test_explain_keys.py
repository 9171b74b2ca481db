"""`check --explain --key K` decides the call serve decides for `Authorization: Bearer K`: where no caller has a
key, serve reads none (the call is anonymous, its Authorization the upstream's business, passed on), so explain
said "deny invalid_api_key" (or audit-deny, rule `callers`, caller `(unknown key)`) for a call serve forwards."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.harness import ProxyHandle
from tests.servers.vllm_like import VllmLike

CONFIG = """listen: {{http: "127.0.0.1:0"}}
upstreams:
  - name: llama
    url: "{upstream}"
routes:
  - model: "*"
    upstream: llama
policy:
  mode: {mode}
  anonymous: {anonymous}
  default_purpose: assistant
telemetry: {{exporter: none}}
lineage: {{store: null}}
"""


def explain(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(config), "--explain", *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def field(said: subprocess.CompletedProcess[str], name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in said.stdout.splitlines() if line.startswith(f"{name}:"))


def test_a_key_no_caller_reads_is_explained_as_serve_takes_it(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    server, upstream = vllm
    for mode in ("enforce", "audit"):
        config = tmp_path / f"{mode}.yaml"
        config.write_text(CONFIG.format(upstream=upstream, mode=mode, anonymous="allow"))
        proxy = make_proxy(config.read_text())
        server.requests.clear()
        served = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"authorization": "Bearer upstream-key"},
                            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)  # fmt: skip
        assert served.status_code == 200 and served.headers["x-lineage-decision"] == "allow", served.text
        assert server.data_requests()[-1].headers["Authorization"] == "Bearer upstream-key"  # the upstream's key

        said = explain(config, "--model", "m", "--key", "upstream-key")
        assert said.returncode == 0, said.stdout + said.stderr
        assert field(said, "decision") == "allow" and field(said, "caller") == "anonymous", said.stdout
        assert field(said, "upstream") == "llama"


def test_a_key_where_anonymous_calls_are_denied_and_no_caller_has_one(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    _, upstream = vllm
    config = tmp_path / "deny.yaml"
    config.write_text(CONFIG.format(upstream=upstream, mode="enforce", anonymous="deny"))
    proxy = make_proxy(config.read_text())
    served = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"authorization": "Bearer some-key"},
                        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)  # fmt: skip
    assert served.status_code == 401 and "missing API key" in served.json()["error"]["message"], served.text

    said = explain(config, "--model", "m", "--key", "some-key")
    assert said.returncode == 2, said.stdout + said.stderr
    assert field(said, "rule") == "policy.anonymous" and field(said, "caller") == "anonymous", said.stdout
    assert field(said, "reason").startswith("missing API key"), said.stdout
