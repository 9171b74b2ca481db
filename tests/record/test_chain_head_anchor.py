"""The chain's head outside the store, where a wipe of the store cannot reach it: the writer exports the number
of the newest chain entry as `lineage_proxy_record_chain_entries` (a wipe, or a cut tail, shows as the gauge going
down in any Prometheus) and logs the head, at start, at a clean stop and every `lineage.head_log_interval_s`, as
one INFO line whose `--expect-head` part `verify --integrity --expect-head` takes as it is. A store emptied whole
(chain, edges, origin, sqlite_sequence) verified as a new store, and nothing the proxy showed told."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from proxy.config import parse
from tests.harness import ServeProcess
from tests.servers.postgres import PostgresServer
from tests.servers.vllm_like import SERVED

ROOT = Path(__file__).resolve().parents[2]
ENV = {"PYTHONPATH": str(ROOT)}  # the subprocesses run this tree's code, not the venv's installed one
GAUGE = "lineage_proxy_record_chain_entries"

CONFIG = """
listen: {http: 127.0.0.1:0, admin: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE", journal: "JOURNAL", flush_interval_s: 0.05INTERVAL}
"""


def config(tmp_path: Path, upstream: str, store: str, interval: str | None = None) -> str:
    path = tmp_path / "proxy.yaml"
    text = (
        CONFIG.replace("UPSTREAM", upstream)
        .replace("STORE", store)
        .replace("INTERVAL", "" if interval is None else f", head_log_interval_s: {interval}")
    )
    path.write_text(text.replace("JOURNAL", str(tmp_path / "journal.db")))
    return str(path)


def gauge(serve: ServeProcess) -> float | None:
    reply = httpx.get(f"http://{serve.addresses['admin']}/metrics", timeout=10)
    assert reply.status_code == 200, reply.text
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            if sample.name == GAUGE:
                assert family.type == "gauge"
                return sample.value
    return None


def chat(serve: ServeProcess, label: str) -> None:
    """One call of a new flow: its first write is committed (a chain entry) before the reply ends."""
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hello"}]}
    reply = httpx.post(f"{serve.url}/v1/chat/completions", json=body, headers={"x-data-labels": label}, timeout=10)
    assert reply.status_code == 200, reply.text


def pasted(line: str) -> str:
    """The head as an operator copies it from the log line."""
    return line.split("--expect-head ", 1)[1].split()[0]


def verify(store: str, *heads: str) -> subprocess.CompletedProcess[str]:
    args = [a for head in heads for a in ("--expect-head", head)]
    return subprocess.run([sys.executable, "-m", "proxy", "verify", "--store", store, "--integrity", *args],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **ENV})  # fmt: skip


def newest(db: Path) -> tuple[int, str]:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    return int(row[0]), str(row[1])


def test_sqlite_head_exported_logged_and_a_wipe_shows(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    store = tmp_path / "lineage.db"
    serve = ServeProcess(config(tmp_path, upstream, str(store), interval="0.2"), env=ENV)
    try:
        line = serve.wait_log("lineage chain head at start: entry 1, --expect-head sha256:")
        assert " INFO " in line, line
        assert gauge(serve) == 1
        chat(serve, "team-a")
        chat(serve, "team-b")
        seq, head = newest(store)
        assert seq >= 3  # the new store's snapshot, then the two new flows' writes (one entry, or one each)
        assert gauge(serve) == seq  # the flows' writes were committed before their replies
        serve.wait_log(f"lineage chain head now: entry {seq}, --expect-head {head}")  # every 0.2 s here
    finally:
        assert serve.stop() == 0
    stop = next(line for line in serve.stderr if "lineage chain head at stop" in line)
    assert f"entry {seq}, --expect-head {head}" in stop
    recorded = pasted(stop)
    checked = verify(str(store), recorded)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # the whole store wiped: it verifies as a new store once a proxy writes it again; the gauge went down
    with sqlite3.connect(store) as conn:
        for table in ("chain", "edges", "meta", "sqlite_sequence"):
            conn.execute(f"DELETE FROM {table}")
    serve = ServeProcess(config(tmp_path, upstream, str(store)), env=ENV)
    try:
        serve.wait_log("lineage chain head at start: entry 1, --expect-head sha256:")
        assert gauge(serve) == 1 < seq
    finally:
        assert serve.stop() == 0
    assert verify(str(store)).returncode == 0  # nothing in the store tells
    caught = verify(str(store), recorded)  # the head from the log does
    assert caught.returncode == 1 and f"the head {recorded} is not in the chain" in caught.stdout, caught.stdout


def test_workers_export_the_newest_entry_not_a_sum(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With --workers 2 each worker knows the head it last wrote or read: the gauge is the highest (a sum, as the
    sinks' other gauges are, read 2 for a new store's entry 1)."""
    _, upstream = vllm
    store = tmp_path / "lineage.db"
    serve = ServeProcess(config(tmp_path, upstream, str(store)), "--workers", "2", env=ENV)
    try:
        serve.wait_log("lineage chain head at start", timeout=30)
        for label in ("a", "b", "c", "d", "e", "f"):
            chat(serve, label)
        seq, _ = newest(store)
        # each worker copies its value into the shared files once a second (and as it answers a scrape): scraped
        # over two of those periods, every value read is one worker's head or the newest, never more than the newest
        settled, deadline = time.monotonic() + 2, time.monotonic() + 10
        seen = [gauge(serve)]
        while (seen[-1] != seq or time.monotonic() < settled) and time.monotonic() < deadline:
            seen.append(gauge(serve))  # a scrape each time, on a new connection: either worker may answer
        assert seen[-1] == seq, (seen[-20:], seq)
        assert all(value is not None and value <= seq for value in seen), (max(v or 0 for v in seen), seq)
    finally:
        assert serve.stop() == 0


def test_postgres_head_exported_logged_and_a_wipe_shows(vllm, postgres: PostgresServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    url = postgres.database()
    serve = ServeProcess(config(tmp_path, upstream, url), env=ENV)
    try:
        serve.wait_log("lineage chain head at start: entry 1, --expect-head sha256:")
        chat(serve, "team-a")
        with psycopg.connect(url) as conn:
            seq, head = conn.execute("SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone() or (0, "")
        assert seq >= 2
        assert gauge(serve) == seq
    finally:
        assert serve.stop() == 0
    stop = next(line for line in serve.stderr if "lineage chain head at stop" in line)
    assert f"entry {seq}, --expect-head {head}" in stop
    recorded = pasted(stop)
    assert verify(url, recorded).returncode == 0
    with psycopg.connect(url, autocommit=True) as conn:  # wiped whole, its numbering too
        conn.execute("TRUNCATE chain, edges, meta, applied RESTART IDENTITY")
    serve = ServeProcess(config(tmp_path, upstream, url), env=ENV)
    try:
        serve.wait_log("lineage chain head at start: entry 1, --expect-head sha256:")
        assert gauge(serve) == 1 < seq
    finally:
        assert serve.stop() == 0
    assert verify(url).returncode == 0
    assert verify(url, recorded).returncode == 1


def test_head_log_interval_is_checked(tmp_path: Path) -> None:
    """`lineage-proxy check` names a value that is not a number of seconds, 0 or more (0: at start and stop only)."""
    base = "listen: {http: 127.0.0.1:0}\nupstreams: [{name: u, url: 'http://127.0.0.1:1'}]\nroutes: [{model: '*', upstream: u}]\n"
    assert parse(base + "lineage: {head_log_interval_s: 0}\n", source="t.yaml").lineage.head_log_interval_s == 0
    assert parse(base, source="t.yaml").lineage.head_log_interval_s == 3600
    path = tmp_path / "proxy.yaml"
    for bad, said in (("-1", "must be >= 0"), ("often", "expected a number")):
        path.write_text(base + f"lineage: {{head_log_interval_s: {bad}}}\n")
        checked = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(path)], capture_output=True,
                                 text=True, timeout=60, env={**os.environ, **ENV})  # fmt: skip
        assert checked.returncode != 0, checked.stdout
        assert (
            "lineage.head_log_interval_s" in checked.stderr + checked.stdout and said in checked.stderr + checked.stdout
        )
