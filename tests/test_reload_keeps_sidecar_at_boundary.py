"""`lineage.sidecar` is read at start only (a reload that changes it is warned of: "takes effect on restart only"):
the store goes on recording under the name the process started with. The boundary verifier's baseline, resolved
for its sidecar once per loaded config, must be resolved for that same name after a reload, or it approves at the
boundary what `verify` calls unapproved (and refuses what `verify` approves)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from tests.harness import LoopThread, ProxyHandle, proxy_error
from tests.servers.vllm_like import VllmLike

CONFIG = """listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llama, url: "{upstream}"}}]
routes: [{{model: "*", upstream: llama}}]
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: none}}
lineage: {{store: "{store}", baseline: {baseline}, on_unapproved: block, sidecar: {sidecar}, flush_interval_s: 0.05}}
"""
ONLY_B = """version: 1
flows:
  - caller: anonymous
    purpose: assistant
    sidecars: ["model-b"]
"""
BODY = {"model": "anything", "messages": [{"role": "user", "content": "hi"}]}


def test_a_reload_renaming_the_sidecar_keeps_the_boundary_judging_as_the_store_records(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], loop_thread: LoopThread, tmp_path: Path
) -> None:
    _, upstream = vllm
    baseline, store, path = tmp_path / "baseline.yaml", tmp_path / "lineage.db", tmp_path / "proxy.yaml"
    baseline.write_text(ONLY_B)
    proxy = make_proxy(CONFIG.format(upstream=upstream, store=store, baseline=baseline, sidecar="model-b"))
    assert httpx.post(f"{proxy.url}/v1/chat/completions", json=BODY, timeout=10).status_code == 200

    # renamed in the file: warned of, applied at the next restart only; the store still records as model-b
    path.write_text(CONFIG.format(upstream=upstream, store=store, baseline=baseline, sidecar="model-a"))

    async def reload() -> bool:
        return proxy.process.reload(str(path))

    assert loop_thread.run(reload())
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=BODY, timeout=10)
    assert reply.status_code == 200, proxy_error(reply)  # before: 403 flow_not_approved "sidecar 'model-a'"
    assert proxy.process.config.lineage.sidecar == "model-b"

    # and the other way: a flow approved only for the new name is not let through by a sidecar still recording as
    # model-b (verify would call it unapproved)
    baseline.write_text(ONLY_B.replace('"model-b"', '"model-a"'))
    assert loop_thread.run(reload())
    refused = httpx.post(f"{proxy.url}/v1/chat/completions", json=BODY, timeout=10)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "flow_not_approved", refused.text
