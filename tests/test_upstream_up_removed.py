"""`lineage_proxy_upstream_up{upstream}` names the upstreams of the config in force: one a reload removes (or
renames) is no longer reported. Its last value stayed on /metrics until a restart, an alert on
`lineage_proxy_upstream_up == 0` firing for an upstream no longer configured while /readyz said ready."""

from __future__ import annotations

from pathlib import Path

from tests.harness import LoopThread, dead_port

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: vllm, url: "URL", protocol: openai}
GONE
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: null}
"""


def test_an_upstream_a_reload_removes_is_not_reported_down(make_proxy, vllm, loop_thread: LoopThread,
                                                            tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    _, url = vllm
    gone = f'  - {{name: old, url: "http://127.0.0.1:{dead_port()}", protocol: openai}}'
    proxy = make_proxy(CONFIG.replace("URL", url).replace("GONE", gone), wait="probed")
    before = proxy.process.metrics_text()
    assert 'lineage_proxy_upstream_up{upstream="old"} 0' in before
    assert 'lineage_proxy_upstream_up{upstream="vllm"} 1' in before
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG.replace("URL", url).replace("GONE", ""))

    async def reload() -> bool:
        return bool(proxy.process.reload(str(path)))

    assert loop_thread.run(reload())
    after = proxy.process.metrics_text()
    assert 'upstream="old"' not in after
    assert 'lineage_proxy_upstream_up{upstream="vllm"} 1' in after  # kept from the book the reload replaced
    ok, detail = proxy.process.ready()
    assert ok and detail["upstreams_down"] == []
