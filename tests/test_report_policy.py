"""The report's "policy in force" says what the proxy enforces: a zone with `regions: []` lets its data go to no
region (every call carrying its labels is refused, region_denied), and the report said its regions were "any"."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx

from proxy.report import render
from proxy.verify import read_edges
from tests.harness import LoopThread, ProxyHandle
from tests.servers.vllm_like import VllmLike

CONFIG = """listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: llama, url: "${UPSTREAM}", region: eu}
routes:
  - {model: "*", upstream: llama}
zones:
  - {name: quarantine, labels: [held], allow_purposes: [assistant], regions: [], on_deny: block}
  - {name: open, labels: [public], allow_purposes: [assistant]}
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


def zone_regions(text: str, zone: str) -> str:
    row = re.search(rf"<tr><td><b>{zone}</b></td>(.*?)</tr>", text)
    assert row is not None, text
    return re.findall(r"<td>(.*?)</td>", row.group(1))[2]  # labels, allowed purposes, regions, on deny


def test_a_zone_allowing_no_region_is_reported_as_such(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], loop_thread: LoopThread, tmp_path: Path
) -> None:
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    held = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"x-data-labels": "held"},
                      json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)  # fmt: skip
    assert held.status_code == 403 and held.json()["error"]["code"] == "region_denied", held.text
    assert not server.data_requests()  # its data went to no region
    loop_thread.run(proxy.process.runtime.sinks.flush())

    text = render(read_edges(str(tmp_path / "lineage.db")), store="lineage.db", window="all", config=proxy.config)
    assert zone_regions(text, "quarantine") != "any"
    assert "none" in zone_regions(text, "quarantine")
    assert zone_regions(text, "open") == "any"  # no `regions`: any region


def test_audit_mode_is_reported_with_the_refusals_it_keeps(tmp_path: Path) -> None:
    """Audit mode's "never block" alone was not what it does (README, Design choices: the refusals it keeps)."""
    from proxy.config import parse
    from proxy.record.store import SqliteStore

    config = parse(CONFIG.replace("policy: {", "policy: {mode: audit, ").replace("${UPSTREAM}", "http://h:1")
                   .replace("${STORE}", str(tmp_path / "lineage.db")))  # fmt: skip
    SqliteStore(tmp_path / "lineage.db").close()
    text = render(read_edges(str(tmp_path / "lineage.db")), store="lineage.db", window="all", config=config)
    assert "never block; refused even so: a model no route serves" in text
