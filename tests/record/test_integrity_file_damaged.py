"""`verify --integrity` reads every line of SQLite's integrity check and calls a store NOT intact on any line but the
harmless ones (its "ok", and SQLite 3.40's "NULL value in edges.first_seen", last_seen and count of every row of an
untouched store): a page no table holds (where rows can be kept out of every read), or a page whose own header is
wrong. Until 2026-12-07 only the lines naming an index were taken, and a copy of a store changed by one byte write in
its file was called intact (proof13)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.record.store import EdgeKey, SqliteStore

PAGE = 4096  # SQLite's default page size, which the store keeps


def made(path: Path) -> None:
    """A store of 300 edges (and as many chain entries), checkpointed into the file, nothing left in its -wal."""
    store = SqliteStore(path)
    for i in range(300):
        key = EdgeKey(f"caller-{i:04d}", "ads", "pii:email", "ck", "", "deny", "zone:x")
        store.upsert([(key, 100.0, 100.0, 1, "not allowed")])
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert db.execute("PRAGMA page_size").fetchone()[0] == PAGE


def root(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0])


def written(path: Path, at: int, data: bytes) -> None:
    with path.open("r+b") as file:
        file.seek(at)
        file.write(data)


def unused_pages(path: Path, count: int) -> int:
    """`count` pages more in the file, counted in its header, that no table holds; the number of the first."""
    with path.open("r+b") as file:
        file.seek(28)
        pages = int.from_bytes(file.read(4), "big")
    written(path, 28, (pages + count).to_bytes(4, "big"))
    written(path, pages * PAGE, bytes(count * PAGE))
    return pages + 1


def fragments(path: Path, table: str, said: str) -> str:
    """The count of fragmented free bytes in the header of `table`'s root page made 127 (the page has none); what
    the check says first, `said` of that page."""
    page = root(path, table)
    written(path, (page - 1) * PAGE + 7, b"\x7f")
    return said.format(page=page)


DAMAGE: dict[str, Callable[[Path], str]] = {
    "a page no table holds": lambda path: f"Page {unused_pages(path, 1)} is never used): ",
    # an interior page: its children are then never used either
    "the chain's root page's fragment count": lambda path: fragments(
        path, "chain", "Page {page}: free space corruption; "
    ),
    "the edges' root page's fragment count": lambda path: fragments(
        path, "edges", "Fragmentation of 0 bytes reported as 127 on page {page}): "
    ),
}


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "verify", "--integrity", "--store", str(path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("damaged") / "lineage.db"
    made(path)
    return path


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_line_of_the_integrity_check_naming_no_index_is_not_intact(
    original: Path, tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "lineage.db"
    shutil.copy(original, path)
    line = DAMAGE[damage](path)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:  # the rows still read as the chain signed them
        assert len(db.execute("SELECT * FROM edges").fetchall()) == 300
    said = verify(path)
    assert said.returncode == 1, said.stdout + said.stderr
    assert (f"NOT intact: the store's file is not as SQLite's own structure says it must be (SQLite's integrity "
            f"check: {line}") in said.stdout, said.stdout  # fmt: skip


def test_the_untouched_copy_is_intact(original: Path, tmp_path: Path) -> None:
    """The copy the damage is done to, as it is: 900 lines of SQLite 3.40's "NULL value in edges..." are harmless."""
    path = tmp_path / "lineage.db"
    shutil.copy(original, path)
    said = verify(path)
    assert said.returncode == 0 and "intact: 301 chain entries" in said.stdout, said.stdout + said.stderr


def test_many_lines_are_quoted_five_and_counted(original: Path, tmp_path: Path) -> None:
    """A check of many lines (each page past the header's count never used) quotes five and counts the rest."""
    path = tmp_path / "lineage.db"
    shutil.copy(original, path)
    first = unused_pages(path, 8)
    said = verify(path)
    assert said.returncode == 1, said.stdout + said.stderr
    quoted = "; ".join(f"Page {page} is never used" for page in range(first, first + 5))
    assert f"(SQLite's integrity check: {quoted}; and 3 more lines): " in said.stdout, said.stdout


def test_a_store_purged_vacuumed_and_holding_overflow_pages_is_intact(tmp_path: Path) -> None:
    """What a writer and an operator leave is no damage: pages freed by a retention purge (on the freelist), the file
    rebuilt by a VACUUM, rows too long for a page (overflow pages), a -wal not checkpointed under a writer still open:
    each is intact, every line of SQLite's integrity check harmless (review revproof13: a false NOT intact would tell
    an auditor of a tampering that never was)."""
    path = tmp_path / "lineage.db"
    store = SqliteStore(path)
    for i in range(600):
        key = EdgeKey(f"caller-{i:04d}", "ads", "pii:email", "ck", "", "deny", "zone:x")
        store.upsert([(key, 100.0 + i, 100.0 + i, 1, "why " * (2000 if i % 50 == 0 else 3))])
    assert store.purge(1.0, now=100.0 + 300 + 86400) == 300
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA freelist_count").fetchone()[0] > 0  # the purge's pages, free
    store.upsert([(EdgeKey("late", "ads", "pii:email", "ck", "", "deny", "zone:x"), 90000.0, 90000.0, 1, "x")])
    said = verify(path)  # the writer open, its last writes in the -wal
    assert said.returncode == 0 and ": intact: 2 chain entries" in said.stdout, said.stdout + said.stderr
    store.close()
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("VACUUM")
        assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0
    said = verify(path)
    assert said.returncode == 0 and ": intact: 2 chain entries" in said.stdout, said.stdout + said.stderr
