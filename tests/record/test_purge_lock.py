"""A SQLite store's retention purge under the write lock, which a sibling worker's writes wait for (the busy
timeout, 3 s, then `require_record` zones fail closed): the chain is replayed and compared with the table,
and the snapshot written out, before it, in a read transaction, so the lock no longer covers a read of the
whole table; and what changes between the two is still never signed over."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from proxy.record.store import EdgeKey, PreparedPurge, SqliteStore

NOW = 100 * 86400.0
OLD = EdgeKey("old", "assistant", "team-a", "ckpt", "team-a", "allow")
MID = OLD._replace(caller="mid")


def store_of(path: Path, kept: int) -> SqliteStore:
    """A store of `kept` edges seen now and one (OLD) last seen 40 days ago, written in one chain entry."""
    store = SqliteStore(path)
    rows = [(EdgeKey(f"caller-{i}", "assistant", "team-a", "ckpt", "team-a", "allow"), NOW, NOW, 2, None)
            for i in range(kept)]  # fmt: skip
    store.upsert([(OLD, NOW - 40 * 86400, NOW - 40 * 86400, 1, None), *rows])
    return store


def steps_under_the_write_lock(store: SqliteStore, path: Path) -> int:
    """The SQLite VM instructions the store's connection runs while it holds the write lock in a purge
    prepared as the aggregator does (`prepare_purge` first, on a connection of its own)."""
    prepared = store.prepare_purge(30, now=NOW)
    assert prepared is not None
    steps, purged = steps_of_purge(store, 30, prepared)
    assert purged == 1
    assert [row.key for row in SqliteStore(path, readonly=True).rows() if row.key == OLD] == []
    assert store.integrity().intact
    return steps


def steps_of_purge(store: SqliteStore, days: float, prepared: PreparedPurge) -> tuple[int, int]:
    """The SQLite VM instructions the store's connection runs while it holds the write lock in
    `store.purge(days, NOW, prepared)`, and what that returns."""
    steps = 0
    locked = False

    def trace(statement: str) -> None:
        nonlocal locked
        if statement.startswith("BEGIN IMMEDIATE"):
            locked = True
        elif statement in ("COMMIT", "ROLLBACK"):
            locked = False

    def progress() -> int:
        nonlocal steps
        steps += 10 if locked else 0
        return 0

    db: sqlite3.Connection = store._db
    db.set_trace_callback(trace)
    db.set_progress_handler(progress, 10)
    try:
        purged = store.purge(days, NOW, prepared)
    finally:
        db.set_progress_handler(None, 0)
        db.set_trace_callback(None)
    assert not locked  # the write transaction was seen to end
    return steps, purged


def test_the_work_a_purge_does_under_the_write_lock_does_not_grow_with_the_table(tmp_path: Path) -> None:
    """It read and compared the whole table under the lock, twice (the chain's replay against it, then the
    table left by the delete): 2.6-2.9 s for 100,000 edges here, 4.7-10 s for 300,000 (0.3 s and 1.3-1.8 s now),
    past the 3 s a sibling's write waits, so its calls in `require_record` zones were refused at every purge.
    Ten times the edges now cost the SQLite work under the lock nothing more (it was ten times as much)."""
    small = steps_under_the_write_lock(store_of(tmp_path / "small.db", 2_000), tmp_path / "small.db")
    large = steps_under_the_write_lock(store_of(tmp_path / "large.db", 20_000), tmp_path / "large.db")
    assert large < 2 * small, (small, large)  # 60,240 and 600,240 before; now 250 each


def test_an_expiring_edge_edited_after_the_replay_is_not_purged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The row the delete removes was edited between the replay (which verified) and the write lock: the
    delete's check finds it (no longer a comparison of the whole table), and nothing is purged or signed."""
    path = tmp_path / "s.db"
    store = store_of(path, 3)
    prepared = store.prepare_purge(30, now=NOW)
    assert prepared is not None
    with sqlite3.connect(path) as editor:
        editor.execute("UPDATE edges SET count = 7 WHERE caller = 'old'")
    with caplog.at_level(logging.ERROR, logger="lineage_proxy.edges"):
        assert store.purge(30, NOW, prepared) == 0
    assert "retention purge skipped" in caplog.text
    assert OLD in {row.key for row in store.rows()}
    assert "count 7" in (store.integrity().problem or "")  # the edit is still named


def test_a_kept_edge_edited_after_the_replay_is_never_signed(tmp_path: Path) -> None:
    """A kept row edited between the replay and the write lock (the purge no longer compares the whole table
    under the lock, so it goes on): its snapshot signs what the chain says of that row (count 2), never the
    table's edit, which `verify` still names."""
    path = tmp_path / "s.db"
    store = store_of(path, 3)
    prepared = store.prepare_purge(30, now=NOW)
    assert prepared is not None
    with sqlite3.connect(path) as editor:
        editor.execute("UPDATE edges SET count = 9 WHERE caller = 'caller-1'")
    assert store.purge(30, NOW, prepared) == 1
    problem = store.integrity().problem or ""
    assert "caller-1" in problem and "count 9" in problem and "count 2" in problem, problem


def test_writes_appended_between_the_replay_and_the_lock_follow_the_snapshot(tmp_path: Path) -> None:
    """A sibling's writes after the replay (a new flow, more calls of a kept one): the snapshot made before the
    lock is appended, then their changes again as one entry; the counts are all there and the record verifies."""
    path = tmp_path / "s.db"
    store = store_of(path, 3)
    prepared = store.prepare_purge(30, now=NOW)
    assert prepared is not None
    sibling = SqliteStore(path)
    sibling.upsert(
        [(OLD._replace(caller="new"), NOW, NOW, 1, None), (OLD._replace(caller="caller-0"), NOW, NOW, 5, None)]
    )
    sibling.upsert([(OLD._replace(caller="caller-0"), NOW + 1, NOW + 1, 1, "why")])
    assert store.purge(30, NOW, prepared) == 1
    assert store.integrity().intact and store.integrity().entries == 2  # the snapshot, the writes since
    assert {row.key.caller: row.count for row in store.rows()} == {
        "caller-0": 8,
        "caller-1": 2,
        "caller-2": 2,
        "new": 1,
    }
    assert store.prepare_purge(30, now=NOW) is None  # nothing expired


def test_a_write_since_the_replay_that_keeps_an_expiring_edge_makes_the_snapshot_again(tmp_path: Path) -> None:
    """A sibling's call of an edge that had expired when the replay read it: that edge stays, the other
    expired one goes, and the snapshot, made again under the lock, signs what the table holds."""
    path = tmp_path / "s.db"
    store = store_of(path, 2)
    store.upsert([(OLD._replace(caller="old-2"), NOW - 50 * 86400, NOW - 50 * 86400, 4, None)])
    prepared = store.prepare_purge(30, now=NOW)
    assert prepared is not None
    SqliteStore(path).upsert([(OLD, NOW, NOW, 1, None)])
    assert store.purge(30, NOW, prepared) == 1
    assert store.integrity().intact and store.integrity().entries == 1  # the snapshot alone
    assert {row.key.caller: row.count for row in store.rows()} == {"old": 2, "caller-0": 2, "caller-1": 2}


def after_a_sibling_purged(path: Path, kept: int) -> tuple[SqliteStore, int, int]:
    """A purge (cutoff 33 days ago) whose read was followed, before its lock, by a sibling's purge with an
    earlier cutoff (38 days), which removed OLD and cut the chain; MID, 35 days old, is still expired.
    The store, the SQLite steps the purge took under the write lock, and what it returned."""
    store = store_of(path, kept)
    store.upsert([(MID, NOW - 35 * 86400, NOW - 35 * 86400, 1, None)])
    prepared = store.prepare_purge(33, now=NOW)
    assert prepared is not None
    assert SqliteStore(path).purge(38, NOW) == 1
    return store, *steps_of_purge(store, 33, prepared)


def test_a_chain_cut_by_a_sibling_after_the_read_is_not_replayed_under_the_lock(tmp_path: Path) -> None:
    """It was replayed again from its anchor, and the whole table read and compared, under the write lock:
    2.75 s for 100,000 edges here, against the 3 s a sibling's write waits (30,290 SQLite steps for 2,000
    edges, 300,290 for 20,000). The purge now leaves what is still expired to the next one."""
    store, small, purged = after_a_sibling_purged(tmp_path / "small.db", 2_000)
    large = after_a_sibling_purged(tmp_path / "large.db", 20_000)[1]
    assert large < 2 * small, (small, large)
    assert purged == 0 and store.integrity().intact and MID in {row.key for row in store.rows()}
    again = store.prepare_purge(33, now=NOW)  # the next purge reads the chain again
    assert again is not None and store.purge(33, NOW, again) == 1
    assert store.integrity().intact and MID not in {row.key for row in store.rows()}


def test_a_snapshot_made_again_under_the_lock_reads_no_more_of_the_table(tmp_path: Path) -> None:
    """A sibling's write during the read touched an edge that had expired, so the snapshot is made again
    under the lock, from the replay in memory (a sort and its text, 0.5 s for 100,000 edges): what SQLite
    does under the lock still reads only the expired rows, never the whole table."""

    def steps(path: Path, kept: int) -> int:
        store = store_of(path, kept)
        store.upsert([(OLD._replace(caller="old-2"), NOW - 50 * 86400, NOW - 50 * 86400, 4, None)])
        prepared = store.prepare_purge(30, now=NOW)
        assert prepared is not None
        SqliteStore(path).upsert([(OLD, NOW, NOW, 1, None)])
        taken, purged = steps_of_purge(store, 30, prepared)
        assert purged == 1 and store.integrity().intact and store.integrity().entries == 1  # the snapshot alone
        return taken

    small = steps(tmp_path / "small.db", 2_000)
    large = steps(tmp_path / "large.db", 20_000)
    assert large < 2 * small, (small, large)
