"""A SQLite store numbers its chain entries one after another (AUTOINCREMENT, in the write transaction that
appends them, so a failed write's number is rolled back with it) and never gives a number twice. The hash
links name an entry removed from the middle; the numbers name what the links cannot: the newest entries cut
away (sqlite_sequence keeps the highest number given), entries written after such a cut (a gap), and a chain
started again after the store was emptied (a first entry no purge cut, numbered past 1)."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.record import integrity
from proxy.record.store import EdgeKey, SqliteStore
from tests.record.conftest import forge_unsigned_chain

KEY = b"kept-out-of-the-store's-reach-32b"
A = EdgeKey("app", "assistant", "a", "ck", "", "allow")
DENIED = EdgeKey("app", "ads", "health", "", "", "deny", "zone:h")


def verify(store: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "verify", "--store", str(store), "--integrity", *extra],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def problem(path: Path, key: bytes | None = KEY) -> str | None:
    reader = SqliteStore(path, readonly=True)
    try:
        return reader.integrity(key).problem
    finally:
        reader.close()


def written(path: Path, key: bytes | None = KEY) -> SqliteStore:
    store = SqliteStore(path, key=key)
    store.upsert([(A, 100.0, 100.0, 1, None)])
    store.upsert([(DENIED, 101.0, 101.0, 2, "purpose ads is not allowed for health")])
    store.upsert([(A, 102.0, 102.0, 1, None)])
    return store


def cut_newest(path: Path) -> None:
    """The newest entry deleted and the count it added taken back: a shorter record the links cannot tell."""
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM chain WHERE seq = (SELECT max(seq) FROM chain)")
        db.execute("UPDATE edges SET count = 1, last_seen = 100 WHERE input_labels = 'a'")


def test_the_newest_entries_cut_away_are_named(tmp_path: Path) -> None:
    path = tmp_path / "lineage.db"
    written(path).close()
    cut_newest(path)
    key_file = tmp_path / "chain.key"
    key_file.write_bytes(KEY)
    result = verify(path, "--key-file", str(key_file))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "entry 3, the newest kept, is not the newest written" in result.stdout, result.stdout
    assert "so entry 4 was cut away" in result.stdout, result.stdout


def test_entries_written_after_a_cut_show_the_gap(tmp_path: Path) -> None:
    path = tmp_path / "lineage.db"
    store = written(path)
    cut_newest(path)
    store.upsert([(A, 103.0, 103.0, 1, None)])  # the running writer chains onto the entry left newest
    store.close()
    found = problem(path)
    assert found is not None and "entry 5 follows entry 3: the entries numbered between them were removed" in found


def test_an_unkeyed_chain_started_again_after_emptying_is_named(tmp_path: Path) -> None:
    """Without a key a chain can be rebuilt whole; rebuilt in place, its first entry's number gives it away."""
    path = tmp_path / "lineage.db"
    written(path, None).close()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM edges WHERE decision = 'deny'")
        forge_unsigned_chain(db, "?")
    found = problem(path, None)
    assert found is not None and "the chain's first entry, which no retention purge cut, is numbered 5, not 1" in found


def test_a_purge_never_cuts_a_chain_with_a_gap_away(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A purge would replace the entries before its snapshot, the gap with them: it waits instead."""
    path = tmp_path / "lineage.db"
    store = written(path)
    cut_newest(path)
    store.upsert([(A, 103.0, 103.0, 1, None)])
    with caplog.at_level(logging.ERROR, logger="lineage_proxy.edges"):
        assert store.purge(30) == 0
    store.close()
    assert "retention purge skipped" in caplog.text and "entries numbered between them were removed" in caplog.text
    assert problem(path) is not None


def test_purges_and_writes_keep_the_numbers_whole(tmp_path: Path) -> None:
    path = tmp_path / "lineage.db"
    store = written(path)
    store.upsert([(EdgeKey("app", "assistant", "new", "ck", "", "allow"), 1e9, 9e9, 1, None)])
    assert store.purge(30) == 2  # the 1970 edges: the chain cut down to a snapshot, then written on
    store.upsert([(EdgeKey("app", "assistant", "new", "ck", "", "allow"), 9e9, 9e9, 1, None)])
    store.close()
    assert problem(path) is None
    reader = SqliteStore(path, readonly=True)
    report = reader.integrity(KEY)
    reader.close()
    assert report.intact and report.entries == 2 and isinstance(report.head, str)


def test_numbers_are_checked_by_the_replay_alone() -> None:
    """`Replay(numbered=True)` on entries as a store hands them: a gap named, whole numbers not."""

    def entries(numbers: list[int]) -> list[integrity.Entry]:
        made, prev = [], integrity.GENESIS
        for n, seq in enumerate(numbers):
            kind = integrity.SNAPSHOT if n == 0 else integrity.EDGES
            text = integrity.body(kind, [])
            made.append(integrity.Entry(seq, 0.0, text, prev, integrity.link(prev, text, None)))
            prev = made[-1].hash
        return made

    whole = integrity.Replay(integrity.GENESIS, None, numbered=True)
    whole.feed(entries([1, 2, 3]))
    assert whole.finish([], numbered_to=3).intact
    gap = integrity.Replay(integrity.GENESIS, None, numbered=True)
    gap.feed(entries([1, 2, 5]))
    assert "entry 5 follows entry 2" in (gap.finish([]).problem or "")
    unnumbered = integrity.Replay(integrity.GENESIS, None)  # PostgreSQL's sequence skips numbers by design
    unnumbered.feed(entries([1, 2, 5]))
    assert unnumbered.finish([]).intact
