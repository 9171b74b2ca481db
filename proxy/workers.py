"""Running the proxy: one process, or a supervisor with N worker processes sharing the listen ports.

Signals: SIGTERM/SIGINT drain in-flight calls and exit 0; SIGHUP reloads the config (the supervisor
reads the file once and hands the same bytes to every worker, `hand_over`; each worker validates and swaps it in,
or refuses it and keeps the old one); one that comes while a process is still
starting is held, and the reload done once it serves (`hold_sighup`): its default action would end the
process. A SIGTERM/SIGINT while a process starts stops it: while the config loads it ends the start there
(`cmd_serve`: a load blocked on a FIFO too), then it is blocked until this module holds it (`hold_stop`),
and the start is abandoned as soon as it can be. A
forked worker must never run the supervisor's handler, inherited by fork: the supervisor blocks these
signals from just before a fork until the worker is in its list (so a signal also reaches a worker it is
starting), and the worker unblocks them once its own handlers are in place.

A worker sent a SIGTERM/SIGINT of its own (not the supervisor's) while it starts stops before serving and
says so; the supervisor starts it again, as it restarts a worker that exits. The supervisor restarts a
worker that dies unexpectedly, with the config the proxy started with and the reloads applied since
(`as_reloaded`): what only a restart applies (the lineage store, telemetry.metrics, listen addresses)
stays as in its siblings. A worker whose event loop has not turned for `limits.worker_stall_s` is killed
(SIGKILL) and restarted so too (`Watchdog`); one whose start has not said it serves within that and its start grace
more is killed too, counted (`start_stalled`), and started again as a failed restart is (the others watched meanwhile). Ports given as 0 are resolved once by the supervisor, which
holds a bound but not listening SO_REUSEPORT socket (so it takes no connections) while workers listen on
the same port.

SO_REUSEPORT also lets any other process of the same user join those ports, so before anything binds,
`claim` checks that nothing listens on each address and holds it against other lineage-proxies until
this one stops accepting: a second `serve` on a port in use is refused like any port in use.

Startup failures a user can fix (a port already taken, a lineage store that cannot be opened) are
raised as StartupError, whose message is the one line `lineage-proxy` prints before exiting 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import gc
import itertools
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import BinaryIO, Final

from proxy import files, logs, markers, metrics
from proxy.checkpoints import METADATA_TIMEOUT_S, share_changes
from proxy.config import Address, Config
from proxy.config.loader import Handover, hand_over, load_handed
from proxy.errors import ConfigError, StartupError
from proxy.record.store import SchemaTooNew
from proxy.record.stores import open_waits_s, read_errors, shown
from proxy.server import (
    UPSTREAM_TLS_WAIT_S,
    Beats,
    Bound,
    ProxyProcess,
    ReloadFiles,
    as_reloaded,
    bind,
    bound_address,
    share_beats,
)

log = logging.getLogger("lineage_proxy")
# The collector's young generation is collected once 10,000 more tracked objects (dicts, lists, futures, ...) were
# made than freed, not Python's 700: the calls in flight hold more than 700 between them (their JSON, their
# futures), so at 700 a busy proxy ran a young collection every few calls, each walking what they held (2.7 % of
# its CPU at 64 connections); 0.975x the CPU a call at 64 connections, 0.994x at 8 (`benchmarks.ab`). The older
# generations keep Python's ratios.
GC_THRESHOLDS: Final = (10_000, 10, 10)
# a worker whose restart failed is started again after this wait, doubled after each try that fails, up to the max
RESTART_RETRY_S = 1.0
RESTART_RETRY_MAX_S = 60.0


CLAIM_TRIES = 32  # a claim's file removed under it (its holder let go) this many times in a row: in use
# a claim's lock found taken is tried again after each of these waits (~10 ms in all) before the address is called in
# use: a sweep or a release holds a stale file's lock for microseconds, before it removes the file; a proxy that is
# starting holds its claim for as long as it starts
CLAIM_BUSY_WAITS_S = (0.001, 0.002, 0.003, 0.004)
# each claim sweeps the claims directory of this machine's files nobody holds (`_sweep`): this many of them at
# most, and only files older than this (a younger one may be a claimer's between its open and its lock)
SWEEP_MAX = 64
SWEEP_AGE_S = 60.0


class Claim:
    """A listen address's lock file, held open and locked (flock) by the process that claimed it (`claim`).

    Its `close` there removes the file while still holding its lock, then lets go, so claims do not pile
    up; in a process forked since (a worker) it only closes the descriptor inherited, the lock staying the
    claimer's. A claimer that opened the file just before its holder removed it gets a lock on a file no
    longer named: it checks, once locked, that the name is still its file's, and claims again otherwise.
    """

    def __init__(self, file: BinaryIO, path: str) -> None:
        self.file = file
        self.path = path
        self.pid = os.getpid()

    @property
    def name(self) -> str:
        return self.path

    def close(self) -> None:
        if self.file.closed:
            return  # released already (a stop's release, then the one on the way out)
        try:
            if os.getpid() == self.pid and _names(self.path, self.file):
                os.unlink(self.path)
        except OSError as exc:
            log.debug("listen claim %s left in place: %s", self.path, exc)
        finally:
            self.file.close()


class ListenError(StartupError):
    """A listen address cannot be bound (taken, not local, privileged).

    `taken`: the `listen:` key (`http`, `grpc`, `admin`) whose address another program (or proxy) holds, else None:
    `serve` then says the cure in the config's words, `demo` in its options'. `starting`: the holder is a lineage-proxy
    that claimed the address and listens on it not yet (`_claim`), which no `ss -ltn` shows."""

    def __init__(self, message: str, taken: str | None = None, *, starting: bool = False) -> None:
        super().__init__(message)
        self.taken = taken
        self.starting = starting


def _bind_error(name: str, address: Address, exc: OSError) -> ListenError:
    """The ListenError of `address`, the `listen.<name>` address, that a bind refused with `exc`."""
    taken = name if exc.errno == errno.EADDRINUSE else None
    return ListenError(f"cannot listen on {address}: {_reason(exc)}", taken)


_held_sighup = False
_held_stop = False
# the supervisor's word to its workers that a second SIGINT came to it alone (`kill -INT`, a container's stop
# signal): cut the drain short. A worker counts SIGINTs alone (a terminal's Ctrl-C reaches each worker beside
# the SIGTERM the supervisor sends), so the supervisor cannot pass that one on as a SIGINT
HURRY: Final = signal.SIGUSR1
_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, HURRY)  # what the supervisor blocks while it forks
# held by a `--workers` supervisor's reload load (`follow_reload`, on a thread of its own) but while it waits on a FIFO
# (`files.read_bytes`), and by the supervisor as it forks a worker: forked amid a load, a worker found taken for good
# what the load's thread held then (the ssl module's locks as it reads a TLS file, an import's module lock, OpenSSL's
# own), and its next use of it never returned. A load that does not end (a file on a hung mount) is waited for
# FORK_WAIT_S at most: a worker that died is restarted then all the same, as before
FORK_WAIT_S = 10.0


# how often a fork waiting for a load wakes to run the signal handlers a SIGTERM taken by another thread left pending
FORK_WAKE_S: Final = 0.2


class ForkGate:
    """What a supervisor's loads (any number at once: `acquire`, `release`) and its forks (one at a time: `fork`,
    `forked`) take: a fork waits until no load runs, and a load waits for a fork under way to end."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._loads = 0
        self._forking = False
        self.stopping = False  # the supervisor stops: a fork waits for no load (`stop`)

    def acquire(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: not self._forking)
            self._loads += 1

    def release(self) -> None:
        with self._changed:
            self._loads -= 1
            self._changed.notify_all()

    def __enter__(self) -> ForkGate:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def fork(self, timeout: float) -> bool:
        """Wait until no load runs (`timeout` seconds at most: False when one still does), or the supervisor stops
        (`stop`); no load begins until `forked`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:  # in slices: a SIGTERM another thread took sets only Python's flag, which the main thread,
                # asleep on the lock, reads (and runs `stop` for) once it wakes: within FORK_WAKE_S, not `timeout`
                left = deadline - time.monotonic()
                ended = self._changed.wait_for(lambda: not self._loads or self.stopping, min(FORK_WAKE_S, max(left, 0)))
                if ended or left <= FORK_WAKE_S:
                    break
            self._forking = True
            return ended

    def stop(self) -> None:
        """The supervisor stops: a fork waiting for a load (a hung one, FORK_WAIT_S at most) waits no longer. Called
        from a signal handler, which may have interrupted the thread in `fork` holding the lock: the flag is set
        there, and the wait woken from a thread of its own, which can take the lock once that thread lets go."""
        self.stopping = True
        threading.Thread(target=self._wake, name="stop", daemon=True).start()

    def _wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def forked(self) -> None:
        with self._changed:
            self._forking = False
            self._changed.notify_all()


FORK_GATE: Final = ForkGate()

# the supervisor's own loop looks at its workers' beats every 0.2 s or so; a look this much later than the one before
# (the whole process group stopped and continued: a terminal's Ctrl-Z and `fg`, `docker pause`) starts the watch again
WATCH_GAP_S: Final = 2.0
LOOK_S: Final = 0.2  # how often it looks, while it waits on a worker (to end, or to say it serves)
# a worker's start waits, each for a bounded time, one after the other: the lineage store's open (a SQLite file's:
# switching a new file to WAL, then its write lock, OPEN_TIMEOUT_S each), the HTTPS upstreams' TLS contexts, the
# upstreams' first metadata. Summed from their own constants, so a longer wait cannot outgrow the grace unseen (the
# grace was 30 s, the sum of three of them: a start at their limits with a small worker_stall_s was killed as
# start_stalled)
START_WAITS_S: Final = open_waits_s(None) + UPSTREAM_TLS_WAIT_S + METADATA_TIMEOUT_S
START_MARGIN_S: Final = 10.0  # the rest of a start (the fork, imports, reading the config) on a busy host
# a worker that has not said it serves this long beyond limits.worker_stall_s after it was started (killed with SIGKILL,
# said, counted, started again as a failed restart is; at the proxy's start, the start fails): its waits at their
# limits and the margin (50 s), with a SQLite store; longer with one whose open waits longer (`start_grace_s`). With
# the watchdog off (worker_stall_s: 0) it is counted as serving after START_WAIT_S, as before
START_GRACE_S = START_WAITS_S + START_MARGIN_S
START_WAIT_S = 60.0


def start_grace_s(store: str | None) -> float:
    """START_GRACE_S, and as much more as the open of `store` (`lineage.store`, fixed at start) may wait beyond a
    SQLite file's (`open_waits_s`): a PostgreSQL store's, up to 55 s with its default bounds (its connection, the
    chain's lock, then its journal), outgrew the 20 s counted for it, and a worker opening a slow one was killed as
    start_stalled with worker_stall_s under 30 s."""
    return START_GRACE_S + max(0.0, open_waits_s(store) - open_waits_s(None))


class Watchdog:
    """A `--workers` supervisor's watch over its workers' loops (`limits.worker_stall_s`), read from the beats each
    worker writes every `server.BEAT_S` from its own loop (`server.Beats`): a worker whose loop has not turned for that
    long (stopped, blocked on a hung file system, spinning in C) still takes its share of the new connections, and its
    calls wait until their clients give up, for as long as it stays so. It is killed (SIGKILL: a SIGTERM's drain needs
    the loop that does not turn) and restarted, as one that died. A worker that has not beaten yet (still starting, a
    slot holding no pid or another's: its start is bounded instead, `START_GRACE_S`) or that has stopped (its slot
    cleared once its drain and flush are over) is not watched; one draining is (its drain needs its loop: stalled, it would hold the stop for good).

    Time counts only while the supervisor itself looks: after a look `WATCH_GAP_S` late (the supervisor was stopped
    too, as a Ctrl-Z or `docker pause` stops every process; not a wait of its own for a worker to start: `waited`)
    each worker gets the whole bound again, counted from then, so continuing a paused proxy kills no worker that beats
    again. No thread of its own: the supervisor's loop looks after each 0.2 s wait on a worker (`run_workers`)."""

    def __init__(self, beats: Beats, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.beats = beats
        self._clock = clock  # the beats' (CLOCK_MONOTONIC, ns)
        self._looked = clock()  # the supervisor's last look
        self._since = self._looked  # and when its watch began: no worker is quiet for longer than since then

    def look(self) -> int:
        """The supervisor looks now (its clock's time); a look late after the last starts the watch again."""
        now = self._clock()
        if now - self._looked > WATCH_GAP_S * 1e9:
            self._since = now
        self._looked = now
        return now

    def waited(self) -> None:
        """The supervisor waited on purpose (a worker's start): its next look is not late, whatever it waited."""
        self._looked = self._clock()

    def quiet(self, index: int, pid: int, now: int) -> float:
        """For how long (s) worker `index`, process `pid`, has not turned its loop as the watch saw it: 0 for one not
        watched (not beating yet, or stopped)."""
        beat = self.beats.quiet_since(index, pid)
        if beat is None:
            return 0.0
        return max(0, now - max(beat, self._since)) / 1e9


def _hold(signum: int, frame: object) -> None:
    global _held_sighup, _held_stop
    if signum == signal.SIGHUP:
        _held_sighup = True
    else:
        _held_stop = True


def hold_sighup() -> None:
    """From now until the serving loop handles it, a SIGHUP is held rather than ending the process."""
    signal.signal(signal.SIGHUP, _hold)


def hold_stop() -> None:
    """From now until the loop handles them, a SIGTERM or SIGINT is held (the process stops once its loop
    runs) rather than running a handler inherited by fork, or ending the process where it is. One that came
    while they were blocked (`cmd_serve` blocks them from the end of the config load) is held now."""
    signal.signal(signal.SIGTERM, _hold)
    signal.signal(signal.SIGINT, _hold)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGTERM, signal.SIGINT))


def _take_held_sighup() -> bool:
    global _held_sighup
    held, _held_sighup = _held_sighup, False
    return held


def _take_held_stop() -> bool:
    global _held_stop
    held, _held_stop = _held_stop, False
    return held


PR_SET_PDEATHSIG: Final = 1  # prctl(2): the signal the kernel sends a process when its parent ends


def _stop_with_supervisor(supervisor: int) -> None:
    """Have the kernel send this worker a SIGTERM when its supervisor ends, and send it now if it has ended
    already (before this ran): a supervisor killed (SIGKILL, the OOM killer) left its workers serving on their own,
    unsupervised and never stopped, and the proxy started again was refused their address. The SIGTERM drains the
    worker as the supervisor's would. Linux only (elsewhere nothing is done)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        failed = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0
    except (OSError, AttributeError) as exc:
        log.debug("workers are not stopped with their supervisor: %s", exc)
        return
    if failed:  # (refused: a seccomp profile, say; ctypes returns -1, it raises nothing)
        log.debug("workers are not stopped with their supervisor: prctl: %s", os.strerror(ctypes.get_errno()))
        return
    if os.getppid() != supervisor:
        os.kill(os.getpid(), signal.SIGTERM)  # held (`hold_stop`): it stops before serving


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _reason(exc: BaseException) -> str:
    """`[Errno 98] Address already in use` → `address already in use`."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc).strip().split("\n")[0].split(";")[0]  # psycopg's: "connection failed: ...", then hints


def _listen_addresses(config: Config) -> list[tuple[str, Address]]:
    listen = config.listen
    named = (("http", listen.http), ("grpc", listen.grpc), ("admin", listen.admin))
    return [(name, address) for name, address in named if address is not None]


def _is_bind_failure(exc: BaseException) -> bool:
    # grpc.aio raises RuntimeError("Failed to bind to address ...") where sockets raise OSError
    return isinstance(exc, OSError) or (isinstance(exc, RuntimeError) and "bind" in str(exc).lower())


def _listen_error(config: Config, reuse_port: bool, exc: BaseException) -> ListenError:
    """Name the address that cannot be bound: the first configured one a probe bind fails on."""
    addresses = _listen_addresses(config)
    for name, address in addresses:
        try:
            probe = bind(address, listen=False, reuse_port=reuse_port)
        except OSError as failed:
            return _bind_error(name, address, failed)
        probe.close()
    where = ", ".join(str(address) for _, address in addresses)
    return ListenError(f"cannot listen on {where}: {_reason(exc)}")


def claim(config: Config) -> list[Claim]:
    """This proxy's hold on its listen addresses, taken before it binds them; ListenError when one is in use.

    A probe bound without SO_REUSEPORT fails on any socket listening on the address (the workers of
    another proxy included, which a SO_REUSEPORT bind would silently join). Another lineage-proxy of this
    user that is starting and not listening yet holds its claim: an exclusive lock (flock) on a file named
    after the address and the network namespace, in a directory only this user can open (`_claims_dir`),
    which the kernel lets go when the process ends (`release` removes the file: `Claim`; each claim removes
    this machine's files nobody holds: `_sweep`). A lock no other user can reach: an abstract Unix name, as the claim was,
    can be bound by any local process, and one that filled its queue kept a proxy from a free port. What is left: a proxy on an overlapping but differently written address (`0.0.0.0:P` beside
    `127.0.0.1:P`), or another user's, that is still starting is seen only once it listens, and a process
    other than lineage-proxy may still join a port with SO_REUSEPORT after the probe. Port 0 is not claimed:
    the port the kernel picks for it is one no socket is bound to.
    """
    held: list[Claim] = []
    try:
        for name, address in _listen_addresses(config):
            if address.port != 0:
                held.extend(_claim(name, address))
    except BaseException:
        release(held)
        raise
    if held:
        _sweep(os.path.dirname(held[0].path), {each.path for each in held})
    return held


def _claim(name: str, address: Address) -> list[Claim]:
    try:
        probe = bind(address, listen=False)  # SO_REUSEADDR: connections in TIME_WAIT after a restart do not count
    except OSError as exc:
        raise _bind_error(name, address, exc) from exc
    with probe:
        directory = _claims_dir()
        if directory is None:
            return []
        # ports, like the claim, are per network namespace, and per machine: a home directory may be shared
        # (NFS) by hosts whose default namespaces have the same inode, so the boot's id names the machine
        # (not `name`, the listener's key a ListenError names: until 2026-12-07 it was this file's, `set
        # listen.listen-...-127.0.0.1:8080.lock to a free port`)
        file_name = f"{_claim_prefix()}{os.stat('/proc/self/ns/net').st_ino}-{bound_address(probe)}.lock"
        path = os.path.join(directory, file_name.replace("/", "_"))
        for _ in range(CLAIM_TRIES):
            try:
                lock = open(path, "ab")  # noqa: SIM115 -- held until `release`
            except OSError as exc:  # a read-only file system (a container's), a full disk: the probe alone decides
                log.debug("no claim on %s (%s): a second proxy starting at once is seen once it listens", address, exc)
                return []
            try:
                _lock(lock, path)
                if _names(path, lock):
                    return [Claim(lock, path)]
            except OSError as exc:
                busy = exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
                removed = busy and not _names(path, lock)  # locked by who removed it meanwhile (a release, a sweep)
                lock.close()
                if removed:
                    continue  # claim the file named now
                if busy:
                    raise ListenError(f"cannot listen on {address}: address already in use by a lineage-proxy "
                                      "that is starting", name, starting=True) from exc  # fmt: skip
                log.debug("no claim on %s (%s): a second proxy starting at once is seen once it listens", address, exc)
                return []  # a file system without locks (some NFS): as above
            lock.close()  # its holder removed it as it let go, after this opened it: claim the file named now
    raise ListenError(f"cannot listen on {address}: address already in use by lineage-proxies starting and "
                      "stopping on it", name, starting=True)  # fmt: skip


def _lock(lock: BinaryIO, path: str) -> None:
    """flock(LOCK_EX | LOCK_NB) on a claim's file, tried again after each of CLAIM_BUSY_WAITS_S while its lock is
    taken and `path` still names it: a sweep's or a release's lock, on a file it is about to remove, is let go
    within microseconds; a starting proxy's is not. BlockingIOError when it is still taken."""
    for wait in CLAIM_BUSY_WAITS_S:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if not _names(path, lock):
                raise  # removed by whoever holds it: the caller claims the file named now
        time.sleep(wait)  # a proxy's start, not a call: a few ms at most, and only when a lock is taken
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _names(path: str, file: BinaryIO | int) -> bool:
    """Whether `path` names `file` (or descriptor) still (not removed, nor replaced by another claimer's)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(file if isinstance(file, int) else file.fileno())
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _sweep(directory: str, held: set[str]) -> None:
    """Removes the claims directory's stale files: this machine's claims nobody holds (a lock on them is free),
    left by a proxy killed (SIGKILL) on an address no proxy used again, or by releases that did not remove
    their file. Each is removed while this holds its lock, and only if its name is still that file's (as
    `Claim.close` does): a claimer that opened it meanwhile then claims the file named now. A file held by a
    live process (its lock is taken), or younger than SWEEP_AGE_S, is kept; so is every file not named for
    this machine's boot (another host's, on a home directory shared over NFS, whose flock this host's does not
    see; or one named before claims carried the boot). At most SWEEP_MAX of this machine's files are looked at."""
    removed = 0
    too_old = time.time() - SWEEP_AGE_S
    prefix = _claim_prefix()
    try:
        with os.scandir(directory) as entries:
            own = (entry for entry in entries if entry.name.startswith(prefix) and entry.name.endswith(".lock"))
            for entry in itertools.islice(own, SWEEP_MAX):
                if entry.path in held:
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_mtime > too_old:
                        continue
                    fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
                except OSError:
                    continue  # removed meanwhile
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a live process: BlockingIOError
                    if _names(entry.path, fd):
                        os.unlink(entry.path)
                        removed += 1
                except OSError:
                    pass
                finally:
                    os.close(fd)
    except OSError as exc:
        log.debug("listen claims in %s not swept: %s", directory, exc)
    if removed:
        log.debug("removed %d stale listen claims from %s", removed, directory)


def _claim_prefix() -> str:
    """How this machine's (this boot's) claim files are named, up to their network namespace and address."""
    return f"listen-{_machine()}-".replace("/", "_")


def _machine() -> str:
    """This boot of this machine (Linux's boot id), else its host name."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return socket.gethostname()


def _claims_dir() -> str | None:
    """Where claims are kept: `lineage-proxy/` in $XDG_RUNTIME_DIR, else in ~/.cache, made 0700; None (no
    claim, the probe alone) off Linux or when neither is this user's own and closed to others."""
    if not sys.platform.startswith("linux"):
        return None
    for base in (os.environ.get("XDG_RUNTIME_DIR"), os.path.join(os.path.expanduser("~"), ".cache")):
        if not base or not os.path.isabs(base):
            continue
        directory = os.path.join(base, "lineage-proxy")
        with contextlib.suppress(OSError):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        try:
            info = os.lstat(directory)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077:
            return directory
    log.debug("no private directory for listen claims: a second proxy starting at once is seen once it listens")
    return None


def release(claims: Iterable[Claim | socket.socket]) -> None:
    """Let other proxies claim these addresses (once this one has stopped accepting, or never started)."""
    for held in claims:
        held.close()


def open_process(config: Config, *, reuse_port: bool = False, ports: Bound | None = None) -> ProxyProcess:
    """ProxyProcess(config), with a lineage store that cannot be opened reported as a StartupError."""
    refused: tuple[type[Exception], ...] = (OSError, *read_errors(), SchemaTooNew)  # SQLite's or the database's
    try:
        return ProxyProcess(config, reuse_port=reuse_port, ports=ports)
    except refused as exc:  # a StartupError (an unreadable key or password file) says it already
        if not config.lineage.store:
            raise
        raise StartupError(f"cannot open the lineage store {shown(config.lineage.store)}: {_reason(exc)}") from exc


async def start_process(process: ProxyProcess, *, reuse_port: bool = False) -> Bound:
    """process.start(), with a listen address that cannot be bound reported as a StartupError."""
    try:
        return await process.start()
    except (OSError, RuntimeError) as exc:
        if not _is_bind_failure(exc):
            raise
        with contextlib.suppress(Exception):
            await process.stop()  # release what did bind, so the probe names the address that did not
        raise _listen_error(process.config, reuse_port, exc) from exc


async def _serve(
    config_path: str,
    config: Config,
    ports: Bound | None,
    ready: Connection | None,
    claims: list[Claim],
    handover: Handover | None = None,
    settled: int = 0,
) -> int:
    """Serve until told to stop. `handover`: in a `--workers` worker, where its supervisor hands over the config a
    SIGHUP reloads (`hand_over`): read once for every worker, not by each; `settled`, the last hand-over `config`
    reflects (`Handover.settled`): a SIGHUP reloads only a newer one."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    interrupts = 0
    serving: ProxyProcess | None = None

    def interrupt() -> None:
        # Ctrl-C stops as SIGTERM does; pressed again, it cuts the drain short. SIGINTs alone are counted: a
        # terminal's Ctrl-C reaches each --workers worker beside the supervisor's SIGTERM, one stop
        nonlocal interrupts
        interrupts += 1
        stop.set()
        if interrupts > 1 and serving is not None:
            log.warning("a second SIGINT: cutting the drain short")
            serving.hurry()

    loop.add_signal_handler(signal.SIGINT, interrupt)

    # SIGUSR1: a worker's supervisor had a second SIGINT, or was sent SIGUSR1; or sent as it is, to stop with the
    # drain cut short. The lines of the drain name it as it came: a process alone has no supervisor to pass it on
    hurried_by = "SIGUSR1 (a second SIGINT to the supervisor, or sent as it is)" if ports is not None else "SIGUSR1"

    def hurry() -> None:
        stop.set()
        if serving is not None and interrupts < 2:  # (a terminal's second Ctrl-C reached it too: cut already)
            log.warning("%s: cutting the drain short", hurried_by)
            serving.hurry(hurried_by)

    loop.add_signal_handler(HURRY, hurry)
    if _take_held_stop():
        stop.set()
    if stop.is_set():
        return _stopped_before_serving(ready)
    process = open_process(config, reuse_port=ports is not None, ports=ports)
    bound = await _start_unless_stopped(process, stop, reuse_port=ports is not None)
    if bound is None:
        return _stopped_before_serving(ready)
    serving = process
    if handover is not None:  # the last config its supervisor accepted, as it was forked: the one it runs
        process.handed, process.handed_number = handover.accepted, settled
    # what start-up made (imports, the config, the pipeline) lives as long as the process: out of the collector's
    # sight, a full collection walks only what came after (#12). Once: a reload's objects are collected as usual
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    loop.add_signal_handler(signal.SIGHUP, lambda: process.reload_soon(config_path, handover))
    if ready is not None:
        log.info("serving %s", bound.describe(), extra={"config_sha256": process.config.digest})
        ready.send(("ready", bound.describe()))
        ready.close()
    else:
        announce(bound, process.config.digest)
    if _take_held_sighup() and (handover is None or handover.latest() > settled):
        log.info("a SIGHUP came while starting: reloading now")
        process.reload_soon(config_path, handover)
    await stop.wait()
    release(claims)  # the listeners close now: a new proxy may start while this one drains
    log.info("stopping: draining in-flight calls (at most %gs)", process.config.limits.drain_timeout_s)
    await process.stop()
    return 0


def _stopped_before_serving(ready: Connection | None) -> int:
    log.info("stopping before serving")
    if ready is not None:  # a worker: the supervisor tells this from a start that failed
        ready.send(("stopped", ""))
        ready.close()
    return 0


async def _start_unless_stopped(process: ProxyProcess, stop: asyncio.Event, *, reuse_port: bool) -> Bound | None:
    """start_process(process), or None when `stop` is set first (it may wait seconds for upstreams'
    metadata): the start is abandoned and what did start is stopped."""
    starting = asyncio.ensure_future(start_process(process, reuse_port=reuse_port))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((starting, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not stop.is_set():
        return starting.result()
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting  # a StartupError it ended with is still said
    await process.stop()
    return None


def announce(bound: Bound, digest: str = "") -> None:
    """The one line scripts and tests wait for: the proxy is serving, on these addresses (`digest`: of the config this
    process runs, said in its log line; a `--workers` supervisor's, of the config its workers start on: until
    2026-12-05 it said none, its workers' lines alone did). Written as a span is (`logs.write_stdout`): whole, in one
    write, taking turns with the spans and, when stderr is stdout (`2>&1`), with the log lines. A `print` took no turn,
    and under PYTHONUNBUFFERED wrote the line and its newline apart: a log line written between them broke both (3 of 12
    runs of test_console_spans_whole's `2>&1` tests)."""
    if logs.stdout_unwritable() is None:  # (with none, `1>&-`, one open for reading alone, `1</dev/null`, or a pipe
        # whose reader is gone: said nowhere; the second's write raised EBADF, the third's EPIPE, and ended the start)
        try:
            logs.write_stdout(f"lineage-proxy ready {bound.describe()}\n".encode())
        except OSError as exc:  # a stdout that refuses it (`1>/dev/full`: ENOSPC) ended the start with a traceback
            log.warning("the ready line could not be written to stdout (%s: %s)", type(exc).__name__, exc)
    log.info("serving %s", bound.describe(), extra={"config_sha256": digest} if digest else None)


def run_single(config_path: str, config: Config) -> int:
    """Serve in this process. Raises StartupError when it cannot start."""
    hold_sighup()
    hold_stop()
    if _held_stop:  # it came while `serve` loaded the config: nothing is claimed or bound yet
        log.info("stopping before serving")
        return 0
    install_uvloop()
    claims = claim(config)
    marker = None
    try:
        marker = markers.begin(config, "serve")  # an earlier run on this record that did not stop is said here
        return asyncio.run(_serve(config_path, config, None, None, claims))
    finally:
        if marker is not None:
            marker.close()  # it stopped (or never served, and said why)
        release(claims)


def _worker_main(
    config_path: str,
    config: Config,
    ports: Bound,
    ready: Connection,
    metrics_dir: str,
    claims: list[Claim],
    logging_changed: bool,
    supervisor: int,
    handover: Handover,
    settled: int,
    marker: markers.Marker | None = None,
) -> None:
    # forked with _SIGNALS blocked (`spawn`) and the supervisor's handler in place: ours first
    hold_sighup()
    hold_stop()
    signal.signal(HURRY, signal.SIG_IGN)  # until its loop handles it: one that comes while it starts follows a SIGTERM
    _stop_with_supervisor(supervisor)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    release(claims)  # the supervisor's, inherited by fork: it holds them, and lets go when it stops
    # the supervisor's marker, inherited by fork, let go (its lock stays the supervisor's); one of this worker's own
    own = marker.worker(multiprocessing.current_process().name, config) if marker is not None else None
    if logging_changed:  # by a reload since the proxy started: as its siblings log now
        logs.configure(config.logging)
    metrics.share(metrics_dir)  # a scrape of any worker sums every worker's series
    install_uvloop()
    try:
        code = asyncio.run(_serve(config_path, config, ports, ready, [], handover, settled))
    except StartupError as exc:
        ready.send(("error", str(exc)))  # the supervisor reports it, once
        ready.close()
        code = 1
    finally:
        if own is not None:
            own.close()
        logs.flush()  # a forked worker ends without `logging.shutdown`: its last lines (the head at stop) out first
    sys.exit(code)


def _exit_reason(exitcode: int | None) -> str:
    """A worker's end as `lineage_proxy_worker_restarts_total{reason}` names it: `sigkill`, `sigsegv`, ... or `exit`."""
    if exitcode is None or exitcode >= 0:
        return "exit"
    try:
        return signal.Signals(-exitcode).name.lower()
    except ValueError:
        return f"signal{-exitcode}"


def _lost_with_worker(exitcode: int | None, reason: str, in_flight: int | None, config: Config, *,
                      restarted: bool = True) -> str:  # fmt: skip
    """What an operator is told a worker that died took with it: its calls in flight (how many, from its live gauges'
    file), what it held not yet written (by the sinks `config` has), and where to look for why it ended (and that it
    is counted, when it is `restarted`)."""
    counted = "Counted in lineage_proxy_worker_restarts_total and lineage_proxy_worker_calls_lost_total."
    if not restarted:
        counted = ""
    if exitcode == 0:  # `_serve` returned: it drained and flushed as any stop does
        return f"It stopped (a SIGTERM or SIGINT sent to it alone): its calls drained, its record flushed. {counted}"
    unrecorded = "lost unrecorded (no span, access line or edge; their clients saw the connection close)"
    if in_flight is None:
        lost = f"Its calls in flight were {unrecorded}; how many is not known (telemetry.metrics is off)."
    elif in_flight == 0:
        lost = "No call was in flight in it."
    else:
        lost = f"{in_flight} call{'s were' if in_flight != 1 else ' was'} in flight in it, {unrecorded}."
    held = markers.unwritten(config)
    if held:
        lost += " Also lost, held not yet written: " + ", ".join(held) + "."
    why = {
        "sigkill": "SIGKILL: the kernel's log (dmesg) says whether the OOM killer sent it.",
        "exit": "It ended itself: its own lines above say why.",
        "stalled": "Its own last lines may say what it was doing.",
    }.get(reason, f"{reason.upper()}: a crash, or another process's signal.")
    return f"{lost} {why} {counted}".rstrip()


def run_workers(config_path: str, config: Config, workers: int) -> int:
    """Reserve the ports, start `workers` processes, supervise them until told to stop.

    Raises StartupError when a port is in use or cannot be reserved, or a worker cannot start (the others are
    stopped).
    """
    hold_sighup()  # until `on_signal` is installed
    hold_stop()
    if _held_stop:  # it came while `serve` loaded the config: nothing is claimed or bound yet
        log.info("stopping before serving")
        return 0
    claims = claim(config)
    reserved: dict[str, socket.socket] = {}
    try:
        for name, address in _listen_addresses(config):
            reserved[name] = bind(address, listen=False, reuse_port=True)
    except OSError as exc:
        release([*claims, *reserved.values()])
        raise _bind_error(name, address, exc) from exc
    resolved = {name: bound_address(sock) for name, sock in reserved.items()}
    ports = Bound(resolved["http"], resolved.get("grpc"), resolved.get("admin"), config.listen.tls is not None)
    context = multiprocessing.get_context("fork")
    # the workers' metric files (prometheus-client multiprocess mode); removed when the supervisor exits
    metrics_dir = tempfile.mkdtemp(prefix="lineage-proxy-metrics-")
    # the config a reload read, once for every process (`hand_over`): in memory, inherited by every worker forked
    handover = Handover()
    counted = metrics.Supervisor(metrics_dir)  # workers restarted, their calls lost, the supervisor's log lines dropped
    try:  # an earlier run on this record that did not stop is said here, and counted
        marker = markers.begin(config, "supervisor")
    except BaseException:
        release([*claims, *reserved.values()])
        shutil.rmtree(metrics_dir, ignore_errors=True)
        handover.close()
        raise
    counted.unclean_stops.inc(markers.newly_found())
    # a POST /lora-adapters one worker relays makes every worker read the scales again (`checkpoints.Changes`)
    share_changes()
    # a /readyz probe any worker answers says whether every worker turns its loop; one that stays stalled is killed
    watchdog = Watchdog(share_beats(workers))
    killed: dict[int, int] = {}  # workers the watchdog killed, not reaped yet: index -> pid
    children: dict[int, multiprocessing.process.BaseProcess] = {}
    stopping = False
    failed = False
    # what a worker started now runs: `config` with the reloads applied since, as the workers apply them
    # (restart-only settings as they were, a reload the workers refuse left out)
    running = config
    interrupts = 0  # SIGINTs: the second (and each after it) cuts the workers' drain short

    def watch() -> None:
        """Kill the workers whose loop has not turned for `limits.worker_stall_s` (`Watchdog`), at a stop too (one
        stalled does not drain: the stop would wait for it for good); the loop below reaps and restarts them."""
        now = watchdog.look()
        bound = running.limits.worker_stall_s
        if not bound:
            return
        for index, child in children.items():
            pid = child.pid
            if pid is None or index in killed:
                continue
            quiet = watchdog.quiet(index, pid, now)
            if quiet < bound:
                continue
            in_flight = metrics.in_flight_of(pid, metrics_dir)  # as it stalled: it writes no more
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed[index] = pid
            follow_logging()
            log.error("worker-%d (pid %d) has not turned its event loop for %.0fs (limits.worker_stall_s: %g; "
                      "stopped, or its loop blocked: a hung file system, code that never yields), while the "
                      "kernel still gave it its share of the new connections: killed with SIGKILL (a SIGTERM's "
                      "drain needs the loop that does not turn); %s %s", index, pid, quiet, bound,
                      "the proxy is stopping: it is not restarted." if stopping else "restarting it.",
                      _lost_with_worker(-signal.SIGKILL, "stalled", in_flight, running,
                                        restarted=not stopping))  # fmt: skip
            if not stopping:
                counted.worker_died("stalled", in_flight)

    def spawn(index: int) -> tuple[str, str]:
        """Start worker `index` and wait for it to serve: ("ready", ""), ("stopped", "") when it stopped
        before serving (told to by a signal: the supervisor's, passed on, or one sent to it alone; or the
        proxy is stopping and it was not started, or was killed still starting `drain_timeout_s` + 5 s after the stop),
        or ("error", why it could not start: a start that has not said it serves within `worker_stall_s` +
        `start_grace_s` is killed, and is one). The other workers are watched while it waits."""
        # no load runs on another thread as the worker is forked (`FORK_GATE`); signals are taken meanwhile
        if not FORK_GATE.fork(FORK_WAIT_S) and not stopping:
            follow_logging()
            log.warning("worker-%d: a reload's load has not ended in %gs (a file on a hung mount?): forked all the "
                        "same", index, FORK_WAIT_S)  # fmt: skip
        try:
            receive, send = context.Pipe(duplex=False)
        except BaseException:
            FORK_GATE.forked()
            raise
        # a signal now would miss a worker forked but not yet in `children` (and a reload would miss its
        # config); one in the child before its own handlers are in would run `on_signal` there
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # runs those already pending
        try:
            if stopping:
                send.close()
                receive.close()
                return "stopped", ""
            # a reload's load still running (`follow_reload`) has not put its config in `running` yet: the worker
            # reloads too, once it serves (a SIGHUP sent now is held until then), as its siblings do
            behind = loading[0]  # (read before `running`: a load that ends in between has updated it)
            settled = handover.settled  # (so too: a hand-over said settled is one `running` reflects)
            args = (config_path, running, ports, send, metrics_dir, claims, running.logging != config.logging,
                    os.getpid(), handover, settled, marker)  # fmt: skip
            child = context.Process(target=_worker_main, args=args, name=f"worker-{index}")
            child.start()
            children[index] = child
            if behind and child.pid is not None:
                os.kill(child.pid, signal.SIGHUP)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            FORK_GATE.forked()
        send.close()
        watchdog.waited()  # (the fork's wait for a load is not a pause of the whole proxy)
        # the others are watched meanwhile (a stalled one was killed only once this wait ended); a start that has not
        # said it serves within its bound is a failed start, killed (it has no beat: it was never watched)
        stall = running.limits.worker_stall_s
        grace = start_grace_s(running.lineage.store)
        bound = stall + grace if stall else START_WAIT_S
        deadline = time.monotonic() + bound
        stopped_at: float | None = None  # when it saw the proxy told to stop, while it waited
        outcome = "ready", ""
        while True:
            if receive.poll(LOOK_S):
                try:
                    kind, detail = receive.recv()
                    outcome = (kind, f"worker-{index}: {detail}" if kind == "error" else "")
                except EOFError:  # it died before saying anything: its own traceback is on stderr
                    child.join(5)
                    outcome = "error", f"worker-{index} exited during startup with {child.exitcode}"
                break
            watch()
            if stopping and stopped_at is None:  # it was sent the SIGTERM: a start abandoned ends long before this
                stopped_at = time.monotonic()
                deadline = min(deadline, stopped_at + running.limits.drain_timeout_s + 5)
            if time.monotonic() < deadline:
                continue
            if not stall and stopped_at is None:  # the watchdog is off: counted ready, as it always was
                break
            pid = child.pid
            child.kill()
            child.join()
            if pid is not None:
                metrics.process_gone(pid, metrics_dir)
                if marker is not None:
                    marker.forget(pid)  # said here: not again at the next start
            receive.close()
            if stopped_at is not None:
                follow_logging()
                log.error("worker-%d (pid %s) was still starting %gs after the proxy was told to stop (stopped, or its "
                          "start blocked: a hung file system, a FIFO): killed with SIGKILL", index, pid,
                          time.monotonic() - stopped_at)  # fmt: skip
                return "stopped", ""
            counted.worker_died("start_stalled", None)  # it served no call: none lost
            return "error", (f"worker-{index} (pid {pid}) has not said it serves {bound:g}s after it was started "
                             f"(limits.worker_stall_s + {grace:g}s; stopped, or its start blocked: a hung "
                             "file system, a FIFO): killed with SIGKILL")  # fmt: skip
        receive.close()
        return outcome

    logging_now = config.logging  # what the supervisor's own lines follow: `running`'s, once the loop sees it

    def follow_logging() -> None:
        """The supervisor logs as its workers do once a reload changed `logging:` (applied in the loop, not in the
        signal handler, which may have interrupted a line being written)."""
        nonlocal logging_now
        if running.logging != logging_now:
            logging_now = running.logging
            logs.configure(logging_now)

    def stopped_alone(index: int) -> None:
        """Worker `index` stopped before serving while the proxy is not stopping: a SIGTERM/SIGINT sent to it
        alone. It is gone once it has said so; it is started again, as a worker that exits is."""
        follow_logging()
        log.warning("worker-%d was stopped before it served (a SIGTERM or SIGINT sent to it alone); "
                    "starting it again", index)  # fmt: skip
        child = children.pop(index)
        child.join(config.limits.drain_timeout_s + 5)  # it only has to exit: nothing is in flight
        if child.exitcode is None:
            child.kill()
            child.join()
        if child.pid is not None:
            metrics.process_gone(child.pid, metrics_dir)

    def signal_children(signum: int) -> None:
        # (a copy: a reload's thread signals too, while the main thread adds and removes workers)
        for child in list(children.values()):
            if child.pid is not None and child.is_alive():
                # gone all the same when this handler interrupted the main thread's reap of it, between the `waitpid`
                # that reaped it and multiprocessing's noting its exit code: `is_alive` saw none (its own `waitpid`,
                # nothing to reap). The ProcessLookupError came out there, in multiprocessing's `poll`, which took it
                # for "not exited yet": that exit code was never noted, the supervisor waited for the worker for good,
                # and the workers after it were not signalled (a stop that never ended)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signum)

    # SIGHUPs one at a time, in the order they came, each from its read to its load's end (`follow_reload`): a
    # hand-over carries the last config accepted before it; and whether a load runs (`spawn`: a worker forked while it
    # waits on a FIFO missed its signal). The signal handler takes no lock (it may have interrupted the thread holding it)
    handing = threading.Lock()
    loading = [False]

    def follow_reload() -> None:
        """A SIGHUP: the config file read once (`hand_over`) and handed over to the workers with the last config the
        supervisor accepted (`Handover.put`), the workers told to reload (they validate and log it themselves), then
        loaded here and checked by the workers' own rule (`as_reloaded`): `running`, what a worker started from now on
        runs, is the config they reload to. A worker that refuses the newest config runs the last one accepted if it
        does not run it (`ProxyProcess.reload_soon`): one that took two SIGHUPs at once (slow, or stopped), a valid
        config then one refused, read only the second and stayed on the config before both, while its siblings and
        the supervisor ran the first (before 2026-12-05). Each worker read the file itself before 2026-12-05: written
        in place meanwhile, or changed between their reads, it left them on different configs until the next SIGHUP.
        On a thread of its own: a load that waits on a file (a hung mount, a FIFO) held the signal handler, so the
        supervisor no longer stopped, restarted its workers, nor passed the next signals on; the next SIGHUP's
        hand-over waits for it (it must know whether this one was accepted)."""
        nonlocal running
        # (`handing` before the gate: a read waiting for it must not hold forks.) No worker is forked amid it (but
        # while it waits on a FIFO): one forked after it runs `running` and knows it runs `handover.accepted`, the two
        # updated together; one forked before the signal is signalled too, one forked during the load (`loading`) too
        if not handing.acquire(timeout=FORK_WAIT_S):  # (said: a load that never ends held it without a word)
            log.warning("reload: a SIGHUP waits: the supervisor's load of the config of the one before it has not "
                        "ended in %gs (a file on a hung mount, a FIFO not written?); the config in force stays, and this one is "
                        "handed over to the workers once that load ends", FORK_WAIT_S)  # fmt: skip
            handing.acquire()
        with contextlib.ExitStack() as held, FORK_GATE:
            held.callback(handing.release)
            try:
                with files.released_while_waiting(FORK_GATE):
                    data = hand_over(config_path)
                    try:
                        handover.put(data, handover.accepted)
                    except OSError as exc:  # (memory short): no worker is told, each keeps the config in force
                        log.error("reload: cannot hand the config over to the workers (%s); the config in force "
                                  "stays", exc)  # fmt: skip
                        return
                    loading[0] = True  # (before the signal: a worker forked from now on is told to reload too)
                    signal_children(signal.SIGHUP)
                    new = load_handed(data, config_path)
                    # the files it names read again as a worker's reload reads them, and refused by its rule: a
                    # worker restarted later runs what its siblings do (before, one they refused for a file renewed
                    # badly since the load ran it, with the old config's siblings: or failed its every start)
                    reloaded = as_reloaded(running, new, ReloadFiles.in_supervisor(running, new))
                if reloaded is not None:
                    running, handover.accepted = reloaded, data
            except ConfigError:
                pass  # (each worker says why)
            finally:
                # (after `running`: `spawn` reads them in the other order). A worker forked from now on runs what
                # this hand-over made, and a SIGHUP sent to the whole process group finds nothing newer for it to load
                handover.settled = handover.number
                loading[0] = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping, interrupts
        if signum == signal.SIGHUP:
            threading.Thread(target=follow_reload, name="reload", daemon=True).start()
            return
        stopping = True
        FORK_GATE.stop()  # a worker being started waits for no reload's load: it is not started (`spawn`)
        release(claims)  # the workers stop accepting now: a new proxy may start while they drain
        if signum == signal.SIGINT:
            interrupts += 1
        signal_children(HURRY if interrupts > 1 or signum == HURRY else signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(HURRY, on_signal)  # sent as it is: the workers stop, their drain cut short
    held_sighup = _take_held_sighup()  # taken before any fork: a worker would inherit it
    if _take_held_stop():
        on_signal(signal.SIGTERM, None)
    try:
        for index in range(1, workers + 1):
            kind, error = spawn(index)
            while kind == "stopped" and not stopping:
                stopped_alone(index)
                kind, error = spawn(index)
            if stopping:
                break  # the workers started stop, and are waited for below
            if kind == "error":
                stopping = True
                signal_children(signal.SIGTERM)
                for child in children.values():
                    child.join(config.limits.drain_timeout_s + 5)
                raise StartupError(error)
        if not stopping:
            announce(ports, running.digest)  # (the config a worker started now runs, as its own line says)
            if held_sighup:  # a reload, now that the workers serve (they warn of what it cannot apply)
                on_signal(signal.SIGHUP, None)
        # workers whose restart failed (a store locked for longer than its open waits, say): index -> when it is
        # tried again, and the wait before the try after it, doubled each time it fails (RESTART_RETRY_S)
        retrying: dict[int, tuple[float, float]] = {}

        def restart(index: int, wait: float) -> None:
            kind, error = spawn(index)
            while kind == "stopped" and not stopping:
                stopped_alone(index)
                kind, error = spawn(index)
            if kind == "error" and not stopping:
                log.error("%s; starting it again in %gs", error, wait)
                children.pop(index).join(5)
                retrying[index] = (time.monotonic() + wait, min(wait * 2, RESTART_RETRY_MAX_S))
            watchdog.waited()  # after the reap too: a slow one gave every worker a whole new bound

        while children:
            for index, child in list(children.items()):
                child.join(LOOK_S)
                follow_logging()
                watch()
                if child.exitcode is None:
                    continue
                del children[index]
                watchdog.beats.leave(index)  # its pid, until its successor beats: none a new process could take
                stalled = killed.pop(index, None) is not None  # said and counted as it was killed
                in_flight = None
                if child.pid is not None:
                    if not stopping and not stalled:  # read from its live gauges' file before it goes
                        in_flight = metrics.in_flight_of(child.pid, metrics_dir)
                    metrics.process_gone(child.pid, metrics_dir)
                if stopping:
                    continue
                if stalled:
                    if marker is not None and child.pid is not None:
                        marker.forget(child.pid)
                    restart(index, RESTART_RETRY_S)
                    continue
                reason = _exit_reason(child.exitcode)
                counted.worker_died(reason, in_flight if child.exitcode else 0)
                log.error("worker-%d exited with %s; restarting it. %s", index, child.exitcode,
                          _lost_with_worker(child.exitcode, reason, in_flight, running))  # fmt: skip
                if marker is not None and child.pid is not None:
                    marker.forget(child.pid)  # said: not again at the next start
                restart(index, RESTART_RETRY_S)
            counted.log_lines(logs.dropped())
            counted.unclean_stops.inc(markers.newly_found())  # said later by its heartbeat (`markers.FRESH_S`)
            for index, (due, wait) in sorted(retrying.items()):
                if not stopping and time.monotonic() >= due:
                    del retrying[index]
                    restart(index, wait)
        failed = bool(retrying)  # no worker left serving, the others' restarts failing: exit 1
    finally:
        if marker is not None:
            marker.close()
        release([*claims, *reserved.values()])
        shutil.rmtree(metrics_dir, ignore_errors=True)
        handover.close()
    return 1 if failed and not stopping else 0
