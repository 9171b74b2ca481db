"""A SQLite store whose file is removed (its directory deleted, the file unlinked or moved) while the proxy
runs: SQLite goes on writing into the file it holds open, which no path names any more, so every record
written from then on would be lost with nothing logged or counted. The writer sees the path no longer names
the file it opened: its writes fail as any refused write does (logged once, `lineage_proxy_edge_store_failing`,
counts kept in memory), and a `require_record` zone fails closed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.configs import ONE_UPSTREAM_STORED
from tests.servers.vllm_like import SERVED

RECORDED = """zones:
  - name: kept
    labels: [kept]
    allow_purposes: [assistant]
    require_record: true
"""


def failing(scraped: str) -> str:
    """The gauge's sample (its HELP line says "1 while ...": a substring test would always find a 1)."""
    found = re.search(r"^lineage_proxy_edge_store_failing (\S+)$", scraped, re.MULTILINE)
    assert found is not None
    return found.group(1)


def chat(base: str, labels: str) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", timeout=10,
                      headers={"x-purpose": "assistant", "x-data-labels": labels},
                      json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip


@pytest.mark.parametrize("how", ["directory", "file"])
def test_a_store_removed_while_serving_is_a_failing_store_not_a_silent_one(  # type: ignore[no-untyped-def]
    vllm, make_proxy, loop_thread, tmp_path: Path, caplog, how: str
) -> None:
    server, upstream = vllm
    where = tmp_path / "store"
    where.mkdir()
    proxy = make_proxy(ONE_UPSTREAM_STORED + RECORDED, UPSTREAM=upstream, STORE=str(where / "lineage.db"))
    assert chat(proxy.url, "before").status_code == 200  # the store takes writes
    assert failing(httpx.get(f"{proxy.url}/metrics").text) == "0"
    if how == "directory":
        shutil.rmtree(where)
    else:
        (where / "lineage.db").rename(where / "elsewhere.db")
    with caplog.at_level("ERROR", logger="lineage_proxy.edges"):
        assert chat(proxy.url, "after").status_code == 200  # calls go on
        loop_thread.run(proxy.process.runtime.sinks.flush())
    assert failing(httpx.get(f"{proxy.url}/metrics").text) == "1"
    assert [r for r in caplog.records if "writes are failing" in r.getMessage()]
    forwarded = len(server.data_requests())
    refused = chat(proxy.url, "kept")  # nothing records it now: the zone fails closed
    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "record_unavailable")
    assert len(server.data_requests()) == forwarded


def test_a_store_opened_by_a_relative_path_still_writes_after_a_change_of_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file a writer opened is the one its path named then: a later working directory changes nothing."""
    from proxy.record.store import EdgeKey, SqliteStore

    (tmp_path / "here").mkdir()
    (tmp_path / "there").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    store = SqliteStore("lineage.db")
    key = EdgeKey("app", "assistant", "", "m", "", "allow")
    try:
        store.upsert([(key, 1.0, 1.0, 1, None)])
        monkeypatch.chdir(tmp_path / "there")
        store.upsert([(key, 2.0, 2.0, 1, None)])
    finally:
        store.close()
    monkeypatch.chdir(tmp_path / "here")
    reader = SqliteStore("lineage.db", readonly=True)
    try:
        assert [row.count for row in reader.rows()] == [2]
    finally:
        reader.close()
