"""A SQLite store another process holds a lock on, for longer than a reader or a writer's open waits: a store in
rollback-journal mode (converted by hand, an old copy, a restore) whose write is under way, as a `sqlite3` shell's open
`BEGIN EXCLUSIVE` holds it, or a WAL store held by a connection in exclusive locking mode, or whose write lock a shell
holds as `serve` starts. It is a store being written, not one that is no lineage store: `edges`, `verify` and `report`
said `not a lineage store: database is locked` (verify --integrity `cannot read it as a lineage store: ...`), and
`serve` `cannot open the lineage store ...: database is locked`, naming neither the lock nor its holder. Now each says
it is busy, which process holds the lock (Linux's /proc/locks), how long it waited, and what to do; exit 1 (verify 2).

The holder is a real `sqlite3` shell (a process of its own: /proc/locks names it); the commands run as users run them."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from proxy.errors import StartupError
from proxy.record.journal import Journal
from proxy.record.store import EdgeKey, SqliteStore, StoreBusy, lock_holders
from tests.test_check_store_location import CONFIG

READERS = [(("edges",), 1), (("verify", "--integrity"), 2), (("verify", "--baseline", "BASELINE"), 2),
           (("report", "--out", "OUT"), 1)]  # fmt: skip
_WRITER_SAYS = ("as a transaction under way does (a write's, or in a store not in WAL mode a read's too) (a sqlite3 "
                "shell's open transaction, a VACUUM, a restore), or a connection in exclusive locking mode (SQLite: "
                "database is locked): ")  # fmt: skip
_SAYS = ("as a write under way in a store not in WAL mode does (a sqlite3 shell's open transaction, a VACUUM, a "
         "restore), or a connection in exclusive locking mode (SQLite: database is locked): ")  # fmt: skip


def written(path: Path, journal_mode: str) -> None:
    store = SqliteStore(path)
    store.upsert([(EdgeKey("app", "assistant", "team-a", "ck", "", "allow"), 100.0, 100.0, 3, None)])
    store.close()
    if journal_mode != "wal":
        converted = sqlite3.connect(path)
        assert converted.execute(f"PRAGMA journal_mode={journal_mode}").fetchone() == (journal_mode,)
        converted.close()


@contextmanager
def held(path: Path, *statements: str) -> Iterator[int]:
    """A `sqlite3` shell on `path` that has run `statements` and holds what they took until the block ends; its pid."""
    shell = shutil.which("sqlite3")
    if shell is None:
        pytest.skip("no sqlite3 shell (Debian's sqlite3 package)")
    holder = subprocess.Popen([shell, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write("".join(f"{statement};\n" for statement in statements) + ".print held\n")
        holder.stdin.flush()
        while (line := holder.stdout.readline()) != "held\n":  # (what a statement prints before it)
            assert line, "the sqlite3 shell ended"
        yield holder.pid
    finally:
        holder.communicate(".quit\n", timeout=30)


def _command(args: tuple[str, ...], store: Path, tmp_path: Path) -> list[str]:
    (tmp_path / "baseline.yaml").write_text("flows: []\n")
    given = [str(tmp_path / "baseline.yaml") if a == "BASELINE" else str(tmp_path / "r.html") if a == "OUT" else a
             for a in args]  # fmt: skip
    return [sys.executable, "-m", "proxy", given[0], "--store", str(store), *given[1:]]


def _readers_under(store: Path, tmp_path: Path) -> list[tuple[tuple[str, ...], int, subprocess.Popen[str]]]:
    """Every reader started at once (each waits its 10 s for the lock), as users run them."""
    return [(args, code, subprocess.Popen(_command(args, store, tmp_path), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL))
            for args, code in READERS]  # fmt: skip


@pytest.mark.parametrize(
    ("journal_mode", "statements"),
    [("delete", ("BEGIN EXCLUSIVE",)), ("wal", ("PRAGMA locking_mode=EXCLUSIVE", "BEGIN EXCLUSIVE", "COMMIT"))],
    ids=["rollback-journal store, BEGIN EXCLUSIVE", "WAL store, exclusive locking mode"],
)
def test_a_store_whose_lock_is_held_is_said_busy_by_each_reader(
    tmp_path: Path, journal_mode: str, statements: tuple[str, ...]
) -> None:
    """On main: 8 of 8 said `not a lineage store: database is locked` (verify --integrity `cannot read it as a lineage
    store: database is locked`), after the same 10 s."""
    store = tmp_path / "lineage.db"
    written(store, journal_mode)
    with held(store, *statements) as pid:
        assert lock_holders(str(store)) == [pid]
        began = time.monotonic()
        readers = _readers_under(store, tmp_path)
        done = [(args, code, process.communicate(timeout=60)) for args, code, process in readers]
        waited = time.monotonic() - began
        codes = [process.returncode for _, _, process in readers]
    assert 10.0 <= waited < 20.0, waited  # each waits its 10 s once: the open waits for no lock (review revrec16)
    for (args, code, (out, err)), got in zip(done, codes, strict=True):
        assert got == code, (args, got, out, err)
        assert err == (f"lineage-proxy {args[0]}: {store}: busy: process {pid} held a lock on it for the 10 s this read "
                       f"waits for one, {_SAYS}nothing was read: read it again once it is released\n"), err  # fmt: skip
    assert not (tmp_path / "r.html").exists()
    with held(store, "BEGIN"):  # a shell whose transaction has taken no lock yet keeps no reader out
        assert lock_holders(str(store)) == []
        read = subprocess.run(
            _command(("edges", "--json"), store, tmp_path), capture_output=True, text=True, timeout=60
        )
    assert read.returncode == 0 and '"caller":"app"' in read.stdout, read


@pytest.mark.parametrize(
    ("journal_mode", "statements"),
    [("delete", ("BEGIN EXCLUSIVE",)), ("delete", ("BEGIN", "SELECT count(*) FROM edges")),
     ("wal", ("BEGIN IMMEDIATE",))],
    ids=["rollback-journal store, BEGIN EXCLUSIVE", "rollback-journal store, a read transaction",
         "WAL store, its write lock"],
)  # fmt: skip
def test_serve_on_a_store_whose_lock_is_held_past_its_wait_says_it_is_busy(
    tmp_path: Path, journal_mode: str, statements: tuple[str, ...]
) -> None:
    """`serve` waits 10 s for the lock, then refuses its start, exit 1, never ready, naming the holder (of a WAL store's
    write lock, by its lock on the -shm; of a read transaction in a rollback-journal store, which its switch to WAL mode
    waits for, by its read lock). On main: 3 of 3 said `cannot open the lineage store ...: database is locked`."""
    store = tmp_path / "lineage.db"
    written(store, journal_mode)
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("LINEAGE", f'{{store: "{store}"}}'))
    with held(store, *statements) as pid:
        done = subprocess.run([sys.executable, "-m", "proxy", "serve", "--config", str(config)], capture_output=True,
                              text=True, timeout=90, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 1, done
    assert "lineage-proxy ready" not in done.stdout and "Traceback" not in done.stderr, done
    assert done.stderr.endswith(
        f"lineage-proxy serve: cannot open the lineage store {store}: busy: process {pid} held a lock on it for the 10 s "
        f"this open for writing waits for one, {_WRITER_SAYS}open it again once it is released\n"
    ), done.stderr


@pytest.mark.parametrize("given", ["a path", "a file: URI"])
def test_the_demo_on_a_store_whose_lock_is_held_says_it_is_busy(tmp_path: Path, given: str) -> None:
    """`demo --store`'s look at the store (is it a demo's?) waits 10 s for the lock, then refuses, exit 1, the store left
    as it was, nothing made beside it, named as given, as its other refusals name it. On main: its three reads took 5 s
    each and were each taken as none (no flows: a new file), then the writer's open said `cannot open the lineage store
    ...: database is locked` after 10 s more (1 of 1); a lock released within those 25 s let the demo add its calls to a
    proxy's own record. On h-rec17 `--store file:X` was said `--store X: busy: ...` (1 of 2; review revrec17)."""
    store = tmp_path / "lineage.db"
    written(store, "delete")
    before = store.read_bytes()
    named = str(store) if given == "a path" else f"file:{store}"
    with held(store, "BEGIN EXCLUSIVE") as pid:
        began = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "proxy", "demo", "--store", named], capture_output=True,
                              text=True, timeout=90, stdin=subprocess.DEVNULL)  # fmt: skip
        waited = time.monotonic() - began
    assert done.returncode == 1 and not done.stdout, done
    assert done.stderr == (f"lineage-proxy demo: --store {named}: busy: process {pid} held a lock on it for the 10 s "
                           f"this read waits for one, {_SAYS}nothing was read: run the demo again once it is "
                           "released\n"), done.stderr  # fmt: skip
    assert waited < 20.0, waited
    assert store.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lineage.db"]  # nothing made beside it (a marker, a -wal)


def test_serve_whose_journal_is_held_past_its_wait_says_it_is_busy(tmp_path: Path, postgres: Any) -> None:
    """A PostgreSQL store's local journal (`lineage.journal`, SQLite) whose lock a shell holds as `serve` starts: said
    busy, its holder named, exit 1. On main: `cannot open the lineage journal .../journal.db: database is locked`,
    neither the lock's holder nor the wait said (1 of 1)."""
    journal = tmp_path / "journal.db"
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("LINEAGE", f'{{store: "{postgres.database()}", journal: "{journal}"}}'))
    with held(journal, "BEGIN EXCLUSIVE", "CREATE TABLE t (x)") as pid:
        done = subprocess.run([sys.executable, "-m", "proxy", "serve", "--config", str(config)], capture_output=True,
                              text=True, timeout=90, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 1, done
    assert "lineage-proxy ready" not in done.stdout and "Traceback" not in done.stderr, done
    assert done.stderr.endswith(
        f"lineage-proxy serve: cannot open the lineage journal {journal}: busy: process {pid} held a lock on it for the "
        f"10 s this open for writing waits for one, {_WRITER_SAYS}open it again once it is released\n"
    ), done.stderr


_PENDING = 0x40000000  # os_unix.c's PENDING_BYTE, RESERVED_BYTE after it, then the 510 bytes of SHARED_FIRST..
_SHARED_LAST = _PENDING + 2 + 510 - 1


@pytest.mark.parametrize(
    ("start", "length"),
    [(_PENDING - 10, 11), (0, 0), (_PENDING + 1, 1), (_SHARED_LAST, 1), (_SHARED_LAST + 1, 10), (0, _PENDING),
     (_SHARED_LAST + 1, 0)],
    ids=["through the pending byte, from before it", "the whole file (lockf's 0 to EOF)", "the reserved byte alone",
         "the shared range's last byte", "past the shared range", "up to the pending byte",
         "from past the shared range to EOF"],
)  # fmt: skip
def test_a_lock_is_named_as_its_holder_when_it_keeps_readers_out(tmp_path: Path, start: int, length: int) -> None:
    """Another program's POSIX write lock on a range of the store's bytes (`lockf`): its holder is named exactly when
    the lock keeps a reader out, as SQLite's own read (its read lock on the pending byte, then on the shared range)
    finds. On h-rec17, which took a lock starting at the pending byte or ending past the reserved one: one through the
    pending byte from before it was no holder's ('another process'), one past the shared range (to its end, or to EOF)
    a holder's (3 of 7; review revrec17)."""
    store = tmp_path / "lineage.db"
    written(store, "delete")
    script = ("import fcntl, sys\nf = open(sys.argv[1], 'r+b')\n"
              "fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, int(sys.argv[3]), int(sys.argv[2]))\n"
              "print('held', flush=True)\nsys.stdin.readline()\n")  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", script, str(store), str(start), str(length)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        reader = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True, timeout=0)
        try:
            reader.execute("SELECT count(*) FROM edges").fetchone()
            kept_out = False
        except sqlite3.OperationalError as exc:
            assert "database is locked" in str(exc), exc
            kept_out = True
        finally:
            reader.close()
        assert lock_holders(str(store)) == ([holder.pid] if kept_out else []), kept_out
    finally:
        holder.communicate("\n", timeout=30)


@pytest.mark.parametrize("opened", ["store", "journal"])
def test_an_open_for_writing_waits_10_s_in_all_for_the_read_and_the_switch_to_wal(tmp_path: Path, opened: str) -> None:
    """A file not in WAL mode held by a write (`BEGIN EXCLUSIVE`) for 8 s, then by a read transaction until the open
    ends: the open's read of its tables waits for the first, its switch to WAL mode for the second, 10 s for both (then
    the write lock's 10 s: the 2 x 10 s a start counts, `stores.open_waits_s`), and says it busy after them. On h-rec17
    each waited its own 10 s: said busy `for the 10 s` after 18 s, and an open up to 30 s (2 of 2; review revrec17)."""
    path = tmp_path / "lineage.db"
    if opened == "store":
        written(path, "delete")
    else:
        Journal(path).close()
        converted = sqlite3.connect(path)
        assert converted.execute("PRAGMA journal_mode=delete").fetchone() == ("delete",)
        converted.close()
    shell = shutil.which("sqlite3")
    if shell is None:
        pytest.skip("no sqlite3 shell (Debian's sqlite3 package)")
    holder = subprocess.Popen([shell, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write("BEGIN EXCLUSIVE;\n.print held\n")
    holder.stdin.flush()
    assert holder.stdout.readline() == "held\n"

    def to_a_read() -> None:  # the write ends and a read begins at once: the open's read gets in, its switch does not
        assert holder.stdin is not None
        holder.stdin.write("COMMIT; BEGIN; SELECT count(*) > 0 FROM sqlite_master;\n")
        holder.stdin.flush()

    switched = threading.Timer(8.0, to_a_read)  # the scenario's 8 s write, not a synchronisation
    try:
        began = time.monotonic()
        switched.start()
        with pytest.raises((StoreBusy, StartupError)) as refused:
            if opened == "store":
                SqliteStore(path).close()
            else:
                Journal(path).close()
        waited = time.monotonic() - began
    finally:
        switched.cancel()
        holder.communicate(".quit\n", timeout=30)
    assert 9.5 <= waited < 13.0, waited
    assert f"busy: process {holder.pid} held a lock on it for the 10 s this open for writing waits for one" in str(
        refused.value
    ), refused.value
