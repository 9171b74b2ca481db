"""What a reply waits for when the store is there but will not take a write now: a PostgreSQL table or
the chain's advisory lock held by another session, a journal backlog being replayed, a SQLite write lock
held by another process. A new flow's reply waits for one short bounded wait at most (the lock wait,
the busy timeout, one slice of replay), never one per write queued behind it; nothing is lost or
counted twice. Against the real PostgreSQL the other store tests start (a second connection holds the
lock), with short timeouts set in the store's URL or constructor."""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from proxy.record.edges import EdgeAggregator
from proxy.record.journal import CHAIN_BUSY_S, LOCK_WAIT_S, REPLAY_SLICE_S, Journal, JournaledStore
from proxy.record.postgres import LOCK_ID, PostgresStore
from proxy.record.store import LOCKED_WAIT_S, SqliteStore
from tests.configs import ONE_UPSTREAM_STORED
from tests.harness import LoopThread
from tests.record.test_postgres import KEY, calls, counts, start
from tests.servers.postgres import PostgresServer

NEW = KEY._replace(caller="new")


def timed(fn: Callable[[], Any]) -> float:
    began = time.monotonic()
    fn()
    return time.monotonic() - began


def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for a condition (polled), failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "never happened"
        threading.Event().wait(0.005)


def wait_for_probe(store: JournaledStore) -> None:
    """Let the check of the database in flight (on its own thread) have its answer."""
    probe = store._probe
    if probe is not None:
        assert probe.done.wait(30)


def drain(store: JournaledStore) -> None:
    """The database answers again: retries made due at once, each check waited for, until the journal
    is replayed."""
    for _ in range(50):
        store._next_try = 0.0
        store.upsert([])
        wait_for_probe(store)
        if store.journal.held() == 0 and "lineage_proxy_edge_database_failing 0" in store.metrics():
            return
    raise AssertionError(f"the journal was never replayed: {store.journal.held()} edge writes left")


@pytest.fixture
def locker(postgres: PostgresServer) -> Iterator[Callable[[str], psycopg.Connection[Any]]]:
    """Another session, in a transaction of its own, that holds what it takes until the test ends it."""
    held: list[psycopg.Connection[Any]] = []

    def connect(url: str) -> psycopg.Connection[Any]:
        conn = psycopg.connect(url)  # not autocommit: its locks last until its rollback
        held.append(conn)
        return conn

    yield connect
    for conn in held:
        conn.close()


# -- PostgreSQL: a lock another session holds


@pytest.mark.parametrize("hold", ["table", "advisory"])
def test_a_lock_held_elsewhere_holds_one_write_then_every_write_is_journaled_at_once(
    postgres: PostgresServer, tmp_path: Path, locker: Callable[[str], psycopg.Connection[Any]], hold: str
) -> None:
    """`LOCK TABLE edges` (a VACUUM FULL, an ALTER TABLE), or the chain's advisory lock held by a sidecar
    stuck inside its write: the database answers `SELECT 1`, but no write can go ahead. The write that
    finds it waits LOCK_WAIT_S for the lock (it used to wait the statement timeout, 30 s by default here),
    and is journaled; then every write goes to the journal at once, its checks (due each time here) never
    handing the writer a write that waits again, nor does a purge; once the lock is gone the journal is
    replayed, every count once. A table lock is an outage at once; the advisory lock only once found held
    for CHAIN_BUSY_S (before, it may be a sibling's long write: the next test)."""
    url = postgres.database()
    store = JournaledStore(PostgresStore(url), Journal(tmp_path / "journal.db"))
    store.upsert([(KEY, 1.0, 1.0, 1, None)])  # the schema made, the connection open
    session = locker(url)
    if hold == "table":
        session.execute("LOCK TABLE edges IN ACCESS EXCLUSIVE MODE")
    else:
        session.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))

    first = timed(lambda: store.upsert([(NEW, 2.0, 2.0, 1, None)]))
    assert first < 5, first  # the lock wait, not the statement timeout (30 s), then journaled
    failing = 0 if hold == "advisory" else 1
    assert store.journaled == 1 and f"lineage_proxy_edge_database_failing {failing}" in store.metrics()
    waits = []
    for index in range(3):  # each round: a check due, its answer, a write and the tick after it
        row = (KEY._replace(caller=f"c{index}"), 3.0, 3.0, 1, None)
        store._next_try = 0.0
        waits.append(timed(lambda: store.upsert([])))  # a tick: the check starts on its own thread
        wait_for_probe(store)  # its answer: the lock is still held
        store._next_try = 0.0
        waits.append(timed(functools.partial(store.upsert, [row])))
        waits.append(timed(lambda: store.upsert([])))  # the tick that reads that answer
    store._next_try = 0.0
    waits.append(timed(lambda: store.purge(30)))  # the hourly purge: not tried while the database is blocked
    assert max(waits) < 0.5, waits
    assert store.journaled == 4 and f"lineage_proxy_edge_database_failing {failing}" in store.metrics()
    if hold == "advisory":  # held CHAIN_BUSY_S (the rounds above take ~2 s): the next check that finds it held
        store._busy_since = time.monotonic() - CHAIN_BUSY_S
        store._next_try = 0.0
        store.upsert([])
        wait_for_probe(store)
        assert timed(lambda: store.upsert([])) < 0.5  # its answer
        assert "lineage_proxy_edge_database_failing 1" in store.metrics()

    session.rollback()  # the lock is gone
    drain(store)
    expected = {tuple(KEY): 1, tuple(NEW): 1, **{tuple(KEY._replace(caller=f"c{i}")): 1 for i in range(3)}}
    assert counts(url) == expected
    assert store.replayed == 4 and store.integrity().intact
    store.close()


def test_a_sibling_holding_the_chain_lock_past_the_lock_wait_journals_the_write_but_is_no_outage(
    postgres: PostgresServer,
    tmp_path: Path,
    locker: Callable[[str], psycopg.Connection[Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sibling sidecar's legitimate long write (its retention purge of a large store: 2.65 s for 100,000
    edges; a large flush) holds the chain's advisory lock past LOCK_WAIT_S: the write that finds it held is
    journaled (nothing lost), and so are the writes behind it until a check finds the lock free, but the
    database is not said to be failing: no ERROR, `lineage_proxy_edge_database_failing` stays 0 (it was
    an outage, logged and shown, at each sibling's purge). Another session holding the lock stands in for
    the sibling's transaction."""
    url = postgres.database()
    store = JournaledStore(PostgresStore(url), Journal(tmp_path / "journal.db"))
    store.upsert([(KEY, 1.0, 1.0, 1, None)])
    sibling = locker(url)
    sibling.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))  # the sibling's purge, under way
    metrics = []
    with caplog.at_level(logging.DEBUG, logger="lineage_proxy.edges"):
        store.upsert([(NEW, 2.0, 2.0, 1, None)])  # waits LOCK_WAIT_S for the lock, then journaled
        assert store.journaled == 1
        metrics.append(store.metrics())
        store._next_try = 0.0
        store.upsert([])  # a tick: the check, on its own thread, finds the lock held still
        wait_for_probe(store)
        assert timed(lambda: store.upsert([(NEW, 3.0, 3.0, 1, None)])) < 0.5  # journaled behind the first
        store.upsert([])  # the check's answer
        metrics.append(store.metrics())
        sibling.rollback()  # the purge is done
        drain(store)
        metrics.append(store.metrics())
    assert all("lineage_proxy_edge_database_failing 0" in text for text in metrics), metrics
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not loud, loud
    assert any("holds the chain's lock" in r.getMessage() for r in caplog.records)  # said, at debug
    assert store.journaled == 2 and store.replayed == 2 and store.journal.held() == 0
    assert counts(url) == {tuple(KEY): 1, tuple(NEW): 2}
    assert store.integrity().intact
    store.close()


def test_a_row_lock_the_check_cannot_see_holds_a_replay_for_the_lock_wait_not_the_statement_timeout(
    postgres: PostgresServer, tmp_path: Path, locker: Callable[[str], psycopg.Connection[Any]]
) -> None:
    """An open `UPDATE edges` holds one edge's row: the check (which takes the tables' locks) passes, and
    the replay of a batch adding to that edge waits for the row. It gives up after LOCK_WAIT_S, not after
    the statement timeout (3 s here), and the writes after it are journaled at once."""
    url = postgres.database()
    store = JournaledStore(PostgresStore(url + "&options=-c%20statement_timeout%3D3000"), Journal(tmp_path / "j.db"))
    store.upsert([(KEY, 1.0, 1.0, 1, None)])
    postgres.stop()
    try:
        store.upsert([(KEY, 2.0, 2.0, 2, None)])  # journaled
    finally:
        postgres.start()
    session = locker(url)
    session.execute("UPDATE edges SET count = count WHERE caller = %s", (KEY.caller,))
    waits = []
    for _ in range(3):
        store._next_try = 0.0
        waits.append(timed(lambda: store.upsert([])))  # the check passes; the replay meets the row lock
        wait_for_probe(store)
        waits.append(timed(lambda: store.upsert([(NEW, 3.0, 3.0, 1, None)])))
    assert max(waits) < LOCK_WAIT_S + 1.5, waits  # a check's connect, then the lock wait at most
    assert store.journal.held() == 4 and "lineage_proxy_edge_database_failing 1" in store.metrics()
    session.rollback()
    drain(store)
    assert counts(url) == {tuple(KEY): 3, tuple(NEW): 3}
    assert store.integrity().intact
    store.close()


def test_new_flows_reply_after_a_short_wait_while_a_table_lock_is_held_elsewhere(
    postgres: PostgresServer, tmp_path: Path, locker: Callable[[str], psycopg.Connection[Any]], vllm: Any,
    make_proxy: Any, loop_thread: LoopThread
) -> None:  # fmt: skip
    """The proxy as it runs, on a database whose `edges` another session has locked (a `VACUUM FULL`, an
    `ALTER TABLE`): new flows' replies, each waiting for its first write, come after the lock wait, not
    the 30 s statement timeout; a `require_record` zone's call goes through (the journal keeps its
    record); once the lock is gone every flow is in the database, once."""
    url = postgres.database()
    _, upstream = vllm
    proxy = start(make_proxy, upstream, url, tmp_path / "journal.db")
    assert loop_thread.run(calls(proxy.url, ["first"])) == [200]  # the schema made, the connection open
    session = locker(url)
    session.execute("LOCK TABLE edges IN ACCESS EXCLUSIVE MODE")
    labels = ["new-a", "new-b", "audited", "new-c"]
    began = time.monotonic()
    assert loop_thread.run(calls(proxy.url, labels), timeout=120) == [200] * 4
    waited = time.monotonic() - began
    assert waited < 5, waited  # the statement timeout would be 30 s
    assert loop_thread.run(calls(proxy.url, ["new-d"]), timeout=120) == [200]  # journaled at once
    session.rollback()
    until(lambda: sum(counts(url).values()) == 6)  # the journal replayed
    found = counts(url)
    assert sorted(key[2] for key in found) == sorted(["first", *labels, "new-d"]) and set(found.values()) == {1}


# -- PostgreSQL: a journal backlog replayed while new flows come


def test_a_backlog_is_replayed_in_slices_a_new_flow_waits_for_one_at_most(
    postgres: PostgresServer, tmp_path: Path, loop_thread: LoopThread
) -> None:
    """A long outage leaves a journal of many batches. Once the database answers, the aggregator replays
    it a slice at a time on the writer thread: a new flow's first write, queued meanwhile, is done after
    one slice (it joins the journal's end), long before the backlog is replayed. The slices follow each
    other without waiting for the next tick (2 s here: one slice a tick would take a minute); every batch
    counts once."""
    batches = 1500
    url = postgres.database()
    path = tmp_path / "journal.db"
    store = JournaledStore(PostgresStore(url), Journal(path))
    store.upsert([(KEY, 1.0, 1.0, 1, None)])
    postgres.stop()
    try:
        for index in range(batches):
            store.upsert([(KEY, 2.0 + index, 2.0 + index, 1, None)])
    finally:
        postgres.start()
    assert store.journal.held() == batches
    aggregator = EdgeAggregator(store, flush_interval_s=2.0)
    loop_thread.run(_start(aggregator))
    until(lambda: store.replayed > 0)  # the replay is under way (from the first tick)
    began = time.monotonic()

    async def new_flow() -> float:
        future = aggregator.add(NEW)
        assert future is not None
        began = time.monotonic()
        await asyncio.wrap_future(future)
        return time.monotonic() - began

    waited = loop_thread.run(new_flow())
    replayed_then = store.replayed
    assert replayed_then < batches, "the new flow waited for the whole backlog"
    assert waited < REPLAY_SLICE_S + 0.4, waited
    with sqlite3.connect(path) as reader:  # the replay goes on to the end (the new flow's write with it)
        until(lambda: reader.execute("SELECT count(*) FROM entries").fetchone()[0] == 0, timeout=120)
    assert time.monotonic() - began < 20, "the backlog was replayed a slice a tick"
    loop_thread.run(aggregator.close())
    assert counts(url) == {tuple(KEY): 1 + batches, tuple(NEW): 1}
    assert PostgresStore(url, readonly=True).integrity().intact


async def _start(aggregator: EdgeAggregator) -> None:
    aggregator.start()


def test_replay_is_a_slice_and_says_whether_more_waits(postgres: PostgresServer, tmp_path: Path) -> None:
    """`replay` replays for REPLAY_SLICE_S at most and says more waits; a write meanwhile joins the
    journal's end without replaying anything."""
    url = postgres.database()
    store = JournaledStore(PostgresStore(url), Journal(tmp_path / "journal.db"))
    store.upsert([(KEY, 1.0, 1.0, 1, None)])
    postgres.stop()
    try:
        for index in range(600):
            store.upsert([(KEY._replace(caller=f"c{index % 7}"), 2.0, 2.0, 1, None)])
    finally:
        postgres.start()
    store._next_try = 0.0
    wait_for_probe(store)
    store._probe_wait = 30.0  # this first check waited for, however long the restarted server takes
    slices = []
    more = True
    while more:
        began = time.monotonic()
        before = store.replayed
        more = store.replay()
        slices.append(time.monotonic() - began)
        if more:
            assert store.replayed > before  # each slice makes progress
            writes = store.journaled
            assert timed(lambda: store.upsert([(NEW, 3.0, 3.0, 1, None)])) < 0.1  # journaled, nothing replayed
            assert store.journaled == writes + 1
    assert len(slices) > 2 and max(slices[1:]) < REPLAY_SLICE_S + 0.5, slices  # the first waited for the check
    assert store.journal.held() == 0
    found = counts(url)
    assert sum(found.values()) == 1 + 600 + (len(slices) - 1) and found[tuple(NEW)] == len(slices) - 1
    assert store.integrity().intact
    store.close()


# -- SQLite: a write lock another process holds


def test_a_sqlite_write_lock_held_elsewhere_costs_one_busy_timeout_then_no_write_waits(tmp_path: Path) -> None:
    """An open `BEGIN IMMEDIATE` in another connection (an operator's sqlite3 shell, a VACUUM): the first
    write waits the busy timeout and fails; the writes after it fail at once, one a second waiting
    LOCKED_WAIT_S; once the lock is free the next write takes it, and writes wait as before again."""
    path = tmp_path / "lineage.db"
    store = SqliteStore(path, busy_timeout_s=0.5)
    store.upsert([(KEY, 1.0, 1.0, 1, None)])
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            first = time.monotonic()
            store.upsert([(NEW, 2.0, 2.0, 1, None)])
        assert 0.4 < time.monotonic() - first < 3
        waits = []
        for _ in range(5):
            began = time.monotonic()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                store.upsert([(NEW, 2.0, 2.0, 1, None)])
            waits.append(time.monotonic() - began)
        assert max(waits) < 0.2, waits
        store._locked_retry = 0.0  # the retry is due (instead of LOCKED_RETRY_S later)
        began = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.upsert([(NEW, 2.0, 2.0, 1, None)])
        assert LOCKED_WAIT_S * 0.8 < time.monotonic() - began < 0.4
    finally:
        other.execute("ROLLBACK")
    store.upsert([(NEW, 3.0, 3.0, 1, None)])  # free again: taken at once
    assert store._db.execute("PRAGMA busy_timeout").fetchone()[0] == 500
    assert {r.key: r.count for r in store.rows()} == {KEY: 1, NEW: 1}
    store.close()
    other.close()


def test_new_flows_while_a_sqlite_write_lock_is_held_wait_one_busy_timeout_and_lose_nothing(
    tmp_path: Path, loop_thread: LoopThread
) -> None:
    """Four new flows at once while another process holds the write lock: their replies (the futures
    they wait on) are all answered within about one busy timeout, not one per flow queued; the same flows
    called again are counted in memory, with no write to wait for; once the lock is free the flush writes
    every count."""
    path = tmp_path / "lineage.db"
    store = SqliteStore(path, busy_timeout_s=0.5)
    aggregator = EdgeAggregator(store, flush_interval_s=3600)
    loop_thread.run(_start(aggregator))
    flows = [KEY._replace(caller=f"new{i}") for i in range(4)]
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:

        async def at_once() -> list[float]:
            futures = [aggregator.add(key) for key in flows]
            began = time.monotonic()
            waits = []
            for future in futures:
                assert future is not None
                try:
                    await asyncio.wrap_future(future)
                except sqlite3.OperationalError:
                    pass  # the store failed the write: the reply goes on, the count is kept
                waits.append(time.monotonic() - began)
            return waits

        waits = loop_thread.run(at_once())
        assert max(waits) < 0.5 + 0.4, waits  # one busy timeout, not four in a row

        async def again() -> list[object]:
            return [aggregator.add(key) for key in flows]

        assert loop_thread.run(again()) == [None] * 4  # counted in memory: nothing to wait for
        assert not aggregator.recording()
    finally:
        other.execute("ROLLBACK")
        other.close()
    loop_thread.run(aggregator.flush())  # the lock is free: the flush's write takes it at once
    assert aggregator.recording()
    loop_thread.run(aggregator.close())
    reader = SqliteStore(path, readonly=True)
    assert {r.key: r.count for r in reader.rows()} == {key: 2 for key in flows}
    assert reader.integrity().intact
    reader.close()


def test_new_flows_reply_after_a_short_wait_while_a_sqlite_write_lock_is_held_elsewhere(
    tmp_path: Path, vllm: Any, make_proxy: Any, loop_thread: LoopThread
) -> None:
    """The proxy as it runs, with its default busy timeout, while another process holds the store's write
    lock (an operator's `sqlite3` shell in a transaction): new flows' replies come after a short wait for
    the lock (it was 10 s), their counts kept in memory; once the lock is free the flush writes each once."""
    path = tmp_path / "lineage.db"
    _, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM_STORED, UPSTREAM=upstream, STORE=str(path))
    assert loop_thread.run(calls(proxy.url, ["first"])) == [200]
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        labels = ["new-a", "new-b", "new-c"]
        began = time.monotonic()
        assert loop_thread.run(calls(proxy.url, labels), timeout=120) == [200] * 3
        waited = time.monotonic() - began
        assert waited < 8, waited  # one busy timeout (3 s); it was 10 s
    finally:
        other.execute("ROLLBACK")
        other.close()
    loop_thread.run(proxy.process.runtime.sinks.flush())
    reader = SqliteStore(path, readonly=True)
    try:
        found = {r.key: r.count for r in reader.rows()}
        assert sorted(key.input_labels for key in found) == ["first", *labels] and set(found.values()) == {1}
        assert reader.integrity().intact
    finally:
        reader.close()


SIBLING_CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: ads}
zones:
  - {name: recorded-data, labels: [recorded], allow_purposes: [ads], require_record: true}
lineage: {store: "${STORE}"}
"""


def test_a_sibling_workers_purge_holding_the_write_lock_a_second_fails_no_require_record_call(
    tmp_path: Path, vllm: Any, make_proxy: Any, loop_thread: LoopThread
) -> None:
    """Workers share one SQLite store, and a sibling's retention purge holds its write lock for as long as it
    reads and rewrites the table (~1 s for 100,000 edges, at every start and hourly). A new flow's write waits
    that out: its `require_record` zone's calls are answered, not failed closed (with a 0.5 s busy timeout,
    the write gave up, and the zone's calls were refused 503 until one got through). Another connection's
    write transaction, ended after a second, stands in for the purge."""
    path = tmp_path / "lineage.db"
    _, upstream = vllm
    proxy = make_proxy(SIBLING_CONFIG, UPSTREAM=upstream, STORE=str(path))
    assert loop_thread.run(calls(proxy.url, ["recorded"])) == [200]
    sibling = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    sibling.execute("BEGIN IMMEDIATE")  # the sibling's purge, under the write lock
    purge = threading.Timer(1.0, sibling.execute, ("ROLLBACK",))
    purge.start()
    try:
        assert loop_thread.run(calls(proxy.url, ["recorded,new-a"]), timeout=60) == [200]
        assert loop_thread.run(calls(proxy.url, ["recorded,new-b"]), timeout=60) == [200]
    finally:
        purge.join()
        sibling.close()
    loop_thread.run(proxy.process.runtime.sinks.flush())
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT sum(count) FROM edges").fetchone()[0] == 3
    finally:
        db.close()


# -- verify on a SQLite store whose chain was dropped


@pytest.mark.parametrize("drop", ["chain", "chain and meta"])
def test_verify_names_a_dropped_chain_as_dropped(tmp_path: Path, drop: str) -> None:
    """A store this release wrote (its meta table came with the chain; its edges are keyed by rule): a
    chain table missing there was dropped, never "written by a release before it"."""
    path = tmp_path / "lineage.db"
    store = SqliteStore(path)
    store.upsert([(KEY, 1.0, 1.0, 1, None)])
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE chain")
        if drop == "chain and meta":
            db.execute("DROP TABLE meta")
    done = subprocess.run([sys.executable, "-m", "proxy", "verify", "--store", str(path), "--integrity"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "it was dropped" in done.stdout and "written by a release before it" not in done.stdout, done.stdout
