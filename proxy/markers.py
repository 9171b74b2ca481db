"""A stop nobody saw (SIGKILL, the OOM killer, a crash, a power cut) said by the next start on the same record.

Each process of a `serve` (the one process; a `--workers` supervisor and each of its workers) holds a marker file of
its own while it runs, in a directory beside what it records to (`directory`: `<lineage.store>.running` for a SQLite
store, `<lineage.journal>.running` for a PostgreSQL one, whose journal is this sidecar's own, else
`<lineage.openlineage.spool>.running`), locked (flock) and removed by its stop (the directory too, by the last
process out). The next start looks at the files of
its host: one whose lock it can take was left by a process that ended without a stop (the kernel lets a lock go when
its holder dies, whatever process has its pid since), and is said in one WARNING line a run, then removed; one whose
lock is held belongs to a process still running (a second `serve` on the same SQLite file), and is left alone. A file
names its host in it: sidecars on other hosts sharing the directory (a network file system) never read each other's.
A file system that takes no lock falls back to the pid: alive, started when the file says, in this boot and this pid
namespace. A process of another pid namespace (another container: each `serve` its pid 1, the host name maybe the same)
or another boot (another host of the same name sharing the directory, or this one restarted) cannot be checked so: its
marker is taken for a running process's while it was touched within FRESH_S, and said once it is older (by the start
that finds it, or by this start's heartbeat, which looks again once it would be).

Each process touches its file every HEARTBEAT_S on a thread of its own (no call waits for it), so the line says when
the run was last seen running.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from proxy.config import Config, SqliteNameError, sqlite_file
from proxy.files import sync_directory
from proxy.record.stores import DEFAULT_JOURNAL, is_database, unopenable

log = logging.getLogger("lineage_proxy")

SUFFIX: Final = ".running"
HEARTBEAT_S: Final = 10.0  # how often each process of a run touches its marker
# a marker whose process cannot be checked (no locks, and another pid namespace or boot) is a running one's while
# touched within this: three heartbeats
FRESH_S: Final = 3 * HEARTBEAT_S
SWEEP_AGE_S: Final = 60.0  # a marker never named (its process killed as it wrote it) is removed once this old
_found = 0  # runs this process found ended without a stop (`check`)
_counted = 0  # of those, the ones `newly_found` has returned


def unclean_stops() -> int:
    """The runs this process found, at its start, to have ended without a stop."""
    return _found


def newly_found() -> int:
    """The runs this process found ended without a stop since this was last asked (a supervisor's counter): at its
    start, and later by its heartbeat (a marker that could not be checked, said once it was no longer touched)."""
    global _counted
    now = _found  # (read once: the heartbeat's thread may add to it meanwhile)
    found, _counted = now - _counted, now
    return found


def directory(config: Config) -> str | None:
    """Where the markers of a `serve` with `config` are: beside its lineage store (a PostgreSQL one's journal), else
    beside its OpenLineage spool; None when it records to neither (nothing of its record outlives it there). A `file:`
    URI's beside the file it names (`sqlite_file`), as SQLite opens it: until 2026-12-07 `file:/data/lineage.db`'s were
    `file:/data/lineage.db.running`, which no start could make (its directory `file:` missing), so it ran with none,
    saying nothing, and a kill was never said (review revrec16)."""
    lineage = config.lineage
    if lineage.store is not None:
        path = lineage.journal or DEFAULT_JOURNAL if is_database(lineage.store) else lineage.store
        with contextlib.suppress(SqliteNameError):  # (refused by the config's check: never served)
            path = sqlite_file(path)
        return path + SUFFIX
    if lineage.openlineage is not None:
        return lineage.openlineage.spool.rstrip("/") + SUFFIX
    return None


def unwritten(config: Config) -> list[str]:
    """What a process serving with `config` holds not yet written, lost if it is killed: by the sinks it has."""
    held = []
    lineage = config.lineage
    if lineage.store is not None:
        held.append(f"its flows' counts of up to the last {lineage.flush_interval_s:g}s (lineage.flush_interval_s)")
    if config.telemetry.exporter != "none":
        held.append("its spans not yet exported")
    if lineage.openlineage is not None:
        interval = lineage.openlineage.snapshot_interval_s
        held.append(
            f"its OpenLineage counts since its last snapshot (up to {interval:g}s; those of earlier snapshots "
            "that the backend had not taken are in the spool, sent by the next start)"
        )
    return held


def _boot() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _namespace() -> int:
    """This process's pid namespace (its inode: unique on this host while it exists); 0 when it is not known."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _started(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (/proc/PID/stat's 22nd field); None off Linux or gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


class Marker:
    """This process's marker file, held open and locked until `close` (its clean stop) removes it."""

    def __init__(self, where: str, run: str, fd: int, path: str, recheck_at: float = 0.0) -> None:
        self.directory = where
        self.run = run  # the run's id: its first process's file names it, and each worker's
        self.fd = fd
        self.path = path
        self.pid = os.getpid()
        # when the markers `check` could not tell at this start are looked at again (`recheck`; 0: none is left)
        self.recheck_at = recheck_at
        self._stopped = threading.Event()
        threading.Thread(target=self._beat, name="lineage-proxy-running", daemon=True).start()

    def _beat(self) -> None:
        # never this thread's to take a signal sent to the process (a supervisor's main thread asleep on a lock would
        # run its handler late): as the log writer's
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        while not self._stopped.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)  # (by name: the descriptor may be closed, and its number reused, by a stop)
            except OSError as exc:
                log.debug("running marker %s not touched: %s", self.path, exc)
            if self.recheck_at and time.time() >= self.recheck_at:
                self.recheck()

    def recheck(self) -> None:
        """Look again at the markers this start could not tell (`check`'s `unsure`), once they would be FRESH_S old:
        those no longer touched since are said now; those still touched, later again."""
        unsure: list[float] = []
        check(self.directory, unsure)
        self.recheck_at = max(unsure, default=0.0)

    def worker(self, role: str, config: Config) -> Marker | None:
        """In a worker just forked: let go of the supervisor's file (inherited by fork; its lock stays the
        supervisor's), then hold one of its own, of the same run."""
        os.close(self.fd)
        self.fd = -1
        return _hold(self.directory, self.run, role, config)

    def forget(self, pid: int) -> None:
        """A worker of this run ended and the supervisor said so: its file is not said again at the next start."""
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.directory, f"{self.run}-{pid}{SUFFIX}"))

    def close(self) -> None:
        """The clean stop: the file is removed (in the process that made it; a forked one only lets its copy go). One
        that cannot be removed (its directory read-only by then) is written `stopped`, through the descriptor held
        since the start, so the next start takes it for the clean stop it was (`_left`); one that cannot be written
        either is said in a WARNING line. Before 2026-12-07 it was left as it was, said at DEBUG only, and the next
        start said this clean stop was a run killed or crashed, its calls lost, and counted it so."""
        if self.fd < 0:
            return
        self._stopped.set()
        try:
            if os.getpid() == self.pid:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass  # removed already (its directory by hand): nothing left for a next start to say
                except OSError as exc:
                    self._left_stopped(exc)
                    return
                with contextlib.suppress(OSError):  # the last one out: no directory left in the user's (else in use)
                    os.rmdir(self.directory)
        finally:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def _left_stopped(self, why: OSError) -> None:
        """The marker this clean stop could not remove (`why`), written `stopped` in place of what it said; a WARNING
        line when that fails too."""
        try:
            stopped = json.dumps({"host": socket.gethostname(), "pid": self.pid, "run": self.run,
                                  "stopped": time.time()}).encode()  # fmt: skip
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, stopped, 0)
            os.fsync(self.fd)
        except OSError as exc:
            log.warning("running marker %s could not be removed (%s) nor marked stopped (%s): the next start on this "
                        "record will say this clean stop was a run that ended without a stop, and count it; remove "
                        "the file once it can be", self.path, why, exc)  # fmt: skip
            return
        log.info("running marker %s could not be removed (%s): marked stopped, removed by the next start that can",
                 self.path, why)  # fmt: skip


def begin(config: Config, role: str) -> Marker | None:
    """At the start of a `serve` (`role`: "serve" or "supervisor"): say the earlier runs on this record that ended
    without a stop (`check`), then hold this process's marker. None when the record has no place for one."""
    where = directory(config)
    if where is None:
        return None
    try:
        os.mkdir(where)
    except FileExistsError:
        pass
    except FileNotFoundError:  # the record's own directory is missing: its open says so (never made here, as a typo)
        return None
    except OSError as exc:
        # the record's own directory refused too (not this process's to write in, or read-only): its open refuses the
        # start, and says why in one line; until 2026-12-07 this warning came first, of a marker the refused start
        # would never need (review revrec16)
        if not unopenable(config.lineage):
            log.warning("no running marker in %s (%s): if this proxy is killed, the next start cannot say so", where,
                        exc)  # fmt: skip
        return None
    unsure: list[float] = []
    check(where, unsure)
    return _hold(where, uuid.uuid4().hex[:12], role, config, max(unsure, default=0.0))


def _hold(where: str, run: str, role: str, config: Config, recheck_at: float = 0.0) -> Marker | None:
    pid = os.getpid()
    path = os.path.join(where, f"{run}-{pid}{SUFFIX}")
    temporary = os.path.join(where, f".{run}-{pid}.tmp")
    content = {
        "host": socket.gethostname(), "pid": pid, "run": run, "role": role, "started": time.time(),
        "boot": _boot(), "ticks": _started(pid), "pidns": _namespace(), "unwritten": unwritten(config),
    }  # fmt: skip
    fd = -1
    try:
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            fd = os.open(temporary, flags, 0o644)
        except FileNotFoundError:  # removed since `begin` made it, by the last process of another run stopping
            with contextlib.suppress(FileExistsError):
                os.mkdir(where)
            fd = os.open(temporary, flags, 0o644)
        with contextlib.suppress(OSError):  # no locks here (some network file systems): the pid tells (`_alive`)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, json.dumps(content).encode())
        os.fsync(fd)  # a power cut right after must leave it whole
        os.rename(temporary, path)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        with contextlib.suppress(OSError):  # made by `begin` for it, and holding no other run's: not left behind
            os.rmdir(where)
        log.warning("no running marker in %s (%s): if this proxy is killed, the next start cannot say so", where, exc)
        return None
    sync_directory(where)
    return Marker(where, run, fd, path, recheck_at)


@dataclass(frozen=True, slots=True)
class Left:
    """A marker a process left that ended without a stop."""

    pid: int
    run: str
    role: str
    started: float
    touched: float  # when its file was last written or touched (the heartbeat)
    boot: str
    unwritten: tuple[str, ...]


def check(where: str, unsure: list[float] | None = None) -> list[Left]:
    """Say the runs whose markers in `where` (this host's) were left by processes that ended without a stop, one
    WARNING line a run, count them (`unclean_stops`) and remove the markers. Those of processes still running, and
    other hosts', are left; so are those whose process cannot be checked (no locks, another pid namespace or boot)
    while touched within FRESH_S: when each would be that old is added to `unsure`."""
    global _found
    host = socket.gethostname()
    left: list[Left] = []
    live: set[str] = set()  # the runs of processes still running
    try:
        names = sorted(os.listdir(where))
    except OSError:
        return []
    for name in names:
        if name.endswith(SUFFIX):
            found = _left(os.path.join(where, name), host, live, unsure)
            if found is not None:
                left.append(found)
        elif name.endswith(".tmp"):
            _sweep(os.path.join(where, name))
    runs: dict[str, list[Left]] = {}
    for each in left:
        runs.setdefault(each.run, []).append(each)
    for run, processes in runs.items():
        log.warning("%s", said(processes, where, run in live))
    _found += len(runs)
    return left


def _left(path: str, host: str, live: set[str], unsure: list[float] | None = None) -> Left | None:
    """The marker at `path` when it is this host's and its process ended (removed then, while it is locked); the
    run of one whose process runs is added to `live` (and, when that could not be checked, when it would be FRESH_S
    old to `unsure`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        locked, busy = True, False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            locked, busy = False, True  # its process runs
        except OSError:
            locked = False  # no locks on this file system: the pid tells
        try:
            content: dict[str, Any] = json.loads(os.read(fd, 1 << 16))
        except (OSError, ValueError):
            content = {}
        if not isinstance(content, dict) or content.get("host") != host:
            return None  # another host's (or not a marker): not this one's to say
        if "stopped" in content and not busy:  # a clean stop's that could not remove it (`Marker.close`)
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None
        held = os.fstat(fd)
        alive: bool | None = busy
        if not locked and not busy:
            alive = _alive(content)
            if alive is None:  # its process cannot be checked from here: running while its heartbeat touches it
                alive = time.time() < held.st_mtime + FRESH_S
                if alive and unsure is not None:
                    unsure.append(held.st_mtime + FRESH_S)
        if alive:
            live.add(str(content.get("run")))
            return None
        try:
            named = os.stat(path)
        except FileNotFoundError:
            return None  # removed meanwhile (another start said it)
        if (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino):
            return None
        os.unlink(path)
        return Left(
            pid=int(content.get("pid", 0)), run=str(content.get("run", "")), role=str(content.get("role", "serve")),
            started=float(content.get("started", 0.0)), touched=held.st_mtime, boot=str(content.get("boot", "")),
            unwritten=tuple(str(each) for each in content.get("unwritten", ())),
        )  # fmt: skip
    except (OSError, ValueError, TypeError) as exc:
        log.debug("running marker %s not read: %s", path, exc)
        return None
    finally:
        os.close(fd)


def _sweep(path: str) -> None:
    """A marker being written that was never named (its process killed in between): removed once nobody holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = os.fstat(fd)
        # (a younger one may be a starting process's between its open and its lock)
        if os.stat(path).st_ino == held.st_ino and held.st_mtime < time.time() - SWEEP_AGE_S:
            os.unlink(path)
    except OSError:
        pass  # being written now (its lock is held), or gone
    finally:
        os.close(fd)


def _alive(content: dict[str, Any]) -> bool | None:
    """Whether the marker's process runs, by its pid (a file system without locks): this boot's and this pid
    namespace's, started then. None when that cannot be checked from here: a process of another pid namespace (another
    container, whose pids are not this one's) or another boot (another host of the same name, or before a restart), or
    a marker that does not say them."""
    pid, ticks, boot, namespace = content.get("pid"), content.get("ticks"), _boot(), _namespace()
    if (not isinstance(pid, int) or not isinstance(ticks, int) or not boot or content.get("boot") != boot
            or not namespace or content.get("pidns") != namespace):  # fmt: skip
        return None
    return _started(pid) == ticks


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _pids(processes: Iterable[Left]) -> str:
    return ", ".join(f"{each.role} pid {each.pid}" for each in processes)


def said(processes: list[Left], where: str, stopping: bool = False) -> str:
    """The WARNING line for one run's markers left (its first process's, its workers'); `stopping`: some of its
    processes still run (workers draining after their supervisor died)."""
    first = next((each for each in processes if not each.role.startswith("worker-")), None)
    workers = sorted((each for each in processes if each.role.startswith("worker-")), key=lambda each: each.role)
    known = first or workers[0]
    seen = max(each.touched for each in processes)
    alone = first is not None and first.role == "supervisor" and not workers
    if first is None:
        who = f"lineage-proxy {_pids(workers)}"
    elif first.role == "supervisor":
        who = f"the lineage-proxy supervisor pid {first.pid}" + (f" and its {_pids(workers)}" if workers else "")
    else:
        who = f"lineage-proxy pid {first.pid}"
    line = (f"an earlier run on this record ended without a stop: {who} (started {_when(known.started)}, last seen "
            f"running {_when(seen)}; its marker in {where})")  # fmt: skip
    boot = _boot()
    if known.boot and boot and known.boot != boot:
        line += ", gone as the machine restarted (a power cut, a reboot or a host crash that did not stop it)."
    else:
        line += ", killed (SIGKILL: the kernel's log, dmesg, says whether the OOM killer sent it) or crashed."
    if alone and stopping:
        return (f"{line} Its workers still run: they stop as they do when their supervisor dies (a SIGTERM from the "
                f"kernel: their calls drain, their record is flushed). Counted in lineage_proxy_unclean_stops_total.")  # fmt: skip
    if alone:
        return (f"{line} Its workers stopped as they do when their supervisor dies (a SIGTERM from the kernel: their "
                f"calls drained, their record flushed): nothing of the record was lost. Counted in lineage_proxy_unclean_stops_total.")  # fmt: skip
    lost = ("Lost with it: its calls in flight, unrecorded (no span, access line or edge; their clients saw the "
            "connection close)")  # fmt: skip
    if known.unwritten:
        lost += "; " + "; ".join(known.unwritten)
    return f"{line} {lost}. Counted in lineage_proxy_unclean_stops_total."
