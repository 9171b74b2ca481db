"""What `/healthz` and `/readyz` answer across reloads, as README's "Admin endpoints" says: a reload changes neither
by itself. One refused (a config with a problem, a file half written) leaves both as they were; one applied is answered
for: an upstream it adds is not ready until its metadata answers (named in `upstreams_down`), one it removes is no
longer reported, `/healthz` 200 throughout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.harness import LoopThread, ProxyHandle, dead_port

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}EXTRA]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: "STORE"}
"""
WITHIN = 10.0


def probes(url: str) -> tuple[int, int, dict[str, object]]:
    ready = httpx.get(f"{url}/readyz", timeout=5)
    return httpx.get(f"{url}/healthz", timeout=5).status_code, ready.status_code, ready.json()


def until(loop_thread: LoopThread, url: str, ready: int) -> dict[str, object]:
    """Probe until /readyz answers `ready` (the probe asks; the next reads), /healthz 200 at each; the last body."""
    deadline = time.monotonic() + WITHIN
    while True:
        health, status, body = probes(url)
        assert health == 200
        if status == ready:
            return body
        assert time.monotonic() < deadline, body
        loop_thread.run(asyncio.sleep(0.05))


def test_probes_answer_for_the_config_in_force(
    vllm, loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    text = CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db"))
    proxy = make_proxy(text.replace("EXTRA", ""))
    path = tmp_path / "proxy.yaml"

    def reload(config: str) -> bool:
        path.write_text(config)

        async def run() -> bool:
            return bool(proxy.process.reload(str(path)))

        return loop_thread.run(run())

    assert probes(proxy.url) == (200, 200, {"status": "ready", "upstreams_down": []})
    for refused in (text.replace("routes:", "bogus: 1\nroutes:"), text[: text.index("routes:") - 3]):
        assert not reload(refused.replace("EXTRA", ""))
        assert probes(proxy.url) == (200, 200, {"status": "ready", "upstreams_down": []})
    down = f', {{name: other, url: "http://127.0.0.1:{dead_port()}"}}'
    assert reload(text.replace("EXTRA", down))
    assert until(loop_thread, proxy.url, 503) == {"status": "not ready", "upstreams_down": ["other"]}
    assert reload(text.replace("EXTRA", ""))
    assert until(loop_thread, proxy.url, 200) == {"status": "ready", "upstreams_down": []}
