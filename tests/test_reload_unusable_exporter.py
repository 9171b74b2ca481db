"""A reload whose span exporter cannot be built (`telemetry.certificate` names no readable CA bundle) is
refused whole, as an invalid config is: logged, counted as refused, and nothing of it applied (neither the
policy, nor the limits, nor the exporter). Half applied, the policy stayed the old one (a zone the new
config adds was not in force) while the limits changed, with a traceback instead of a refusal."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.harness import LoopThread
from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: origin, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: origin}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: otlp, protocol: http/protobuf, endpoint: "http://127.0.0.1:9"}
lineage: {store: "${STORE}"}
"""
# the reload: a zone that refuses `secret` data to every purpose, a body limit, and an exporter over TLS whose
# CA bundle is missing
RELOADED = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: origin, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: origin}]
policy: {anonymous: allow, default_purpose: assistant}
zones: [{name: closed, labels: [secret], allow_purposes: [nobody]}]
limits: {max_body_bytes: 1000}
telemetry: {exporter: otlp, protocol: ${PROTOCOL}, endpoint: "https://127.0.0.1:9", certificate: "${CA}"}
lineage: {store: "${STORE}"}
"""


def reload(proxy, loop_thread: LoopThread, path: Path) -> bool:  # type: ignore[no-untyped-def]
    async def run() -> bool:
        return bool(proxy.process.reload(str(path)))

    return loop_thread.run(run())


def secret_call(base: str, size: int = 10) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", timeout=10, headers={"x-data-labels": "secret"},
                      json={"model": SERVED, "messages": [{"role": "user", "content": "x" * size}]})  # fmt: skip


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_reload_whose_exporter_cannot_be_built_is_refused_whole(  # type: ignore[no-untyped-def]
    vllm, make_proxy, loop_thread, tmp_path: Path, caplog, protocol: str
) -> None:
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    spans = proxy.process.runtime.sinks.get("spans")
    text = RELOADED
    for name, value in {"UPSTREAM": upstream, "STORE": str(tmp_path / "lineage.db"), "PROTOCOL": protocol,
                        "CA": str(tmp_path / "missing-ca.pem")}.items():  # fmt: skip
        text = text.replace("${" + name + "}", value)
    path = tmp_path / "reloaded.yaml"
    path.write_text(text)
    with caplog.at_level("INFO", logger="lineage_proxy"):
        applied = reload(proxy, loop_thread, path)
    assert applied is False
    assert [r for r in caplog.records if r.getMessage().startswith("reload refused")]
    assert re.search(
        r'^lineage_proxy_config_reloads_total\{result="refused"\} 1$',
        proxy.process.metrics_text(),
        re.M,
    )
    # nothing of it applied: the old policy, limits and exporter are all in force
    assert proxy.process.runtime.sinks.get("spans") is spans
    assert secret_call(proxy.url, size=5000).status_code == 200
