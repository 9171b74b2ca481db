"""The edge store: exact counts, durability of new flows across kill -9, retention, shared by workers."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx

from proxy.record.store import EdgeKey, SqliteStore
from tests.configs import ONE_UPSTREAM
from tests.harness import ServeProcess
from tests.servers.vllm_like import ROOT, SERVED

CONFIG = (
    ONE_UPSTREAM
    + """
detectors: [email]
lineage:
  store: ${STORE}
"""
)


def rows(path: Path) -> dict[tuple[str, ...], int]:
    store = SqliteStore(path, readonly=True)
    try:
        return {tuple(r.key): r.count for r in store.rows()}
    finally:
        store.close()


def chat(base: str, text: str, labels: str = "", purpose: str = "assistant") -> httpx.Response:
    headers = {"x-purpose": purpose}
    if labels:
        headers["x-data-labels"] = labels
    return httpx.post(f"{base}/v1/chat/completions", headers=headers, timeout=10,
                      json={"model": SERVED, "messages": [{"role": "user", "content": text}]})  # fmt: skip


def test_counts_are_exact_after_concurrent_calls(vllm, make_proxy, loop_thread, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)

    async def burst() -> list[int]:
        async with aiohttp.ClientSession() as session:

            async def one(i: int) -> int:
                labels = "team-a" if i % 3 else "team-b"
                body = {"model": SERVED, "messages": [{"role": "user", "content": f"hi {i}"}]}
                async with session.post(f"{proxy.url}/v1/chat/completions", json=body,
                                        headers={"x-data-labels": labels}) as resp:  # fmt: skip
                    await resp.read()
                    return resp.status

            return await asyncio.gather(*(one(i) for i in range(90)))

    assert loop_thread.run(burst()) == [200] * 90

    async def flush() -> None:
        await proxy.process.runtime.sinks.flush()

    loop_thread.run(flush())
    assert rows(tmp_path / "lineage.db") == {
        ("anonymous", "assistant", "team-a", ROOT, "team-a", "allow", ""): 60,
        ("anonymous", "assistant", "team-b", ROOT, "team-b", "allow", ""): 30,
    }


def test_a_new_flow_survives_kill_9_right_after_the_response(vllm, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    store = tmp_path / "lineage.db"
    serve = ServeProcess(str(config), env={"UPSTREAM": upstream, "STORE": str(store)})
    try:
        assert chat(serve.url, "mail me: ana@example.org", labels="fresh-flow").status_code == 200
        serve.proc.send_signal(signal.SIGKILL)
        serve.proc.wait(10)
    finally:
        serve.stop()
    found = rows(store)
    assert found == {("anonymous", "assistant", "fresh-flow,pii:email", ROOT, "fresh-flow,pii:email", "allow", ""): 1}


def test_retention_purges_old_edges(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = SqliteStore(tmp_path / "s.db")
    now = time.time()
    old = EdgeKey("a", "p", "", "ck", "", "allow")
    new = EdgeKey("b", "p", "", "ck", "", "allow")
    store.upsert([(old, now - 40 * 86400, now - 31 * 86400, 5, None), (new, now - 40 * 86400, now - 3600, 2, None)])
    assert store.purge(30, now=now) == 1
    assert [r.key for r in store.rows()] == [new]
    store.close()


def test_two_workers_share_one_store(vllm, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    store = tmp_path / "lineage.db"
    serve = ServeProcess(str(config), "--workers", "2", env={"UPSTREAM": upstream, "STORE": str(store)})
    try:
        for i in range(40):  # a fresh connection each: SO_REUSEPORT spreads them over both workers
            assert chat(serve.url, f"call {i}", labels="shared").status_code == 200
        assert serve.stop() == 0
    finally:
        serve.stop()
    assert rows(store) == {("anonymous", "assistant", "shared", ROOT, "shared", "allow", ""): 40}
    reader = SqliteStore(store, readonly=True)
    report = reader.integrity()  # two writers took turns appending to one hash chain
    reader.close()
    assert report.intact, report.problem


def test_edges_command_answers_which_checkpoints_saw_a_label(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    now = time.time()
    store.upsert([
        (EdgeKey("app", "assistant", "user-interaction", "llama@1", "pii:email,user-interaction", "allow"), now, now, 7, None),
        (EdgeKey("ads", "ads", "user-interaction", "", "", "deny", "zone:interaction-data"), now, now, 2, None),
        (EdgeKey("ads", "ads", "public", "llama@1", "public", "allow"), now, now, 1, None),
    ])  # fmt: skip
    store.close()
    run = [sys.executable, "-m", "proxy", "edges", "--store", str(path)]
    table = subprocess.run([*run, "--label", "user-interaction"], capture_output=True, text=True, check=True).stdout
    assert table.splitlines()[0].split()[:3] == ["checkpoint", "purpose", "caller"]
    assert len(table.splitlines()) == 3 and "llama@1" in table and "deny" in table
    out = subprocess.run([*run, "--label", "pii:email", "--json"], capture_output=True, text=True, check=True).stdout
    assert [json.loads(line)["count"] for line in out.splitlines()] == [7]
    out = subprocess.run([*run, "--purpose", "ads", "--checkpoint", "llama@1", "--json"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert [json.loads(line)["input_labels"] for line in out.splitlines()] == [["public"]]
    missing = subprocess.run([*run[:-1], str(tmp_path / "nope.db")], capture_output=True, text=True)
    assert missing.returncode == 1 and "no lineage store there" in missing.stderr


class FailingStore:
    """A store that refuses writes while `failing` (a full or read-only disk), else writes through."""

    def __init__(self, inner: SqliteStore) -> None:
        self.inner = inner
        self.failing = True

    def upsert(self, rows):  # type: ignore[no-untyped-def]
        if self.failing:
            import sqlite3

            raise sqlite3.OperationalError("database or disk is full")
        self.inner.upsert(rows)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


def test_a_store_outage_loses_no_count_and_is_logged_once(vllm, make_proxy, loop_thread, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    edges = proxy.process.runtime.sinks.get("edges")
    failing = FailingStore(edges._store)
    edges._store = failing
    with caplog.at_level("ERROR", logger="lineage_proxy.edges"):
        for i in range(12):  # calls keep flowing while nothing can be written
            assert chat(proxy.url, f"during {i}", labels=f"outage-{i % 3}").status_code == 200
        loop_thread.run(proxy.process.runtime.sinks.flush())
    scraped = httpx.get(f"{proxy.url}/metrics").text
    assert "lineage_proxy_edge_store_failing 1" in scraped.splitlines()  # not the HELP line, which says "1 while"
    assert [r.message for r in caplog.records].count(next(r.message for r in caplog.records)) == 1
    assert len(caplog.records) == 1 and "logged once per outage" in caplog.records[0].message
    failing.failing = False  # the disk has room again
    loop_thread.run(proxy.process.runtime.sinks.flush())
    assert rows(tmp_path / "lineage.db") == {
        ("anonymous", "assistant", f"outage-{n}", ROOT, f"outage-{n}", "allow", ""): 4 for n in range(3)
    }
    assert "lineage_proxy_edge_store_failing 0" in httpx.get(f"{proxy.url}/metrics").text


def test_edge_key_is_the_named_tuple_of_the_flow() -> None:
    """`edge_key` makes its EdgeKey without the named tuple's interpreted `__new__`: the same type, fields,
    equality and hash as `EdgeKey(...)`, defaults filled in as before."""
    from proxy.flow import ALLOW, DENY, Decision, Outcome
    from proxy.record.edges import edge_key

    allowed = edge_key(Decision(ALLOW, None, labels=frozenset({"pii", "eu"})), Outcome(started_ns=1), frozenset())
    assert type(allowed) is EdgeKey
    assert allowed == EdgeKey("anonymous", "", "eu,pii", "", "", "allow", "")
    assert hash(allowed) == hash(EdgeKey("anonymous", "", "eu,pii", "", "", "allow", ""))
    denied = edge_key(Decision(DENY, None, "app", "ads", frozenset({"pii"}), rule="r1"),
                      Outcome(started_ns=1, checkpoint="m@1"), frozenset({"x", "a"}))  # fmt: skip
    assert (denied.caller, denied.purpose, denied.input_labels, denied.checkpoint, denied.output_labels,
            denied.decision, denied.rule) == ("app", "ads", "pii", "m@1", "a,x", "deny", "r1")  # fmt: skip
    assert denied._replace(rule="") == EdgeKey("app", "ads", "pii", "m@1", "a,x", "deny")
