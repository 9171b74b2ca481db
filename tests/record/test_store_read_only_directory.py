"""A SQLite store in a directory the reader may not write in (a CI job reading a record its proxy's user owns), or on a
read-only file system (a volume mounted `ro`): the proxy writes its store in WAL mode, and SQLite reads such a store
with its -shm file beside it, which the last connection removed and which a reader cannot make there. `edges`, `verify`
and `report` said `not a lineage store: attempt to write a readonly database` (verify --integrity `cannot read it as a
lineage store: ...`): a lineage store called none, and neither the directory nor the fix named. Now each says why at
its open, naming the directory, and exits 1 (verify 2). A store whose -shm is there (its proxy running) is read there
as before, and a file the reader may not read is said so, where it was `unable to open database file`.

Run through the command line as users run it; a directory the user may not write in is one mode 0555, and as root (who
writes anywhere) the commands run without CAP_DAC_OVERRIDE (setpriv), as the store location tests do."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from proxy.record.store import EdgeKey, SqliteStore
from tests.test_check_store_location import CONFIG, no_dac
from tests.test_markers_unwritable_directory import unshare

READERS = [(("edges",), 1), (("verify", "--integrity"), 2), (("verify", "--baseline", "BASELINE"), 2),
           (("report", "--out", "OUT"), 1)]  # fmt: skip


def written(path: Path) -> None:
    store = SqliteStore(path)
    store.upsert([(EdgeKey("app", "assistant", "team-a", "ck", "", "allow"), 100.0, 100.0, 3, None)])
    store.close()  # (the last connection: SQLite removes the -wal and -shm)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def written_with_wal(path: Path) -> None:
    """A store with writes in its -wal, as a copy made while its proxy ran (a backup, a volume snapshot): the file and
    its -wal, without the -shm, written at `path` (the proxy's own in a directory beside it)."""
    live = path.parent.parent / f"{path.parent.name}-live" / path.name
    live.parent.mkdir()
    writer = SqliteStore(live)
    try:
        writer.upsert([(EdgeKey("app", "assistant", "team-a", "ck", "", "allow"), 100.0, 100.0, 3, None)])
        for name in (path.name, f"{path.name}-wal"):
            shutil.copyfile(live.parent / name, path.parent / name)
    finally:
        writer.close()


def reader(store: Path, args: tuple[str, ...], tmp_path: Path, run_by: list[str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "baseline.yaml").write_text("flows: []\n")
    given = [str(tmp_path / "baseline.yaml") if a == "BASELINE" else str(tmp_path / "r.html") if a == "OUT" else a
             for a in args]  # fmt: skip
    command = [*run_by, sys.executable, "-m", "proxy", given[0], "--store", str(store), *given[1:]]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def _prefix(args: tuple[str, ...]) -> str:
    return f"lineage-proxy {args[0]}"


@pytest.mark.parametrize(("args", "code"), READERS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v))
def test_a_store_with_writes_in_its_wal_in_a_directory_the_reader_may_not_write_in_is_said_so(
    tmp_path: Path, args: tuple[str, ...], code: int
) -> None:
    """SQLite reads a -wal's writes only through a -shm, which the reader cannot make there (an immutable read would
    leave them out). A pin: passes on main, which said so of a store with no -wal too (until 2026-12-07 the store here
    had none, which is read now: the test below)."""
    run_by = no_dac()
    closed = tmp_path / "closed"
    closed.mkdir()
    store = closed / "lineage.db"
    written_with_wal(store)
    closed.chmod(0o555)
    try:
        done = reader(store, args, tmp_path, run_by)
    finally:
        closed.chmod(0o755)
    assert done.returncode == code, done
    assert done.stderr == (
        f"{_prefix(args)}: {store}: cannot read it here: it is in WAL mode, and SQLite reads such a store with a -shm "
        f"file beside it, which is not there and which it cannot make: this user (uid {os.getuid()}) may not write in "
        f"the directory {closed} (let it write there, or read a copy of the store, with its -wal if there is one, made "
        "in a directory it may write in)\n"
    ), done.stderr
    assert sorted(p.name for p in closed.iterdir()) == ["lineage.db", "lineage.db-wal"]


@pytest.mark.parametrize(("args", "code"), [(("edges", "--json"), 0), (("verify", "--integrity"), 0),
                                            (("verify", "--baseline", "BASELINE"), 1), (("report", "--out", "OUT"), 0)],
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v))  # fmt: skip
def test_a_store_with_no_wal_in_a_directory_the_reader_may_not_write_in_is_read(
    tmp_path: Path, args: tuple[str, ...], code: int
) -> None:
    """Its proxy stopped (its last connection folded the -wal into the file and removed it, and the -shm): the file is
    the whole store, read as a file nobody writes (SQLite's immutable=1), as it would be with the -shm made; nothing is
    made there. On main: 4 of 4 said `cannot read it here: it is in WAL mode ...` (exit 1, verify 2)."""
    run_by = no_dac()
    closed = tmp_path / "closed"
    closed.mkdir()
    store = closed / "lineage.db"
    written(store)
    closed.chmod(0o555)
    try:
        done = reader(store, args, tmp_path, run_by)
    finally:
        closed.chmod(0o755)
    assert done.returncode == code, done
    assert not done.stderr, done.stderr
    said = {"edges": '"caller":"app"', "verify": "intact: 2 chain entries" if "--integrity" in args else "app",
            "report": "wrote "}[args[0]]  # fmt: skip
    assert said in done.stdout, done.stdout
    assert sorted(p.name for p in closed.iterdir()) == ["lineage.db"]


def test_a_store_read_as_a_file_nobody_writes_and_written_meanwhile_is_refused(tmp_path: Path) -> None:
    """A writer that may write there (root's proxy) writes it between the reader's open and its read: the file changed
    and a -wal came beside it, so what the immutable read gave is not certain to be the store's, and it says so, as
    for a file replaced (exit 1). (Only since it is read so: no failing-before count.)"""
    run_by = no_dac()
    closed = tmp_path / "closed"
    closed.mkdir()
    store = closed / "lineage.db"
    written(store)
    closed.chmod(0o555)
    script = ("import sys\nfrom proxy.record.store import SqliteStore, StoreReplaced\n"
              f"r = SqliteStore({str(store)!r}, readonly=True)\nprint('opened', flush=True)\nsys.stdin.readline()\n"
              "try:\n    r.rows()\nexcept StoreReplaced as exc:\n    print(exc)\nelse:\n    print('read')\n")  # fmt: skip
    child = subprocess.Popen([*run_by, sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline() == "opened\n"
        writer = SqliteStore(store)  # root: it may write there
        try:
            writer.upsert([(EdgeKey("app", "assistant", "team-a", "ck", "", "allow"), 101.0, 101.0, 1, None)])
            said, _ = child.communicate("go\n", timeout=60)
        finally:
            writer.close()
    finally:
        closed.chmod(0o755)
        if child.poll() is None:
            child.kill()
    assert said == (
        "written while it was read: it was read as a file nobody writes (in WAL mode, with no -wal beside "
        "it and no -shm this process may make there), and it changed meanwhile, or a -wal came beside it: "
        "what was read is not certain to be this store's, so nothing is said of it; read it again\n"
    ), said


def _rewritten_in_place(store: Path, tmp_path: Path) -> None:
    """`store`'s bytes replaced in place by another store's of the same size (another caller), its times set back to
    what they were, as a restore that keeps a file's times writes it (`cp --preserve=timestamps` over it, `rsync
    --inplace -t`, `tar -x`): the same inode, size and modification time; only its change time (ctime) moves."""
    other = tmp_path / "other" / "lineage.db"
    other.parent.mkdir()
    store_ = SqliteStore(other)
    store_.upsert([(EdgeKey("bob", "assistant", "team-a", "ck", "", "allow"), 100.0, 100.0, 3, None)])
    store_.close()
    before = os.stat(store)
    assert os.path.getsize(other) == before.st_size
    with open(store, "r+b") as file:
        file.write(other.read_bytes())
    os.utime(store, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(store)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)


@pytest.mark.parametrize("meanwhile", ["written and closed", "rewritten in place, its times set back"])
def test_a_store_read_as_a_file_nobody_writes_changed_with_no_wal_left_is_refused(
    tmp_path: Path, meanwhile: str
) -> None:
    """Changed between the reader's open and its read, with no -wal left beside it to say so: a writer that wrote and
    closed (its last connection folded the -wal into the file and removed it), or a restore in place that set the
    file's times back. What the immutable read gave (SQLite's cache of the file as opened, then its pages as they are
    now) is not certain to be the store's: refused, never the other store's callers listed as this one's. On h-rec17
    (inode, size and modification time compared): the restore read as `bob` (1 of 2; review revrec17)."""
    run_by = no_dac()
    closed = tmp_path / "closed"
    closed.mkdir()
    store = closed / "lineage.db"
    written(store)
    closed.chmod(0o555)
    script = ("import sys\nfrom proxy.record.store import SqliteStore, StoreReplaced\n"
              f"r = SqliteStore({str(store)!r}, readonly=True)\nprint('opened', flush=True)\nsys.stdin.readline()\n"
              "try:\n    rows = r.rows()\nexcept StoreReplaced as exc:\n    print(exc)\n"
              "else:\n    print('read', *sorted(row.key.caller for row in rows))\n")  # fmt: skip
    child = subprocess.Popen([*run_by, sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline() == "opened\n"
        if meanwhile == "written and closed":
            writer = SqliteStore(store)  # root: it may write there
            writer.upsert([(EdgeKey("app", "assistant", "team-a", "ck", "", "allow"), 101.0, 101.0, 1, None)])
            writer.close()
        else:
            _rewritten_in_place(store, tmp_path)
        assert sorted(p.name for p in closed.iterdir()) == ["lineage.db"]
        said, _ = child.communicate("go\n", timeout=60)
    finally:
        closed.chmod(0o755)
        if child.poll() is None:
            child.kill()
    assert said.startswith("written while it was read: "), said


def test_a_store_whose_proxy_runs_is_read_in_a_directory_the_reader_may_not_write_in(tmp_path: Path) -> None:
    """Its -wal and -shm there (the writer's connection open): SQLite reads it without making anything, as before."""
    run_by = no_dac()
    closed = tmp_path / "closed"
    closed.mkdir()
    store = closed / "lineage.db"
    writer = SqliteStore(store)
    try:
        writer.upsert([(EdgeKey("app", "assistant", "team-a", "ck", "", "allow"), 100.0, 100.0, 3, None)])
        for beside in closed.iterdir():
            beside.chmod(0o644)
        closed.chmod(0o555)
        try:
            done = reader(store, ("edges", "--json"), tmp_path, run_by)
        finally:
            closed.chmod(0o755)
    finally:
        writer.close()
    assert done.returncode == 0, done
    assert '"caller":"app"' in done.stdout, done.stdout


def test_a_store_file_the_reader_may_not_read_is_said_so(tmp_path: Path) -> None:
    """On main: `cannot open it as a lineage store: unable to open database file` (1 of 1)."""
    run_by = no_dac()
    store = tmp_path / "lineage.db"
    written(store)
    store.chmod(0o200)
    done = reader(store, ("edges",), tmp_path, run_by)
    assert done.returncode == 1, done
    assert done.stderr == (f"lineage-proxy edges: {store}: cannot read it: this user (uid {os.getuid()}) may not read the "
                           "file (give it read access, or correct the path)\n"), done.stderr  # fmt: skip


def test_a_store_on_a_read_only_file_system_is_said_so(tmp_path: Path) -> None:
    """A volume mounted read-only, where no permission lets a process write, root included: a tmpfs mounted over the
    store's directory in a mount namespace of the reader's own, the store copied in first. On main: `not a lineage
    store: unable to open database file` (1 of 1). Where no mount namespace can be made, a skip, but in CI a failure
    (`unshare`: review revrec16, a skip there too)."""
    command = unshare()
    source = tmp_path / "source" / "lineage.db"
    source.parent.mkdir()
    written_with_wal(source)  # (with no -wal it is read: the test below)
    mounted = tmp_path / "ro"
    mounted.mkdir()
    mount = 'mount -t tmpfs tmpfs "$1" && cp "$2" "$2-wal" "$1/" && mount -o remount,ro "$1" && shift 2 && exec "$@"'
    done = subprocess.run([command, "-rm", "sh", "-c", mount, "sh", str(mounted), str(source), sys.executable, "-m",
                           "proxy", "edges", "--store", str(mounted / "lineage.db")], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 1, done
    assert done.stderr == (
        f"lineage-proxy edges: {mounted / 'lineage.db'}: cannot read it here: it is in WAL mode, and SQLite reads such a "
        f"store with a -shm file beside it, which is not there and which it cannot make: the directory {mounted} is on "
        "a read-only file system (let it write there, or read a copy of the store, with its -wal if there is one, made "
        "in a directory it may write in)\n"
    ), done.stderr


def test_a_store_with_no_wal_on_a_read_only_file_system_is_read(tmp_path: Path) -> None:
    """The same mount, the store copied in with no -wal (its proxy stopped): read as a file nobody writes, root's reader
    too. On main: `cannot read it here: ... the directory ... is on a read-only file system` (1 of 1)."""
    command = unshare()
    source = tmp_path / "source" / "lineage.db"
    source.parent.mkdir()
    written(source)
    mounted = tmp_path / "ro"
    mounted.mkdir()
    mount = 'mount -t tmpfs tmpfs "$1" && cp "$2" "$1/" && mount -o remount,ro "$1" && shift 2 && exec "$@"'
    done = subprocess.run([command, "-rm", "sh", "-c", mount, "sh", str(mounted), str(source), sys.executable, "-m",
                           "proxy", "edges", "--store", str(mounted / "lineage.db"), "--json"], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0 and not done.stderr, done
    assert '"caller":"app"' in done.stdout, done.stdout


def test_serve_with_a_journal_in_a_directory_it_may_not_write_in_is_refused_at_its_start(
    tmp_path: Path, postgres: Any
) -> None:
    """A real PostgreSQL store, its journal (lineage.journal) in a 0555 directory: `serve` refuses its start naming the
    journal, the directory and the fix, exit 1, never ready, no traceback, and says nothing else (review revrec16: a
    WARNING came first, `no running marker in .../journal.db.running (... Permission denied ...)`, of the marker beside
    the journal, which the refused start never needed; this asserted the line's end alone)."""
    run_by = no_dac()
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o555)
    journal = closed / "journal.db"
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("LINEAGE", f'{{store: "{postgres.database()}", journal: "{journal}"}}'))
    done = subprocess.run([*run_by, sys.executable, "-m", "proxy", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 1, done
    assert "lineage-proxy ready" not in done.stdout and "Traceback" not in done.stderr, done
    assert done.stderr == (f"lineage-proxy serve: cannot open the lineage journal {journal}: this user (uid {os.getuid()}) "
                           f"may not write in the directory {closed}, where SQLite makes the file and its -wal and -shm "
                           "files (give it write access there, or correct the path)\n"), done.stderr  # fmt: skip
    assert not list(closed.iterdir())


def test_the_demo_with_its_store_in_a_directory_it_may_not_write_in_is_refused(tmp_path: Path) -> None:
    """`demo --store` there: refused before any call, in `serve`'s words, exit 1 (a pin: passes on main)."""
    run_by = no_dac()
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o555)
    store = closed / "lineage.db"
    done = subprocess.run([*run_by, sys.executable, "-m", "proxy", "demo", "--store", str(store)], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 1, done
    assert not done.stdout
    assert done.stderr == (f"lineage-proxy demo: cannot open the lineage store {store}: this user (uid {os.getuid()}) may "
                           f"not write in the directory {closed}, where SQLite makes the file and its -wal and -shm "
                           "files (give it write access there, or correct the path)\n"), done.stderr  # fmt: skip


def test_a_reader_opened_while_another_connection_holds_the_write_lock_waits_once_at_its_read(tmp_path: Path) -> None:
    """A store in rollback-journal mode (converted by hand, or an old copy), its write lock held (`BEGIN EXCLUSIVE`):
    the reader's look at the header as it opens (`_read_at_open`) waits for nothing, and its read waits for the lock as
    before, then reads. Review revrec16: on h-rec16 the open waited the whole 10 s busy timeout, failed `database is
    locked`, kept the connection, and the read waited 10 s more (`edges` said it after 21 s, main after 11; 1 of 1)."""
    store = tmp_path / "lineage.db"
    written(store)
    holder = sqlite3.connect(store, isolation_level=None, check_same_thread=False)  # (committed by the timer's thread)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE edges SET count = count + 1")
    began = time.monotonic()
    reader = SqliteStore(store, readonly=True)
    try:
        opened = time.monotonic() - began
        assert opened < 2.0, opened  # (10.0 on h-rec16)
        released = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
        released.start()
        rows = reader.rows()  # waits for the lock (its 10 s busy timeout), then reads what was committed
        waited = time.monotonic() - began
        released.join()
    finally:
        reader.close()
        holder.close()
    assert [row.count for row in rows] == [4], rows
    assert 0.3 <= waited < 5.0, waited


def test_a_reader_opened_while_the_proxy_writes_a_wal_store_reads_at_once(tmp_path: Path) -> None:
    """A pin beside the one above: in WAL mode (the proxy's) a write transaction held open blocks no reader, at its
    open or its read: it reads what was committed before."""
    store = tmp_path / "lineage.db"
    writer = SqliteStore(store)
    try:
        writer.upsert([(EdgeKey("app", "assistant", "team-a", "ck", "", "allow"), 100.0, 100.0, 3, None)])
        holder = sqlite3.connect(store, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE edges SET count = count + 1")
        began = time.monotonic()
        reader = SqliteStore(store, readonly=True)
        try:
            rows = reader.rows()
        finally:
            reader.close()
            holder.execute("ROLLBACK")
            holder.close()
        assert time.monotonic() - began < 2.0
    finally:
        writer.close()
    assert [row.count for row in rows] == [3], rows


def test_a_directory_named_with_bytes_not_utf8_is_shown_as_the_store_is(tmp_path: Path) -> None:
    """The directory's name (Latin-1 `café`, read from the command line as lone surrogates) shown with its bytes
    escaped, `caf\\xe9`, as the store's name before it is (`shown_path`). Review revrec16: on h-rec16 the store was
    `caf\\xe9/lineage.db` and the directory `caf\\udce9` in the same line (1 of 1)."""
    run_by = no_dac()
    closed = Path(os.path.join(tmp_path, os.fsdecode(b"caf\xe9")))
    closed.mkdir()
    store = closed / "lineage.db"
    written_with_wal(store)
    closed.chmod(0o555)
    try:
        done = subprocess.run([*run_by, sys.executable, "-m", "proxy", "edges", "--store", os.fsencode(store)],
                              capture_output=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    finally:
        closed.chmod(0o755)
    assert done.returncode == 1, done
    shown = f"{tmp_path}/caf\\xe9"
    assert done.stderr.decode() == (
        f"lineage-proxy edges: {shown}/lineage.db: cannot read it here: it is in WAL mode, and SQLite reads such a store with "
        f"a -shm file beside it, which is not there and which it cannot make: this user (uid {os.getuid()}) may not "
        f"write in the directory {shown} (let it write there, or read a copy of the store, with its -wal if there is "
        "one, made in a directory it may write in)\n"
    ), done.stderr


def test_a_copy_with_its_wal_and_no_shm_in_a_directory_the_reader_may_not_write_in_is_said_so(tmp_path: Path) -> None:
    """The store and its -wal copied while its proxy ran (a backup), without the -shm, into a directory the reader may
    not write in: SQLite says SQLITE_CANTOPEN there (the -shm it cannot make), not SQLITE_READONLY_DIRECTORY as with no
    -wal, and the reader says why as for that one. A pin of `_unreadable_here`'s other branch (review revrec16); on
    main: `not a lineage store: unable to open database file`."""
    run_by = no_dac()
    live = tmp_path / "live" / "lineage.db"
    live.parent.mkdir()
    closed = tmp_path / "closed"
    closed.mkdir()
    writer = SqliteStore(live)
    try:
        writer.upsert([(EdgeKey("app", "assistant", "team-a", "ck", "", "allow"), 100.0, 100.0, 3, None)])
        for name in ("lineage.db", "lineage.db-wal"):
            shutil.copyfile(live.parent / name, closed / name)
    finally:
        writer.close()
    store = closed / "lineage.db"
    closed.chmod(0o555)
    try:
        done = reader(store, ("edges",), tmp_path, run_by)
    finally:
        closed.chmod(0o755)
    assert done.returncode == 1, done
    assert done.stderr == (
        f"lineage-proxy edges: {store}: cannot read it here: it is in WAL mode, and SQLite reads such a store with a -shm file "
        f"beside it, which is not there and which it cannot make: this user (uid {os.getuid()}) may not write in the "
        f"directory {closed} (let it write there, or read a copy of the store, with its -wal if there is one, made in a "
        "directory it may write in)\n"
    ), done.stderr
    assert sorted(p.name for p in closed.iterdir()) == ["lineage.db", "lineage.db-wal"]
