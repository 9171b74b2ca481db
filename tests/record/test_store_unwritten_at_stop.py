"""A store that refuses writes until the proxy stops (its file removed while serving, a disk full) leaves counts
that never reach it. The line a stop logged said how many flows ("3 flows' counts could not be written before
shutdown"), not how many calls: an operator reconciling the store with the spans or access lines could not tell
how many calls the store is missing. It names the calls too."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.configs import ONE_UPSTREAM_STORED
from tests.servers.vllm_like import SERVED


def chat(base: str, labels: str) -> None:
    reply = httpx.post(f"{base}/v1/chat/completions", timeout=10,
                       headers={"x-purpose": "assistant", "x-data-labels": labels},
                       json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.status_code == 200


def test_a_stop_names_the_calls_its_store_never_took(vllm, make_proxy, loop_thread, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    where = tmp_path / "store"
    where.mkdir()
    proxy = make_proxy(ONE_UPSTREAM_STORED, UPSTREAM=upstream, STORE=str(where / "lineage.db"))
    chat(proxy.url, "before")
    (where / "lineage.db").rename(where / "elsewhere.db")  # from now on every write fails
    for labels in ["one", "two", "two", "three", "three", "three", "before"]:
        chat(proxy.url, labels)
    with caplog.at_level("ERROR", logger="lineage_proxy.edges"):
        loop_thread.run(proxy.process.stop())
    (said,) = [r.getMessage() for r in caplog.records if "could not be written before shutdown" in r.getMessage()]
    assert said.startswith("lineage store: 4 flows' counts, 7 calls, could not be written before shutdown"), said
