"""Running markers on a file system that takes no lock (some FUSE mounts, NFS mounted `nolock`), where the pid alone
tells whether a marker's process runs. A pid means nothing across pid namespaces or hosts: two containers of the same
host name on one host (each `serve` pid 1) sharing the volume, or two hosts of the same name on NFS, called each other's
live marker a crash, said it in a WARNING line, counted it and removed it. A marker whose process cannot be checked (of
another pid namespace or boot) is now a running one's while its heartbeat touches it, and said once it is no longer
touched: by a later start, or by the heartbeat of the start that found it (a container restarted at once, after the
OOM killer, finds its predecessor's marker still fresh). Every process of a run, its workers too, touches its own."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from proxy import markers
from proxy.config.model import Address, Config, Lineage, Listen

OTHER_PID1 = (markers._started(1) or 0) + 12345  # the other container's pid 1, started at another time than ours
OURS = os.stat("/proc/self/ns/pid").st_ino  # this process's pid namespace
FRESH_S = 30.0  # markers.FRESH_S: three heartbeats


@pytest.fixture
def no_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(fd: int, operation: int) -> None:
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(fcntl, "flock", refused)  # (as markers calls it: markers is not compiled, a Python seam)


def config(store: Path) -> Config:
    return Config(
        listen=Listen(http=Address("127.0.0.1", 0)), upstreams=(), routes=(), lineage=Lineage(store=str(store))
    )


def written(where: Path, **content: object) -> Path:
    """A marker as a running `serve` wrote it: pid 1 of another pid namespace, touched just now by its heartbeat."""
    entry = {"host": socket.gethostname(), "pid": 1, "run": "other", "role": "serve", "started": 1.0,
             "boot": markers._boot(), "ticks": OTHER_PID1, "pidns": OURS + 1, "unwritten": []} | content  # fmt: skip
    path = where / f"{entry['run']}-{entry['pid']}{markers.SUFFIX}"
    path.write_text(json.dumps(entry))
    return path


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "ended without a stop" in r.getMessage()]


def stale(path: Path) -> None:
    """Its heartbeat stopped FRESH_S and more ago: its process is gone."""
    when = time.time() - FRESH_S - 5
    os.utime(path, (when, when))


@pytest.mark.usefixtures("no_locks")
def test_another_containers_live_marker_is_no_crash(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = written(tmp_path)
    with caplog.at_level(logging.WARNING, "lineage_proxy"):
        assert markers.check(str(tmp_path)) == []
    assert path.exists() and warnings(caplog) == []
    stale(path)  # that container was killed: once its heartbeat stopped, it is said
    with caplog.at_level(logging.WARNING, "lineage_proxy"):
        assert [(each.pid, each.run) for each in markers.check(str(tmp_path))] == [(1, "other")]
    assert not path.exists() and len(warnings(caplog)) == 1


@pytest.mark.usefixtures("no_locks")
def test_a_marker_that_does_not_name_its_namespace_is_judged_by_its_heartbeat(tmp_path: Path) -> None:
    """As the repro wrote it (a marker of an earlier version, or of a process whose /proc was not readable)."""
    path = written(tmp_path, pidns=None)
    assert markers.check(str(tmp_path)) == []
    assert path.exists()


@pytest.mark.usefixtures("no_locks")
def test_another_hosts_of_the_same_name_live_marker_is_no_crash(tmp_path: Path) -> None:
    """NFS `nolock`, hosts of one name: its boot is another one, its pid namespace maybe the same inode (the initial
    one has the same number on every host)."""
    path = written(tmp_path, boot="another-hosts-boot", pidns=OURS)
    assert markers.check(str(tmp_path)) == []
    assert path.exists()
    stale(path)
    assert [each.run for each in markers.check(str(tmp_path))] == ["other"]


@pytest.mark.usefixtures("no_locks")
def test_this_namespaces_dead_process_is_still_said_at_once(tmp_path: Path) -> None:
    path = written(tmp_path, pidns=OURS, pid=os.getpid(), ticks=(markers._started(os.getpid()) or 0) + 1)
    assert [each.run for each in markers.check(str(tmp_path))] == ["other"]  # its pid runs again, started later
    assert not path.exists()


@pytest.mark.usefixtures("no_locks")
def test_a_start_says_a_marker_it_could_not_tell_once_its_heartbeat_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The container killed by the OOM killer and started again at once, in a new pid namespace: its predecessor's
    marker is fresh still, so left, and said by this start's heartbeat once it would be FRESH_S old."""
    where = tmp_path / "lineage.db.running"
    where.mkdir()
    path = written(where)
    markers.newly_found()
    held = markers.begin(config(tmp_path / "lineage.db"), "serve")
    assert held is not None
    try:
        assert path.exists() and warnings(caplog) == []
        assert time.time() < held.recheck_at <= path.stat().st_mtime + FRESH_S + 1
        held.recheck()  # (its heartbeat does, once `recheck_at` passed): still touched, looked at again later
        assert path.exists() and held.recheck_at > time.time()
        stale(path)
        with caplog.at_level(logging.WARNING, "lineage_proxy"):
            held.recheck()
        assert not path.exists() and held.recheck_at == 0.0
        (line,) = warnings(caplog)
        assert "lineage-proxy pid 1 " in line, line
        assert markers.newly_found() == 1  # a supervisor counts it in lineage_proxy_unclean_stops_total
        assert Path(held.path).exists()  # its own, of this namespace, alive
    finally:
        held.close()


def test_a_workers_marker_is_touched_by_its_heartbeat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's marker, judged by its heartbeat where its pid cannot be checked, has one: a worker still draining
    after its supervisor was killed is no crash."""
    monkeypatch.setattr(markers, "HEARTBEAT_S", 0.01)
    held = markers.begin(config(tmp_path / "lineage.db"), "supervisor")
    assert held is not None
    supervisors = held.path
    held._stopped.set()  # its heartbeat ends (a forked worker has no thread of its supervisor's): in one process, the
    for thread in threading.enumerate():  # worker's marker has the supervisor's name, which that one would touch
        if thread.name == "lineage-proxy-running":
            thread.join(5)
            assert not thread.is_alive()
    worker = held.worker("worker-1", config(tmp_path / "lineage.db"))  # (as a worker just forked does)
    assert worker is not None
    try:
        os.utime(worker.path, (1.0, 1.0))
        deadline = time.monotonic() + 10
        while Path(worker.path).stat().st_mtime == 1.0:
            assert time.monotonic() < deadline, "the worker's marker was not touched"
            time.sleep(0.01)
    finally:
        worker.close()
        Path(supervisors).unlink(missing_ok=True)  # (in one process both have one name: the worker's replaced it)
