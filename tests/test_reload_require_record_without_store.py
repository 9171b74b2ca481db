"""A reload that adds a `require_record` zone to a proxy started with `lineage.store: null`, setting a store in
the same file (as `check` asks: a require_record zone needs one). The store is read at start only (the reload
warns so), so the process still has none, and nothing told the zone so: its calls were forwarded, allowed and
recorded nowhere, the one promise the zone makes broken. Such a reload is now refused whole, as one adding
listen.tls is (restart to apply it), and `--workers` restarts follow it (`as_reloaded`)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.harness import LoopThread
from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "URL"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: null}
"""
RELOADED = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "URL"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
zones: [{name: audited, labels: [payroll], allow_purposes: [assistant], require_record: true}]
lineage: {store: "STORE"}
"""


def test_a_reload_adding_a_require_record_zone_to_a_proxy_without_a_store_is_refused(
    make_proxy, vllm, loop_thread: LoopThread, tmp_path: Path, caplog
) -> None:  # type: ignore[no-untyped-def]
    server, url = vllm
    proxy = make_proxy(CONFIG.replace("URL", url))
    path = tmp_path / "proxy.yaml"
    store = tmp_path / "lineage.db"
    path.write_text(RELOADED.replace("URL", url).replace("STORE", str(store)))

    async def reload() -> bool:
        return bool(proxy.process.reload(str(path)))

    with caplog.at_level("INFO", logger="lineage_proxy"):
        applied = loop_thread.run(reload())
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reload refused")]
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"x-data-labels": "payroll"}, timeout=10,
                       json={"model": SERVED, "messages": [{"role": "user", "content": "salaries"}]})  # fmt: skip
    # forwarded as allowed while nothing in this process can record it: the zone's promise, broken
    assert not (applied and reply.status_code == 200), "a require_record zone's call was forwarded, never recorded"
    assert applied is False and refused and "require_record" in refused[0] and "restart" in refused[0]
    assert proxy.process.config.zones == ()  # the old config stays in force
    assert not store.exists()
