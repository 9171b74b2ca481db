"""The running markers (`proxy.markers`) beside a record: which one the next start calls an unclean stop. A marker held
by a process still running (a second `serve` on the same SQLite file), another host's (a directory shared over a
network file system, a fleet's), and one on a file system without locks whose pid runs again as another process are
told apart from a process that ended without a stop."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from proxy import markers
from proxy.config.model import Address, Config, Lineage, Listen, OpenLineage

ROOT = Path(__file__).resolve().parent.parent


def config(store: str | None, spool: str | None = None) -> Config:
    openlineage = OpenLineage(transport={"type": "console"}, spool=spool) if spool else None
    return Config(listen=Listen(http=Address("127.0.0.1", 0)), upstreams=(), routes=(),
                  lineage=Lineage(store=store, openlineage=openlineage))  # fmt: skip


def left_by(where: Path, **content: object) -> Path:
    """A marker as a process that died left it."""
    entry = {"host": socket.gethostname(), "pid": 4242, "run": "r1", "role": "serve", "started": 1.0, "boot": "",
             "ticks": None, "unwritten": []} | content  # fmt: skip
    path = where / f"{entry['run']}-{entry['pid']}{markers.SUFFIX}"
    path.write_text(json.dumps(entry))
    return path


def test_where_the_markers_are() -> None:
    assert markers.directory(config("/data/lineage.db")) == "/data/lineage.db.running"
    journal = Config(listen=Listen(http=Address("127.0.0.1", 0)), upstreams=(), routes=(),
                     lineage=Lineage(store="postgresql://u@db/lineage", journal="/var/j.db"))  # fmt: skip
    assert markers.directory(journal) == "/var/j.db.running"  # this sidecar's own, not the database's
    assert markers.directory(config(None, "/var/spool/")) == "/var/spool.running"
    assert markers.directory(config(None)) is None


def test_a_dead_process_is_said_once_and_its_marker_removed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = left_by(tmp_path, unwritten=["its spans not yet exported"])
    with caplog.at_level(logging.WARNING, "lineage_proxy"):
        found = markers.check(str(tmp_path))
    assert [each.pid for each in found] == [4242]
    assert not path.exists()
    (line,) = [r.getMessage() for r in caplog.records if "ended without a stop" in r.getMessage()]
    assert "pid 4242 " in line and "its spans not yet exported" in line, line
    assert markers.check(str(tmp_path)) == []  # said once


def test_another_hosts_marker_is_left_alone(tmp_path: Path) -> None:
    path = left_by(tmp_path, host=socket.gethostname() + "-elsewhere")
    assert markers.check(str(tmp_path)) == []
    assert path.exists()


def test_a_marker_held_by_a_running_serve_is_no_crash(tmp_path: Path) -> None:
    where = tmp_path / "lineage.db.running"
    held = markers.begin(config(str(tmp_path / "lineage.db")), "serve")
    assert held is not None
    try:
        assert markers.check(str(where)) == []  # a second serve on the same store, started by mistake
        assert Path(held.path).exists()
    finally:
        held.close()
    assert not Path(held.path).exists()  # a clean stop leaves nothing to say
    assert markers.check(str(where)) == []


def test_the_lock_tells_a_pid_used_again(tmp_path: Path) -> None:
    """A marker naming a pid that runs now (the next container's pid 1, this very process) but whose lock is free."""
    left_by(tmp_path, pid=os.getpid(), boot=markers._boot(), ticks=markers._started(os.getpid()))
    assert [each.pid for each in markers.check(str(tmp_path))] == [os.getpid()]


def test_without_locks_the_pid_and_its_start_tell(tmp_path: Path) -> None:
    """A file system without locks: the marker's pid alive, started when it says, in this boot, is running."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = {"pid": sleeper.pid, "boot": markers._boot(), "ticks": markers._started(sleeper.pid),
                   "pidns": markers._namespace()}  # fmt: skip
        assert markers._alive(running)
        assert markers._alive(running | {"ticks": (markers._started(sleeper.pid) or 0) + 1}) is False  # pid used again
        assert markers._alive(running | {"boot": "another boot"}) is None  # another host, or a power cut: unknown
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not markers._alive(running)


def test_a_machine_restarted_is_said_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    left_by(tmp_path, boot="0000-an-earlier-boot")
    with caplog.at_level(logging.WARNING, "lineage_proxy"):
        markers.check(str(tmp_path))
    (line,) = [r.getMessage() for r in caplog.records if "ended without a stop" in r.getMessage()]
    assert "the machine restarted" in line, line


def test_a_marker_never_named_is_swept_once_nobody_holds_it(tmp_path: Path) -> None:
    """A process killed between writing its marker and naming it leaves a `.tmp` file, nobody's: removed."""
    stale = tmp_path / ".r1-4242.tmp"
    stale.write_text("{}")
    young = tmp_path / ".r2-4243.tmp"  # maybe a starting process's, between its open and its lock
    young.write_text("{}")
    os.utime(stale, (1.0, 1.0))
    assert markers.check(str(tmp_path)) == []
    assert not stale.exists() and young.exists()


def test_no_directory_is_made_for_a_store_whose_own_is_missing(tmp_path: Path) -> None:
    """A store path with a typo in its directory is refused by the store's open, as before: the marker makes none."""
    assert markers.begin(config(str(tmp_path / "typo" / "lineage.db")), "serve") is None
    assert not (tmp_path / "typo").exists()


def test_a_file_uri_stores_markers_are_beside_the_file_it_names(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`lineage.store: file:/data/lineage.db` (a `file:` URI, which the writer and readers open as the file it names):
    its markers are beside that file, and a run killed on it is said by the next start. Review revrec16: its directory
    was `file:/data/lineage.db.running`, whose `file:` directory no start could make: every start ran with no marker,
    saying nothing, and a kill went unsaid."""
    store = tmp_path / "lineage.db"
    uri = f"file:{store}"
    assert markers.directory(config(uri)) == f"{store}.running"
    assert markers.directory(config(f"file://{store}")) == f"{store}.running"
    begin = ("import sys, time; from proxy import markers; from tests.test_markers import config; "
             "print(markers.begin(config(sys.argv[1]), 'serve') is not None, flush=True); time.sleep(60)")  # fmt: skip
    killed = subprocess.Popen([sys.executable, "-c", begin, uri], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert killed.stdout is not None and killed.stdout.readline() == "True\n"  # it holds a marker
    finally:
        killed.kill()  # SIGKILL: its lock let go, its file left
        killed.wait()
    with caplog.at_level(logging.WARNING, "lineage_proxy"):
        again = markers.begin(config(uri), "serve")
    assert again is not None
    again.close()
    assert any("ended without a stop" in r.getMessage() for r in caplog.records), caplog.text
