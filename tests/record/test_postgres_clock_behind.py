"""A writer whose clock runs behind the database's. The edges it wrote carried its own time while every sidecar purges
by the database's clock: one two days behind under a one-day `retention_days` had what it recorded deleted as expired
by the next purge of any other sidecar, signed into the chain as a purge, `verify` passing, and only a warning at its
start. What it writes is stamped by the database's clock instead (first and last seen, its write tokens' time, the
chain entry signs the rows as stored), so the fleet's purges keep it; a writer whose clock is right writes its times
exactly as given. (A clock ahead is warned of too: what it records is kept that much longer.)"""

from __future__ import annotations

import logging
import os
import time
import types
from pathlib import Path

import httpx
import pytest

import proxy.record.postgres as postgres_module
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.harness import ServeProcess
from tests.servers.postgres import PostgresServer
from tests.servers.vllm_like import SERVED

KEY = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")
DAY = 86400.0
ROOT = Path(__file__).resolve().parents[2]  # the subprocess runs this tree's code, not the venv's installed one
SIGNING = b"k" * 32


def _behind(monkeypatch: pytest.MonkeyPatch, days: float) -> types.SimpleNamespace:
    """This sidecar's clock `days` behind (monotonic time, which bounds its round trips, is not a clock)."""
    behind = types.SimpleNamespace(time=lambda: time.time() - days * DAY, monotonic=time.monotonic)
    monkeypatch.setattr(postgres_module, "time", behind)
    return behind


def test_a_writer_whose_clock_runs_behind_is_warned_at_its_start(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.database()
    PostgresStore(url).close()  # the fleet's store, made by a sidecar whose clock is right
    _behind(monkeypatch, 2)
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.edges"):
        PostgresStore(url).close()
    said = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]
    assert "behind the database's" in said[0] and "stamped by the database's clock" in said[0], said[0]


def test_what_a_writer_whose_clock_runs_behind_records_outlives_the_fleets_purge(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.database()
    PostgresStore(url, key=SIGNING).close()
    behind = _behind(monkeypatch, 2)
    lagging = PostgresStore(url, key=SIGNING)
    try:
        called = behind.time()  # the call, by this sidecar's clock
        assert lagging.apply([(KEY, called, called, 3, None)], "batch-1")
    finally:
        lagging.close()
    monkeypatch.setattr(postgres_module, "time", time)
    right = PostgresStore(url, key=SIGNING)  # a sidecar whose clock is right: its next 1-day purge
    try:
        assert right.purge(1.0, None, right.prepare_purge(1.0)) == 0  # HEAD: 1 (the call just recorded, deleted)
        (row,) = right.rows()
        assert row.count == 3
        assert abs(row.last_seen - time.time()) < 60 and abs(row.first_seen - time.time()) < 60, row
        assert right.integrity(SIGNING).intact  # the chain signed the rows as stored
    finally:
        right.close()
    # its write token outlived the purge too: the same batch replayed (a commit whose answer was lost) counts once
    _behind(monkeypatch, 2)
    lagging = PostgresStore(url, key=SIGNING)
    try:
        assert not lagging.apply([(KEY, called, called, 3, None)], "batch-1")
        assert [r.count for r in lagging.rows()] == [3]
    finally:
        lagging.close()


def test_a_writer_whose_clock_is_right_writes_its_times_as_given(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.database()
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.edges"):
        PostgresStore(url).close()
        store = PostgresStore(url)
    try:
        first, last = time.time() - 3600.125, time.time() - 0.5
        store.upsert([(KEY, first, last, 1, None)])
        (row,) = store.rows()
        assert (row.first_seen, row.last_seen) == (first, last)
    finally:
        store.close()
    assert not [r for r in caplog.records if "clock" in r.getMessage()]


LAGGING_SITE = """import time
_real = time.time
time.time = lambda: _real() - 2 * 86400  # this host's clock two days behind (set before the proxy's modules load)
"""
CONFIG = """
listen: {http: 127.0.0.1:0, admin: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE", journal: "JOURNAL", retention_days: 1}
"""


def test_a_sidecar_whose_clock_runs_behind_keeps_what_it_serves_through_the_fleets_purge(
    vllm: tuple[object, str], postgres: PostgresServer, tmp_path: Path
) -> None:
    """`serve` as a user runs it, on a host whose clock is two days behind (`time.time`, which the proxy stamps
    calls with, moved back before it starts): the call it serves is recorded, and a sidecar whose clock is right
    keeps it through its 1-day purge, the record verifying."""
    _, upstream = vllm
    url = postgres.database()
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(LAGGING_SITE)
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("UPSTREAM", upstream).replace("STORE", url)
                      .replace("JOURNAL", str(tmp_path / "journal.db")))  # fmt: skip
    serve = ServeProcess(str(config), env={"PYTHONPATH": f"{site}{os.pathsep}{ROOT}"})
    try:
        serve.wait_log("behind the database's", timeout=30)  # the clock moved back: this tree's proxy says so
        body = {"model": SERVED, "messages": [{"role": "user", "content": "hello"}]}
        reply = httpx.post(f"{serve.url}/v1/chat/completions", json=body, headers={"x-data-labels": "team-a"},
                           timeout=10)  # fmt: skip
        assert reply.status_code == 200, reply.text  # a new flow: committed before its reply ended
    finally:
        assert serve.stop() == 0
    right = PostgresStore(url)
    try:
        assert right.purge(1.0, None, right.prepare_purge(1.0)) == 0  # HEAD: 1 (the call just served, deleted)
        assert [(r.key.caller, r.key.input_labels, r.count) for r in right.rows()] == [("anonymous", "team-a", 1)]
        assert right.integrity().intact
    finally:
        right.close()
