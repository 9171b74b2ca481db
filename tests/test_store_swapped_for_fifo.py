"""A SQLite store (or its -journal) swapped for a FIFO after the reader's check, before SQLite opens it: the reader
says so and exits, where SQLite's open of the FIFO waited for a writer for ever and `verify` (a CI gate), `edges` and
`report` hung. The swap is made at that window exactly: `sqlite3.connect`, which the reader calls once its check has
passed, makes it first (the store's file) or right after (its -journal, which SQLite opens at the first read); a
reader's `Unblocker` ends the open SQLite waits in, and the read is refused as one of a file replaced (proof13)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.record.store import EdgeKey, SqliteStore

# the reader run with `sqlite3.connect` swapping the store's file, or its -journal, for a FIFO at the window
SWAPPING = """
import os, runpy, sqlite3, sys
store, where, args = sys.argv[1], sys.argv[2], sys.argv[3:]
real = sqlite3.connect

def swapping(*given, **named):
    if where == "store":
        os.rename(store, store + ".away")
        os.mkfifo(store)
        return real(*given, **named)
    opened = real(*given, **named)
    os.mkfifo(store + "-journal")
    return opened

sqlite3.connect = swapping
sys.argv = ["lineage-proxy", *args]
runpy.run_module("proxy", run_name="__main__")
"""

READERS = {
    "verify --integrity": (["verify", "--integrity"], 2),
    "edges": (["edges"], 1),
    "report": (["report", "--out", "OUT"], 1),
}


@pytest.mark.parametrize("where", ["store", "journal"])
@pytest.mark.parametrize("reader", READERS)
def test_a_store_swapped_for_a_fifo_after_the_check_is_refused_not_waited_on(
    tmp_path: Path, reader: str, where: str
) -> None:
    path = tmp_path / "lineage.db"
    store = SqliteStore(path)
    store.upsert([(EdgeKey("app", "assistant", "team-a", "ck", "", "allow"), 100.0, 100.0, 3, None)])
    store.close()
    args, code = READERS[reader]
    given = [str(tmp_path / "report.html") if arg == "OUT" else arg for arg in args]
    try:
        done = subprocess.run([sys.executable, "-c", SWAPPING, str(path), where, given[0], "--store", str(path),
                               *given[1:]], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"{reader} waited on the FIFO swapped in for the {where}")
    said = done.stdout + done.stderr
    assert done.returncode == code, said
    fifo = "by a FIFO" if where == "store" else f"{path}-journal beside it by a FIFO"
    assert f"{path}: replaced while it was read ({fifo}): what was read is not certain to be this store's" in said, said
    assert not (tmp_path / "report.html").exists()


# the reader run with `sqlite3.connect` swapping the -wal or -shm of a store a writer holds open for a FIFO first
SWAPPING_BESIDE = """
import os, runpy, sqlite3, sys
name, args = sys.argv[1], sys.argv[2:]
real = sqlite3.connect

def swapping(*given, **named):
    os.rename(name, name + ".away")
    os.mkfifo(name)
    return real(*given, **named)

sqlite3.connect = swapping
sys.argv = ["lineage-proxy", *args]
runpy.run_module("proxy", run_name="__main__")
"""


@pytest.mark.parametrize("beside", ["-wal", "-shm"])
@pytest.mark.parametrize("reader", READERS)
def test_a_wal_or_shm_swapped_for_a_fifo_is_said_so(tmp_path: Path, reader: str, beside: str) -> None:
    """SQLite opens a -wal and a -shm read-write, which a FIFO does not make wait: the read fails at once, before the
    Unblocker looks, and was said "cannot read it as a lineage store: disk I/O error" (verify; edges and report "not
    a lineage store: disk I/O error") where the README and CHANGELOG say a FIFO swapped in for either is said
    `replaced while it was read` (review revproof13)."""
    path = tmp_path / "lineage.db"
    store = SqliteStore(path)  # left open: its -wal and -shm are there, and the reader opens both
    store.upsert([(EdgeKey("app", "assistant", "team-a", "ck", "", "allow"), 100.0, 100.0, 3, None)])
    args, code = READERS[reader]
    given = [str(tmp_path / "report.html") if arg == "OUT" else arg for arg in args]
    try:
        done = subprocess.run([sys.executable, "-c", SWAPPING_BESIDE, f"{path}{beside}", given[0], "--store",
                               str(path), *given[1:]], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"{reader} waited on the FIFO swapped in for the {beside}")
    finally:
        store.close()
    said = done.stdout + done.stderr
    assert done.returncode == code, said
    assert f"{path}: replaced while it was read ({path}{beside} beside it by a FIFO): what was read" in said, said
    assert "disk I/O error" not in said and not (tmp_path / "report.html").exists(), said


def test_a_store_read_while_its_writer_writes_checkpoints_and_purges_is_read_not_refused(tmp_path: Path) -> None:
    """The refusal is of a file replaced, never of a store busy: a writer writing (its -wal growing), checkpointing
    the -wal into the file (TRUNCATE: the -wal emptied) and purging (pages freed) while `verify --integrity` and
    `edges` read it changes no file's identity and makes no FIFO, and every read is said as it is (review
    revproof13: 6 reads, none refused)."""
    import threading

    path = tmp_path / "lineage.db"
    store = SqliteStore(path)
    stop = threading.Event()
    written = [0]

    def write() -> None:
        while not stop.is_set():
            i = written[0]
            key = EdgeKey(f"caller-{i % 400}", "ads", "pii:email", "ck", "", "deny", "zone:x")
            store.upsert([(key, 100.0 + i, 100.0 + i, 1, "not allowed")])
            if i % 40 == 39:
                store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if i % 200 == 199:
                store.purge(0.001, now=100.0 + i)
            written[0] = i + 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(3):
            for args in (["verify", "--integrity"], ["edges", "--json"]):
                done = subprocess.run([sys.executable, "-m", "proxy", args[0], "--store", str(path), *args[1:]],
                                      capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
                said = done.stdout + done.stderr
                assert done.returncode == 0 and "replaced" not in said, (args, said)
    finally:
        stop.set()
        writer.join()
        store.close()
    assert written[0] > 200, written  # the reads overlapped writes, checkpoints and a purge


# the reader run with its store's link re-pointed, as the reader resolves it for SQLite, to a copy in another
# directory whose -journal is a FIFO
RELINKING = """
import os, pathlib, runpy, sys
link, other, args = sys.argv[1], sys.argv[2], sys.argv[3:]
real = pathlib.Path.resolve

def relinking(self, *given, **named):
    if str(self) == link and not os.path.lexists(other + "-journal"):
        os.mkfifo(other + "-journal")
        os.remove(link)
        os.symlink(other, link)
    return real(self, *given, **named)

pathlib.Path.resolve = relinking
sys.argv = ["lineage-proxy", *args]
runpy.run_module("proxy", run_name="__main__")
"""


@pytest.mark.parametrize("reader", ["verify --integrity", "edges"])
def test_a_link_repointed_to_a_store_with_a_fifo_beside_it_is_refused_not_waited_on(
    tmp_path: Path, reader: str
) -> None:
    """A store named by a link, re-pointed after the reader's check to the same file by another name in another
    directory (a hard link: the file checked, so no identity check refuses it) whose -journal is a FIFO: SQLite opens
    the file by the name the link gives then, and that name's -journal at its first read, which the Unblocker did not
    look at (the names it looks at were taken once, before the reader resolved the link for SQLite): the reader hung
    for ever. It looks at the names the link gives at each look too (review revproof13)."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    store = SqliteStore(first / "lineage.db")
    store.upsert([(EdgeKey("app", "assistant", "team-a", "ck", "", "allow"), 100.0, 100.0, 3, None)])
    store.close()
    os.link(first / "lineage.db", second / "lineage.db")  # the file checked, by another name: its identity holds
    link = tmp_path / "current.db"
    link.symlink_to(first / "lineage.db")
    args, code = READERS[reader]
    try:
        done = subprocess.run([sys.executable, "-c", RELINKING, str(link), str(second / "lineage.db"), args[0],
                               "--store", str(link), *args[1:]], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"{reader} waited on the FIFO beside the file its store's link was re-pointed to")
    said = done.stdout + done.stderr
    assert done.returncode == code, said
    assert f"{link}: replaced while it was read (" in said, said
