"""One proxy process: listeners, upstream pool, checkpoint book, recorder and the pipeline in force.

Start, reload (a valid new config swapped in atomically; an invalid one refused and logged) and a
graceful stop (stop accepting, drain in-flight calls for at most `limits.drain_timeout_s`, flush the
record). `--workers N` runs N of these, see `workers.py`.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import multiprocessing
import os
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import orjson

from proxy import logs, markers
from proxy.checkpoints import CheckpointBook
from proxy.config import Address, Config, Limits, Telemetry, Tls, Upstream, load, read_secret
from proxy.config.loader import CONFIG_DIGEST_CHARS, Handed, Handover, load_handed
from proxy.errors import ConfigError, StartupError
from proxy.files import off_loop
from proxy.ingress.http import HttpIngress
from proxy.ingress.wire import LISTEN_BACKLOG, HttpConnection, HttpServer, Request
from proxy.metrics import Metrics, config_info, log_lines, unclean_stops, workers_stalled
from proxy.pipeline import Pipeline, PipelineRef, Runtime
from proxy.protocols import Fetch
from proxy.record.access import AccessRecorder
from proxy.record.edges import EdgeAggregator
from proxy.record.sinks import FanOut, Lingering, Recorder, Replacing
from proxy.record.spans import SPANS, SpanRecorder, span_exporter_tls
from proxy.record.store import SPOOL, require_spool_directory
from proxy.record.stores import PasswordFile, open_store, spool_unopenable
from proxy.record.timings import TimingRecorder
from proxy.tls import ListenerRead, ListenerTls, client_context, not_after, read_usable_tls, upstream_tls_problem
from proxy.transport.pool import UpstreamPool

log = logging.getLogger("lineage_proxy")

# what the lineage store and its writer read once, when the process starts (a reload says so)
_LINEAGE_AT_START = ("store", "journal", "journal_max_rows", "integrity_key_file", "integrity_retired_key_files",
                     "password_file", "flush_interval_s", "retention_days", "head_log_interval_s", "sidecar")  # fmt: skip
UPSTREAM_TLS_WAIT_S = 10.0  # the start waits this long at most for the HTTPS upstreams' TLS contexts (`_upstream_tls`)
LONG_WAIT_S = 1.0  # waiting longer than this for upstreams' first metadata before serving is logged
T = TypeVar("T")
# `serve --workers N`: a worker that has not turned its event loop for this long (stopped, its loop blocked) makes
# /readyz 503 whichever worker answers it (`Beats`); each worker says it turns its loop every BEAT_S
STALL_S: Final = 5.0
BEAT_S: Final = 0.5


class Beats:
    """Whether each worker of `serve --workers N` still turns its event loop, in memory they share (made by the
    supervisor before it forks them: `share_beats`). Worker i writes its pid and when its process started into slot i
    as its HTTP listener opens (`serve`: a worker whose loop blocks from then on is stalled, whether it ever beat or
    not), then every BEAT_S from its loop the time (CLOCK_MONOTONIC: one clock for every process of the machine;
    `beat`), and marks it draining as it stops accepting (`drain`: still watched by the supervisor's watchdog, not
    counted by readiness), then clears it once its record is flushed (`leave`); a readiness probe, whichever worker
    answers it, reads the other slots (`stalled`). The kernel gives a worker that is stopped (SIGSTOP), or whose loop is blocked, its share of the new
    connections all the same: its calls and probes wait, while the others' probes said ready. A worker that died is not
    stalled (its connections go to the others): its slot is read as empty until it is started again.

    Each slot also holds the digest of the config its worker runs (`Config.digest`, as it serves and after each reload
    it applies: `runs`), so a scrape any worker answers names every serving worker's (`configs`)."""

    clock: Callable[[], int]  # CLOCK_MONOTONIC in ns (a test's own)

    def __init__(self, workers: int) -> None:
        # a file unlinked already, only its descriptor kept (inherited by fork): its memory is what the workers share
        self._file = tempfile.TemporaryFile(prefix="lineage-proxy-beats-")  # noqa: SIM115 (open for good)
        self._file.truncate(8 * _SLOT * workers)
        self._map = mmap.mmap(self._file.fileno(), 8 * _SLOT * workers)
        # per worker: its pid (0: none serves), its last beat (ns), when its process started (clock ticks since boot,
        # as /proc/PID/stat says: another process that took its pid since it died, an orphan the supervisor adopted
        # as a container's pid 1, is not it; 0: not known), the digest of the config it runs (its hex digits as a
        # number; 0: not known)
        self._slots = memoryview(self._map).cast("q")
        self.workers = workers
        self.clock = time.monotonic_ns

    def serve(self, index: int, pid: int, started: int, digest: str = "") -> None:
        """Worker `index` (1 to N), process `pid` started at `started` ticks, running the config of `digest`, opens
        its HTTP listener now: from now on the kernel gives it connections. The pid last: a slot whose pid is read is
        as new as it."""
        at = _SLOT * (index - 1)
        self._slots[at + 1] = self.clock()
        self._slots[at + 2] = started
        self._slots[at + 3] = int(digest, 16) if digest else 0
        self._slots[at] = pid

    def beat(self, index: int) -> None:
        """Worker `index` turns its loop now."""
        self._slots[_SLOT * (index - 1) + 1] = self.clock()

    def runs(self, index: int, digest: str) -> None:
        """Worker `index` runs the config of `digest` now (a reload applied)."""
        self._slots[_SLOT * (index - 1) + 3] = int(digest, 16) if digest else 0

    def drain(self, index: int, pid: int) -> None:
        """Worker `index`, process `pid`, stops accepting: it is no longer one the kernel gives connections to (not
        counted by readiness), but still beats from its loop as it drains and flushes, and is still watched (a drain
        whose loop stalls would hold the stop for good): its pid negated."""
        self._slots[_SLOT * (index - 1)] = -pid

    def leave(self, index: int) -> None:
        """Worker `index` has stopped (its drain and flush are over): no longer watched."""
        self._slots[_SLOT * (index - 1)] = 0

    def quiet_since(self, index: int, pid: int) -> int | None:
        """When worker `index` last said it turns its loop (CLOCK_MONOTONIC, ns; first as its HTTP listener opened),
        if the slot is `pid`'s (serving, or draining): None when it is not (that worker has not served yet, or has
        stopped). The pid first: a beat read after it is as new as the one that wrote it (`serve`)."""
        at = _SLOT * (index - 1)
        held = self._slots[at]
        if held != pid and held != -pid:
            return None
        return self._slots[at + 1]

    def stalled(self, index: int) -> list[str]:
        """The workers other than `index` that serve (their listeners open) and have not turned their loop for
        STALL_S, as `worker-I (pid P)`."""
        now = self.clock()
        found = []
        for other in range(1, self.workers + 1):
            at = _SLOT * (other - 1)
            pid = self._slots[at]
            if other == index or pid <= 0 or now - self._slots[at + 1] < STALL_S * 1e9:
                continue
            if _serving_sibling(pid, self._slots[at + 2]):
                found.append(f"worker-{other} (pid {pid})")
        return found

    def configs(self) -> list[tuple[str, str]]:
        """The workers that serve (their listeners open, not draining), each as `worker-I` with the digest of the
        config it runs ("": not known). One that died is not, as `stalled` reads it: its slot names it until the
        supervisor reaps it, which waits while it starts another worker (before, it was shown serving the config it
        died with, beside its siblings on a reload's since)."""
        me = os.getpid()
        found = []
        for index in range(1, self.workers + 1):
            at = _SLOT * (index - 1)
            pid = self._slots[at]  # (the pid first, as `quiet_since` reads it)
            if pid <= 0 or (pid != me and not _serving_sibling(pid, self._slots[at + 2])):
                continue
            digest = self._slots[at + 3]
            found.append((f"worker-{index}", f"{digest:0{CONFIG_DIGEST_CHARS}x}" if digest else ""))
        return found


# a worker's slot in `Beats`: its pid, its last beat, when its process started, the digest of the config it runs
_SLOT: Final = 4


def _serving_sibling(pid: int, started: int) -> bool:
    """Whether `pid`, started at `started` ticks (0: not known), is a live process (a stopped one too) that this
    worker's supervisor started: not one that died unreaped (a zombie), nor another process that took the pid of one
    that died (its child, or an orphan adopted by a supervisor that is a container's pid 1: started at another time)."""
    if not sys.platform.startswith("linux"):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            pass
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return (len(fields) > 19 and fields[0] != b"Z" and int(fields[1]) == os.getppid()
            and (not started or int(fields[19]) == started))  # fmt: skip


_shared_beats: list[Beats] = []  # the one `share_beats` made (none: one process serves)


def share_beats(workers: int) -> Beats:
    """Called by `serve --workers N`'s supervisor before it forks its workers: each says in memory they share that it
    turns its loop, and readiness (and the supervisor's watchdog, `workers.Watchdog`) reads them all (`Beats`)."""
    if not _shared_beats:
        _shared_beats.append(Beats(workers))
    return _shared_beats[0]


def _worker_index() -> int:
    """This worker's number (`worker-I`, as the supervisor names the processes it forks); 0 when it is none."""
    name = multiprocessing.current_process().name
    prefix, _, number = name.partition("-")
    return int(number) if prefix == "worker" and number.isdigit() else 0


def bind(address: Address, *, listen: bool = True, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to `address`. With reuse_port, several processes can share the port."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((address.host, address.port))
    if listen:
        sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


@dataclass(frozen=True, slots=True)
class Bound:
    """The addresses actually listened on (port 0 resolved); `tls`: the http and grpc listeners serve TLS
    (`listen.tls`; the admin listener never does)."""

    http: Address
    grpc: Address | None
    admin: Address | None
    tls: bool = False

    def describe(self) -> str:
        """`http=HOST:PORT [grpc=...] [admin=...] [tls=http[,grpc]]`: fields of `name=value` (as scripts split the
        ready line), the last naming the listeners that speak TLS only, so `https://` is not a guess."""
        parts = [f"http={self.http}"]
        if self.grpc:
            parts.append(f"grpc={self.grpc}")
        if self.admin:
            parts.append(f"admin={self.admin}")
        if self.tls:
            parts.append("tls=http,grpc" if self.grpc else "tls=http")
        return " ".join(parts)


def bound_address(sock: socket.socket) -> Address:
    host, port = sock.getsockname()[:2]
    return Address(host, port)


def _grpc_started(limits: Limits) -> tuple[int, float, float, int, int, int, int, int]:
    """What of `limits` a grpc server takes at its start, which only a new server changes (`GrpcIngress._open`)."""
    return (limits.max_body_bytes, limits.idle_timeout_s, limits.header_timeout_s, limits.max_connections,
            limits.max_concurrent_streams, limits.grpc_stream_window_bytes, limits.grpc_max_calls,
            limits.bodies_max_bytes)  # fmt: skip


class ReloadFiles:
    """The TLS files a reload reads again (the listener's, an HTTPS or gRPC upstream's renewed in place), read with its
    config off the event loop (`reload_soon`) and handed to `apply`: read on the loop, a file slow to come (a hung
    mount, a FIFO) held every call and the stop itself for as long. An HTTPS upstream's are read into its TLS context,
    made on a thread of its own before the reload applies (`ProxyProcess._reload_tls`), or else by its next
    connection (`ConnectionPool._context`)."""

    listener: ListenerRead | None  # None: no TLS on the listener, before or after
    upstreams: dict[str, Any]  # a gRPC upstream's files or the OSError reading them (`GrpcChannels.use`)
    spool: str | None  # why the OpenLineage spool could not be kept where `new` says (`spool_unopenable`)
    contexts: dict[str, asyncio.Future[ssl.SSLContext]]  # HTTPS upstreams' TLS contexts, by name (`_reload_tls`)
    spans: SpanRecorder | None  # the span exporter of its changed telemetry (`ProxyProcess._exporter`), until applied
    spans_made: bool  # whether `spans` was made (None: the exporter is `none`)
    unbuilt: str | None  # why `spans` could not be made (`ProxyProcess._exporter`, with the load: `_load`)
    unmade: dict[str, BaseException]  # why an HTTPS upstream's TLS context could not be made, by name (`_unmade`)

    def __init__(self, new: Config, listener: bool) -> None:
        self.listener = ListenerRead(new.listen.tls) if listener and new.listen.tls is not None else None
        self.spool = spool_unopenable(new.lineage.openlineage)
        self.contexts = {}
        self.spans, self.spans_made, self.unbuilt = None, False, None
        self.unmade = {}
        # (a reload may add the first gRPC upstream: `_book` makes the channels)
        self.upstreams = read_usable_tls(new.upstreams) if any(upstream.grpc for upstream in new.upstreams) else {}

    @classmethod
    def in_supervisor(cls, current: Config, new: Config) -> ReloadFiles:
        """What a worker running `current` reads for its reload of `new`, read as it reads them, for its `--workers`
        supervisor (`as_reloaded`; on the thread of its load): its HTTPS upstreams' TLS contexts made here, kept only
        if they could not be (a worker makes them on threads of their own for its pools: `ProxyProcess._reload_tls`),
        and its span exporter's CA bundle read as the exporter reads it, none built (no thread, no gRPC channel in a
        process that forks)."""
        files = cls(new, current.listen.tls is not None)
        for upstream in new.upstreams:
            if upstream.tls is not None and upstream.url is not None and urlsplit(upstream.url).scheme == "https":
                try:
                    client_context(upstream.tls)
                except OSError as exc:  # (ssl.SSLError is one)
                    files.unmade[upstream.name] = exc
        if spans_changed(current.telemetry, new.telemetry):
            files.unbuilt = _unbuildable(span_exporter_tls, new.telemetry)
        return files

    def stop_unused(self) -> None:
        """Stop the span exporter built for a reload no one applies, on this thread (its export thread, never used)."""
        spans, self.spans = self.spans, None
        if spans is not None:
            spans.shutdown()


def _dropped(loading: asyncio.Future[tuple[Config, ReloadFiles]]) -> None:
    """A SIGHUP's load, ended after a stop cancelled its reload: the span exporter it built is stopped, off the loop."""
    if loading.cancelled() or loading.exception() is not None:
        return
    off_loop(loading.result()[1].stop_unused, "lineage-proxy-unused-spans")


def _unread(upstreams: tuple[Upstream, ...], read: dict[str, Any]) -> str | None:
    """Why a reload cannot be applied: a gRPC upstream's TLS files, as it read them (`ReloadFiles.upstreams`), could
    not be read or used (renewed badly since its config was checked: gone, half written), in `check`'s words. Applied,
    a new `tls`'s calls were refused UNAVAILABLE, and a half-written file's channel failed its every handshake, until a
    later reload read them."""
    for index, upstream in enumerate(upstreams):
        files = read.get(upstream.name)
        if isinstance(files, OSError):
            return f"Problems: upstreams[{index}].tls: {upstream_tls_problem(files)}"
    return None


def _unmade(upstreams: tuple[Upstream, ...], files: ReloadFiles) -> str | None:
    """Why a reload cannot be applied: an HTTPS upstream's TLS context could not be made from its files as it read
    them (`ProxyProcess._reload_tls`, or a supervisor's `ReloadFiles.in_supervisor`: renewed badly since its config
    was checked, or gone), in `check`'s words. Applied, its pool took the failed context and each of its next
    connections made one again from the same files: every call to it failed 502 (one unchanged lost the context it
    had) until a later reload."""
    for index, upstream in enumerate(upstreams):
        making = files.contexts.get(upstream.name)
        error = files.unmade.get(upstream.name)
        if making is not None and making.done() and not making.cancelled():  # (one still being made: its first
            error = making.exception()  # connection waits for it, `_made_in_time`)
        if upstream.tls is not None and isinstance(error, OSError):  # (ssl.SSLError is one)
            return f"Problems: upstreams[{index}].tls: {upstream_tls_problem(error)}"
    return None


def spans_changed(old: Telemetry, new: Telemetry) -> bool:
    """Whether a reload from `old` to `new` builds a new span exporter: not for `metrics` alone, applied on restart
    only, which a `--workers` supervisor keeps as it started (`as_reloaded`) while its workers' config takes it. Compared
    whole, a later reload leaving the exporter as it was read its CA bundle in the supervisor alone, and was refused
    there (a bundle renewed badly) while its workers applied it."""
    return replace(new, metrics=old.metrics) != old


def _unbuildable(build: Callable[[Telemetry], object], telemetry: Telemetry) -> str | None:
    """Why the span exporter of `telemetry` cannot be built by `build` (its CA bundle renewed badly since the loader
    read it), in the words a reload refused for it says."""
    try:
        build(telemetry)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return f"telemetry: cannot build the span exporter: {exc}"
    return None


def console_refusal(current: Telemetry | None, new: Telemetry) -> str | None:
    """Why `new`'s spans cannot go to stdout (`exporter: console` with none to write to: `logs.stdout_unwritable`), in
    the words a start refused for it, or a reload from `current` (None: the start), says. Before, such a start served
    and every span failed, said once in a line of the export's; a reload that keeps a console exporter is not refused
    for it (the start already was, or stdout went away since: its failures say so)."""
    if new.exporter != "console" or (current is not None and current.exporter == "console"):
        return None
    why = logs.stdout_unwritable()
    if why is None:
        return None
    return (f"telemetry.exporter: console: {why}, where its spans would have nowhere to go (start it with a stdout, a "
            f"file or a pipe, or set telemetry.exporter to otlp or none)")  # fmt: skip


def reload_refusal(current: Config, store: str | None, new: Config, files: ReloadFiles) -> str | None:
    """Why a process running `current`, recording to `store`, cannot apply `new` at all, known before anything is made
    for it: listen.tls added or removed, or its files as the reload read them (`files`) unusable, a gRPC upstream's
    too, a require_record zone without a store, a spool that could not be kept, console spans with no stdout. One rule
    for a worker's reload (`ProxyProcess._refusal`) and its `--workers` supervisor's (`as_reloaded`): a worker restarted
    later runs the config its siblings do."""
    return (
        ProxyProcess._cannot_apply(current.listen.tls, new.listen.tls)
        or ProxyProcess._cannot_use(files.listener)
        or _unread(new.upstreams, files.upstreams)
        or ProxyProcess._cannot_record(store, new)
        or ProxyProcess._cannot_spool(current, new, files.spool)
        or console_refusal(current.telemetry, new.telemetry)
    )


async def _made_in_time(making: list[asyncio.Future[ssl.SSLContext]], doing: str) -> None:
    """Wait for the TLS contexts being made, UPSTREAM_TLS_WAIT_S at most; one not made by then is said (`doing`: what
    goes on without it) and waited for by its upstream's first connection."""
    if not making:
        return
    _, pending = await asyncio.wait(making, timeout=UPSTREAM_TLS_WAIT_S)
    if pending:
        log.warning("%s before the TLS context of %d HTTPS upstream(s) was made (%gs; a file on a hung mount?): their "
                    "first connections wait for it within their connect_timeout_s", doing, len(pending),
                    UPSTREAM_TLS_WAIT_S)  # fmt: skip


class ProxyProcess:
    """Everything one event loop serves."""

    def __init__(self, config: Config, *, reuse_port: bool = False, ports: Bound | None = None) -> None:
        self.config = config
        self._store = config.lineage.store  # the lineage store this process records to, for good (a reload warns)
        self._reuse_port = reuse_port
        self._ports = ports  # in a worker: the ports the supervisor reserved (port 0 already resolved)
        self.pool = UpstreamPool()
        self.pool.use(config.upstreams)
        self.channels: Any = None
        if any(upstream.grpc for upstream in config.upstreams) or config.listen.grpc is not None:
            from proxy.transport.grpc_channels import GrpcChannels

            self.channels = GrpcChannels()
        self.book = self._book(config)
        if self.channels is not None:
            self.channels.use(config.upstreams, self.channels.window_for(config.limits))
        self.metrics = Metrics(enabled=config.telemetry.metrics)
        sinks = self._sinks(config, self.metrics)
        self.runtime = Runtime(self.book, FanOut(sinks), self.metrics)
        for sink in sinks:
            if isinstance(sink, EdgeAggregator):
                self.runtime.recording = sink.recording  # require_record zones ask it (pipeline.py)
        self._publisher: asyncio.Task[None] | None = None
        self.ref = PipelineRef(Pipeline(config, self.runtime))
        self.started = time.time()
        self._servers: list[HttpServer] = []
        self._http: HttpServer | None = None
        self._grpc: Any = None
        self._grpc_replacing: asyncio.Task[None] | None = None  # a reload's new gRPC server, starting
        self._retiring: set[asyncio.Task[None]] = set()  # what reloads replaced, stopping (`_retire`)
        self._tls: ListenerTls | None = None
        self.bound: Bound | None = None
        self._reloading: asyncio.Task[None] | None = None  # a SIGHUP's load, off the loop (`reload_soon`)
        self._reload_again = False  # a SIGHUP came since that load began: the file is read again after it
        self.handed: bytes | None = None  # a `--workers` worker's: the hand-over it runs (`reload_soon`)
        self.handed_number = 0  # and the number of the last hand-over it acted on (`Handover.latest`)
        self._closing = False  # the drain is over: a load that ends now is not applied
        # with --workers: the beats every worker shares and this worker's slot in them (`Beats`; 0: one process)
        self._beats: Beats | None = _shared_beats[0] if _shared_beats and ports is not None else None
        self._index = _worker_index() if self._beats is not None else 0
        if self._index > (self._beats.workers if self._beats is not None else 0):
            self._beats, self._index = None, 0
        self._beating: asyncio.Task[None] | None = None
        self._said_stalled: set[str] = set()  # the workers this one said were stalled (logged once, until they beat)

    # -- parts

    def _book(self, config: Config) -> CheckpointBook:
        models: dict[str, set[str]] = {}
        for route in config.routes:
            if route.model != "*":
                models.setdefault(route.upstream, set()).add(route.model)
        if self.channels is None and any(upstream.grpc for upstream in config.upstreams):
            from proxy.transport.grpc_channels import GrpcChannels

            self.channels = GrpcChannels()
        fetcher = self.channels.model_metadata if self.channels is not None else None
        limits = [(route.upstream, route.model, route.purposes) for route in config.routes
                  if route.model != "*" and route.purposes is not None]  # fmt: skip
        return CheckpointBook(config.upstreams, Fetch(self.pool.get_json, fetcher), models, limits=limits)

    @classmethod
    def _sinks(cls, config: Config, metrics: Metrics) -> list[Recorder]:
        """Where each call's record goes: one line per sink."""
        if config.lineage.openlineage is not None:  # (its stop writes there: refused now, not then with the counts)
            require_spool_directory(config.lineage.openlineage.spool, SPOOL)
        sinks: list[Recorder | None] = [
            cls._spans(config), cls._edges(config), TimingRecorder(metrics) if metrics.enabled else None, AccessRecorder(),
            cls._openlineage(config),
        ]  # fmt: skip
        return [sink for sink in sinks if sink is not None]

    @staticmethod
    def _spans(config: Config) -> SpanRecorder | None:
        if config.telemetry.exporter == "none":
            return None
        return SpanRecorder(config.telemetry, sidecar=config.lineage.sidecar)

    @staticmethod
    def _edges(config: Config) -> EdgeAggregator | None:
        lineage = config.lineage
        if not lineage.store:
            return None
        key = _secret("lineage.integrity_key_file", lineage.integrity_key_file)
        retired = tuple(
            _secret(f"lineage.integrity_retired_key_files[{index}]", path) or b""
            for index, path in enumerate(lineage.integrity_retired_key_files)
        )
        password = _secret("lineage.password_file", lineage.password_file)
        try:
            text = password.decode() if password else None
        except UnicodeDecodeError:
            raise StartupError(f"lineage.password_file: {lineage.password_file!r} is not UTF-8 text") from None
        reread = PasswordFile(lineage.password_file, text) if lineage.password_file and text else None  # each connect
        store = open_store(lineage.store, key=key, retired=retired, password=reread,
                           journal=lineage.journal, journal_max_rows=lineage.journal_max_rows,
                           sidecar=lineage.sidecar)  # fmt: skip
        return EdgeAggregator(
            store,
            flush_interval_s=config.lineage.flush_interval_s,
            retention_days=config.lineage.retention_days,
            head_log_interval_s=config.lineage.head_log_interval_s,
        )

    @staticmethod
    def _openlineage(config: Config) -> Recorder | None:
        if config.lineage.openlineage is None:
            return None
        from proxy.record.openlineage import OpenLineageRecorder  # openlineage-python only when configured

        return OpenLineageRecorder(config.lineage.openlineage, sidecar=config.lineage.sidecar)

    def _address(self, name: str) -> Address | None:
        reserved: Address | None = getattr(self._ports, name) if self._ports else None
        configured: Address | None = getattr(self.config.listen, name)
        return reserved or configured

    # -- lifecycle

    async def start(self) -> Bound:
        self.runtime.sinks.start()
        await self._upstream_tls()  # before the first metadata request, as before the first call
        self.book.start()
        if self.metrics.shared is not None:
            self._publisher = asyncio.get_running_loop().create_task(self._publish_metrics())
        admin_here = self.config.listen.admin is None
        ingress = HttpIngress(self.ref, self.pool, self.admin_response if admin_here else None)
        http_addr = self._address("http")
        assert http_addr is not None
        tls = self.config.listen.tls
        self._tls = ListenerTls(tls) if tls is not None else None
        self._certificate_expiry()
        await self._first_probes()  # a certificate that cannot be read is said at once, not after the wait
        if self._beats is not None:  # it takes connections once its listener opens: stalled if its loop blocks then
            pid = os.getpid()
            self._beats.serve(self._index, pid, markers._started(pid) or 0, self.config.digest)
        http = await self._serve(
            ingress.handle,
            http_addr,
            self._tls.context if self._tls is not None else None,
            ingress.record_refusal,
            ingress.record_unserved,
        )
        self._http = self._servers[-1]
        admin = None
        admin_addr = self._address("admin")
        if admin_addr is not None:
            admin = await self._serve(self._admin_handle, admin_addr)
        grpc = None
        grpc_addr = self._address("grpc")
        if grpc_addr is not None:
            from proxy.ingress.grpc import GrpcIngress

            self._grpc = GrpcIngress(self.ref, self.channels)
            grpc = await self._grpc.start(grpc_addr, tls)
        self.bound = Bound(http, grpc, admin, tls is not None)
        if self._beats is not None:
            self._beating = asyncio.get_running_loop().create_task(self._beat(self._beats, self._index))
        return self.bound

    async def _upstream_tls(self) -> None:
        """The HTTPS upstreams' TLS contexts, made off the event loop before anything connects to them, for
        UPSTREAM_TLS_WAIT_S at most (`UpstreamPool.prepare_tls`): made by the first connection, the system's CAs (an
        upstream with no `ca`: ~40 ms of CPU, seconds on a busy host) took that connection's connect_timeout_s, and
        under ~0.1 s the first calls failed 502. One not made by then is waited for by the first connection, as before."""
        await _made_in_time(self.pool.prepare_tls(self.config.upstreams), "serving")

    async def _reload_tls(self, new: Config, files: ReloadFiles) -> None:
        """A reload's new and changed HTTPS upstreams' TLS contexts (and those of upstreams with TLS files, read
        again), made off the event loop before it applies, for UPSTREAM_TLS_WAIT_S at most, as at start
        (`_upstream_tls`), and handed to their pools as it applies (`files.contexts`). Made by an upstream's first
        connection after it, they took that connection's connect_timeout_s (a call added with the upstream failed
        502 under a short one)."""
        files.contexts = self.pool.contexts_to_make(new.upstreams)
        await _made_in_time(list(files.contexts.values()), "reload: applied")

    async def _beat(self, beats: Beats, index: int) -> None:
        """Say every BEAT_S that this worker turns its loop (`Beats`): from the loop itself, so a loop that does not
        turn (stopped, blocked) stops saying it."""
        while True:
            beats.beat(index)
            await asyncio.sleep(BEAT_S)

    async def _first_probes(self) -> None:
        """The listeners open once every upstream whose metadata names the checkpoint its calls reach was
        asked once (answered or failed), for one metadata request's time at most: until then no call's
        checkpoint is known, which `lineage.on_unapproved: block` would refuse and the record would miss."""
        limit = self.book.first_probe_timeout()
        if limit <= 0:
            return
        waiting = await self.book.wait_named(min(limit, LONG_WAIT_S))
        if waiting and limit > LONG_WAIT_S:
            log.info("waiting up to %gs more for the metadata of upstream %s before serving", limit - LONG_WAIT_S,
                     ", ".join(waiting))  # fmt: skip
            waiting = await self.book.wait_named(limit - LONG_WAIT_S)
        if waiting:
            log.warning("serving before upstream %s answered its metadata (%gs): its calls' checkpoints are not "
                        "known until it does%s", ", ".join(waiting), limit,
                        " (lineage.on_unapproved: block refuses them meanwhile, 503 checkpoint_unknown)"
                        if self.config.lineage.on_unapproved == "block" and self.config.baseline is not None
                        else "")  # fmt: skip

    async def _serve(self, handler: Any, address: Address, ssl_context: ssl.SSLContext | None = None,
                     record_refusal: Any = None, record_unserved: Any = None) -> Address:  # fmt: skip
        server = HttpServer(handler, self.config.limits, record_refusal, record_unserved)
        if ssl_context is not None:
            server.on_handshake_failure = self.metrics.tls_handshake_failed
        sock = bind(address, reuse_port=self._reuse_port)
        await server.start(sock, ssl_context)
        self._servers.append(server)
        return bound_address(sock)

    def hurry(self, by: str = "a second SIGINT") -> None:
        """Cut the drain short (a second Ctrl-C; SIGUSR1, `by`, as the log line of the calls cut names it): the calls
        still running end now, recorded as the drain's cut; the record is still flushed and closed."""
        for server in self._servers:
            if not server.hurried.is_set():
                server.hurried_by = by
            server.hurried.set()
        if self._grpc is not None:
            if not self._grpc.hurried.is_set():
                self._grpc.hurried_by = by
            self._grpc.hurried.set()

    async def stop(self) -> None:
        """Stop accepting, let in-flight calls finish (bounded), then flush and close the record."""
        if self._beats is not None:  # its listeners close now: the kernel gives it no more connections (it beats on)
            self._beats.drain(self._index, os.getpid())
        try:
            await self._stop()
        finally:  # stopped: what is left is the process's exit, not its loop's work
            if self._beating is not None:
                self._beating.cancel()
            if self._beats is not None:
                self._beats.leave(self._index)

    async def _stop(self) -> None:
        drain = self.config.limits.drain_timeout_s
        tasks = [server.shutdown(drain) for server in self._servers]
        if self._grpc is not None:
            tasks.append(self._grpc.stop(drain))
        await asyncio.gather(*tasks, return_exceptions=True)
        self._closing = True  # what is closed now is not made again by a reload (its load may never end)
        if self._reloading is not None:
            self._reloading.cancel()
        if self._publisher is not None:
            self._publisher.cancel()
        await self.book.stop()
        await self.pool.close()
        if self.channels is not None:
            await self.channels.close()
        # the sinks and what reloads replaced stop together: a replaced sink still sending its last events (to a
        # backend that hangs, up to its stop's bound) is waited for, or `asyncio.run`'s end would cancel it and
        # its events would be lost without a word
        await asyncio.gather(self.runtime.sinks.stop(), *self._retiring, return_exceptions=True)
        # and a sink a reload kept for its calls in flight (`Lingering`), whose last record the sinks' stop gave it (one
        # held for its durable write, or cut by the drain): retired as it stopped (`_lingered`), after the list above
        retiring = [task for task in self._retiring if not task.done()]
        while retiring:
            await asyncio.gather(*retiring, return_exceptions=True)
            retiring = [task for task in self._retiring if not task.done()]
        if self.metrics.shared is not None:  # what the sinks counted since the publisher's last turn
            self._publish()

    def reload_soon(self, path: str, handover: Handover | None = None) -> None:
        """A SIGHUP: `reload`, its file (and those it names: a baseline, keys, certificates) read and checked on a
        thread of its own, applied on the loop once read. Read on the loop, a file slow to come (a hung mount, a
        FIFO) held every call and the stop itself (its signal is a callback of the loop) for as long. SIGHUPs that
        come while one loads are one more load, after it (the file as it is then). `handover`: a `--workers` worker's,
        where its supervisor hands over the config it read once for every worker (`loader.Handover`), read instead;
        a worker that refuses it runs the last config the supervisor accepted, if it does not run it already (it took
        two SIGHUPs at once: it would stay on the config before both, its siblings and supervisor on the first). A
        worker acts on each hand-over once: a SIGHUP that finds none newer than the last it acted on (one sent to the
        whole process group, which reaches it before the supervisor's hand-over) does nothing, said at DEBUG only;
        before 2026-12-05 it reloaded the hand-over it had, a spurious `reload refused` line when that one was."""
        self._reload_again = True
        if self._reloading is None and not self._closing:
            self._reloading = asyncio.get_running_loop().create_task(self._reload_queued(path, handover))

    async def _reload_queued(self, path: str, handover: Handover | None = None) -> None:
        try:
            while self._reload_again and not self._closing:
                self._reload_again = False
                if handover is not None and handover.latest() <= self.handed_number:
                    log.debug("reload: no new config handed over (a SIGHUP not from the supervisor: one sent to the "
                              "whole process group?); the supervisor's follows its hand-over")  # fmt: skip
                    continue
                taken: list[Handed | None] = [None]  # the hand-over it loaded (`_load`)
                refusal = await self._reload_one(path, partial(self._load, path, handover, taken))
                handed = taken[0]
                if handed is not None:
                    self.handed_number = handed.number
                if refusal is None:
                    if handed is not None:
                        self.handed = handed.newest
                    continue
                accepted = handed.accepted if handed is not None else None
                if handed is None or accepted is None or accepted in (self.handed, handed.newest) or self._closing:
                    self._refuse(refusal)  # (the config in force is the last accepted, or none is)
                    continue
                # the last config the supervisor accepted, which this worker does not run: its siblings do
                if await self._reload_one(path, partial(self._load, path, None, None, accepted)) is None:
                    self.handed = accepted
                    log.error("reload refused: %s; running the last config the proxy accepted", refusal,
                              extra={"config_sha256": self.config.digest})  # fmt: skip
                    self.metrics.reloads.labels("refused").inc()
                else:
                    self._refuse(refusal)
        except Exception:
            log.exception("reload of %s failed", path)
        finally:
            self._reloading = None

    async def _reload_one(self, path: str, load_it: Callable[[], tuple[Config, ReloadFiles]]) -> str | None:
        """One load (`load_it`, off the loop) checked and applied: why it was refused (not said yet), or None."""
        loading = off_loop(load_it, "lineage-proxy-reload")
        try:
            # (shielded: a stop's cancel leaves its outcome to `_dropped`, not to no one)
            new, files = await asyncio.shield(loading)
        except asyncio.CancelledError:
            loading.add_done_callback(_dropped)
            raise
        except ConfigError as exc:
            return "Problems: " + "; ".join(exc.problems)
        except Exception as exc:
            log.exception("reload: cannot load %s", path)
            return f"cannot load {path}: {exc!r}"
        # said now: not after the TLS contexts' wait, nor as applied by its warning
        refusal = self._refusal(new, files) or files.unbuilt
        if refusal is not None:
            self._unused(files)
            return refusal
        try:
            await self._reload_tls(new, files)
            refusal = _unmade(new.upstreams, files)
            if refusal is None and not self._closing:
                refusal = self._apply(new, path, files)
            return refusal
        finally:
            self._unused(files)  # (its exporter, when the stop came first)

    def _load(
        self, path: str, handover: Handover | None = None, taken: list[Handed | None] | None = None,
        data: bytes | None = None,
    ) -> tuple[Config, ReloadFiles]:  # fmt: skip
        """The config at `path` (or the newest `handover` holds, put in `taken`; or `data`, bytes handed over) and the
        TLS files it names that a reload reads again (on a thread: `reload_soon`), and the span exporter of its changed
        telemetry, which reads its CA bundle as it is built (`_exporter`; built on the loop, a bundle slow to come held
        every call and the stop)."""
        if data is None and handover is not None:
            handed = handover.take()
            if taken is not None:
                taken[0] = handed
            data = handed.newest if handed is not None else None  # (none handed over yet: the file itself)
        new = load(path) if data is None else load_handed(data, path)
        files = ReloadFiles(new, self._tls is not None)
        if not self._closing:  # (a stop cancels the reload: one built as it comes is left unapplied, its thread idle)
            files.unbuilt = self._exporter(self._kept_at_start(new)[0], files)
            if self._closing:  # the stop came as it was built: no one applies it (the loop may be gone already)
                files.stop_unused()
        return new, files

    def reload(self, path: str) -> bool:
        """Swap in the config at `path` if it is valid and can be applied whole (`apply`); otherwise keep the old
        one and say why. Reads the files on the loop: a SIGHUP reloads with `reload_soon`."""
        try:
            new = load(path)
        except ConfigError as exc:
            return self._refuse("Problems: " + "; ".join(exc.problems))
        return self.apply(new, path)

    def apply(self, new: Config, path: str, files: ReloadFiles | None = None) -> bool:
        """Swap in `new`, loaded from `path`, if it can be applied whole; otherwise keep the old one and say why
        (`_apply`)."""
        refusal = self._apply(new, path, files)
        return True if refusal is None else self._refuse(refusal)

    def _apply(self, new: Config, path: str, files: ReloadFiles | None = None) -> str | None:
        """Swap in `new`, loaded from `path`, if it can be applied whole; otherwise keep the old one: why (not said).
        `files`: its TLS files, as read with it off the loop (None: read now, on the loop).
        Nothing is reported reloaded while a setting it changed is not in force, except those named in a warning
        (listen addresses, the metrics switch, the store, some limits). What a worker restarted since runs instead
        (`as_reloaded`) follows these rules."""
        old = self.config
        new, fixed = self._kept_at_start(new)
        if files is None:
            files = ReloadFiles(new, self._tls is not None)
        problem = self._refusal(new, files) or self._exporter(new, files)
        if problem is not None:
            self._unused(files)
            return problem
        # before the HTTP listener's TLS takes the files read: whether they were renewed in place (read: `_refusal`)
        new_grpc_server = self._grpc is not None and self._grpc_changed(old, new, files.listener)
        spans, files.spans = files.spans, None  # (built before anything was applied: `_exporter`)
        if self._tls is not None and new.listen.tls is not None:
            auth_changed = self._tls.reload(new.listen.tls, files.listener)  # (files it cannot use: `_refusal`)
            if auth_changed:
                self._reauthenticate()
            self._certificate_expiry()
        if new_grpc_server:
            limits = new.limits
            read = files.listener.files if files.listener is not None else None  # (off the loop: never again on it)
            self._grpc_replacing = asyncio.get_running_loop().create_task(
                self._grpc.replace(new.listen.tls, limits.max_body_bytes, limits.drain_timeout_s, read)
            )
        before, after = old.listen, new.listen
        if (after.http, after.grpc, after.admin) != (before.http, before.grpc, before.admin):
            log.warning("reload: listen addresses changed; they take effect on restart only")
        if new.telemetry.metrics != old.telemetry.metrics:
            log.warning("reload: telemetry.metrics changed; it takes effect on restart only")
        if fixed:
            log.warning("reload: %s changed; %s on restart only", ", ".join(fixed),
                        "it takes effect" if len(fixed) == 1 else "they take effect")  # fmt: skip
        if new.limits != old.limits:
            self._apply_limits(old.limits, new.limits)
        if spans_changed(old.telemetry, new.telemetry):
            self._replace(SPANS, spans)
        if new.lineage.openlineage != old.lineage.openlineage:
            sink = self._openlineage(new)
            if sink is not None:
                sink.start()
            self._replace("openlineage", sink)
        if new.upstreams != old.upstreams or new.routes != old.routes:
            previous_book = self.book
            self.book = self.runtime.book = self._book(new)
            self.book.inherit(previous_book)  # what it knew stays until the new book's discovery answers
            self.book.start()
            self._retire(previous_book.stop())
            self.pool.use(new.upstreams)  # the pools of upstreams it no longer names close their idle connections
        self.pool.reread_tls()  # HTTPS upstreams' files renewed in place: for the next connections
        self.pool.adopt_contexts(new.upstreams, files.contexts)  # (made with them, off the loop: `_reload_tls`)
        if self.channels is not None:
            # a channel made with other settings, TLS files or window is replaced
            self.channels.use(new.upstreams, self.channels.window_for(new.limits), files.upstreams)
            if self._grpc is not None:
                self._grpc.end_retired_watches()  # relayed to a server the config may no longer name
        self.config = new
        retired, self.ref.current = self.ref.current, Pipeline(new, self.runtime)
        retired.retire()  # (the calls it decided may hold it a while yet: not the keys it kept)
        if self._beats is not None:
            self._beats.runs(self._index, new.digest)
        if new.logging != old.logging:
            logs.configure(new.logging)
        log.info("reloaded %s", path, extra={"config_sha256": new.digest})
        for warning in new.warnings:
            log.warning("reload: %s", warning)
        self.metrics.reloads.labels("ok").inc()
        return None

    def _certificate_expiry(self) -> None:
        """`lineage_proxy_tls_certificate_expiry_timestamp_seconds`: the listener's certificate as last read."""
        expiry = not_after(self._tls.files[0]) if self._tls is not None else None
        if expiry is not None:
            self.metrics.certificate_expiry(expiry.timestamp())

    def _retire(self, stopping: Coroutine[Any, Any, None]) -> None:
        """Stop what a reload replaced without holding the reload up; `stop` waits for it."""
        task = asyncio.get_running_loop().create_task(stopping)
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _replace(self, name: str, sink: Recorder | None) -> None:
        """Put `sink` in place of the sink called `name` (a reload), stopping the one replaced. One the reload removes
        (the span exporter turned off, `lineage.openlineage` taken out) is kept for the calls in flight, begun under
        the config that named it, until each is recorded (`Lingering`, `_lingered`); so is one a reload replaces (the
        span exporter, the OpenLineage sink), beside its successor, which records the calls begun since (`Replacing`,
        `_handed_over`): a span names the service, resource and collector its call began under, an OpenLineage count
        the backend and namespace (until 2026-12-07 the OpenLineage sink replaced stopped at once, and its calls in
        flight were counted by its successor, at the backend and under the namespace of a config they never ran
        under)."""
        sinks = self.runtime.sinks
        kept: Lingering | Replacing | None = None
        current = sinks.get(name)
        calls = self.runtime.stats.in_flight + sinks.pending()
        if sink is None and current is not None and calls > 0:
            kept = Lingering(current, time.monotonic_ns(), calls, self._lingered)
        elif sink is not None and current is not None and calls > 0:
            kept = Replacing(current, sink, time.monotonic_ns(), calls, self._handed_over)
        previous = sinks.swap(name, sink if kept is None else kept)
        if previous is not None and (kept is None or previous is not kept.sink):
            self._retire(sinks.stop_retired(previous))

    def _handed_over(self, replacing: Replacing) -> None:
        """The calls in flight as a reload replaced a sink are all recorded: the one replaced stops now, and its
        successor is left alone in its place (unless a reload since put another there, which keeps this one in it)."""
        sinks = self.runtime.sinks
        if sinks.get(replacing.name) is replacing:
            sinks.swap(replacing.name, replacing.successor)
        self._retire(sinks.stop_retired(replacing.sink))

    def _lingered(self, lingering: Lingering) -> None:
        """The calls in flight as a reload removed a sink are all recorded: it stops now (unless a reload since put
        another in its place, which stopped it)."""
        sinks = self.runtime.sinks
        name = lingering.name
        if sinks.get(name) is lingering:
            sinks.swap(name, None)
            self._retire(sinks.stop_retired(lingering))

    def _kept_at_start(self, new: Config) -> tuple[Config, list[str]]:
        """`new` with what the lineage store reads at start as the config in force has it, and the settings so kept
        that `new` changed (`lineage.<name>`): in force as they were, as in a worker restarted since (`as_reloaded`):
        the boundary's baseline is resolved for the sidecar the store records under, and spans and OpenLineage events
        name that one too."""
        old = self.config.lineage
        fixed = [f"lineage.{name}" for name in _LINEAGE_AT_START if getattr(new.lineage, name) != getattr(old, name)]
        if not fixed:
            return new, fixed
        return replace(
            new, lineage=replace(new.lineage, **{name: getattr(old, name) for name in _LINEAGE_AT_START})
        ), fixed

    def _exporter(self, new: Config, files: ReloadFiles) -> str | None:
        """Why `new` cannot be applied: its changed telemetry's span exporter cannot be built (a CA bundle renewed
        badly since the loader read it). Built into `files.spans` before anything else is made for the reload (a
        SIGHUP's TLS contexts: refused after them, the reload waited up to UPSTREAM_TLS_WAIT_S and said it applied),
        a SIGHUP's with its load, off the loop (`_load`); `_unused` stops one never applied."""
        if files.spans_made or not spans_changed(self.config.telemetry, new.telemetry):
            return None

        def build(_: Telemetry) -> None:
            files.spans = self._spans(new)

        unbuilt = _unbuildable(build, new.telemetry)
        files.spans_made = unbuilt is None
        return unbuilt

    def _unused(self, files: ReloadFiles) -> None:
        """Stop the span exporter built for a reload that was not applied (its export thread, never used)."""
        spans, files.spans = files.spans, None
        if spans is not None:
            self._retire(spans.stop())

    def _refuse(self, why: str) -> bool:
        log.error("reload refused; the old config stays in force. %s", why, extra={"config_sha256": self.config.digest})
        self.metrics.reloads.labels("refused").inc()
        return False

    def _refusal(self, new: Config, files: ReloadFiles) -> str | None:
        """Why `new` cannot be applied at all, known before anything is made for it: listen.tls added or removed, or
        its files as the reload read them unusable, a require_record zone without a store, a spool that could not be
        kept. Asked before a SIGHUP's TLS contexts are made (`_reload_tls`): a reload refused so waited up to
        UPSTREAM_TLS_WAIT_S first, and said it applied."""
        return reload_refusal(self.config, self._store, new, files)

    @staticmethod
    def _cannot_use(read: ListenerRead | None) -> str | None:
        """Why the listener's TLS files, as the reload read them (renewed badly since the loader checked them),
        cannot be used: its new handshakes would take them."""
        if read is None or read.error is None:
            return None
        if read.files is None:
            return f"listen.tls: cannot read its files: {read.error}"
        return f"listen.tls: cannot use the certificate, key or client_ca now: {read.error}"

    @staticmethod
    def _cannot_apply(before: Tls | None, after: Tls | None) -> str | None:
        """Why a listener TLS change cannot be applied without a restart, if it cannot."""
        if (before is None) != (after is None):
            return "listen.tls was added or removed: restart to apply it"
        return None

    @staticmethod
    def _cannot_record(store: str | None, new: Config) -> str | None:
        """Why `new` cannot be applied to a process recording to `store` (read at its start, whatever a reload
        says): a `require_record` zone, with no store to record its calls (`check` accepts it when `new` names a
        store, which only a restart opens)."""
        if store:
            return None
        for index, zone in enumerate(new.zones):
            if zone.require_record:
                return (f"zones[{index}].require_record: zone {zone.name!r} requires every call to be recorded, and "
                        "this process has no lineage store (lineage.store is opened at start): restart to apply it")  # fmt: skip
        return None

    @staticmethod
    def _cannot_spool(old: Config, new: Config, spool: str | None) -> str | None:
        """Why `new` cannot be applied: its OpenLineage settings changed to a spool that could not be kept (`spool`:
        `spool_unopenable`'s, read off the loop): a new recorder would lose what its stop writes there."""
        return spool if new.lineage.openlineage != old.lineage.openlineage else None

    def _grpc_changed(self, old: Config, new: Config, read: ListenerRead | None) -> bool:
        """Whether the gRPC listener must take `new` (`GrpcIngress.replace`: a renewed certificate for its next
        handshakes, or a new server): its TLS changed, in the config or in its files (renewed in place), or
        limits.max_body_bytes, idle_timeout_s, header_timeout_s, max_connections or max_concurrent_streams, which a
        grpc server takes at its
        start (`read`: the files as the reload read them, usable: `_refusal`)."""
        if new.listen.tls != old.listen.tls or _grpc_started(new.limits) != _grpc_started(old.limits):
            return True
        if new.limits.max_header_bytes != old.limits.max_header_bytes:  # the gRPC listener's metadata limit (`_open`)
            return True
        return read is not None and self._tls is not None and read.files_now() != self._tls.files

    async def settled(self) -> None:
        """Wait until what the last reload started is in place (the gRPC listener's new server)."""
        if self._grpc_replacing is not None:
            await asyncio.gather(self._grpc_replacing, return_exceptions=True)

    def _reauthenticate(self) -> None:
        """Client authentication changed: open TLS connections to the HTTP listener close (idle ones now,
        busy ones after their reply), so every later request is identified under the new rules."""
        server = self._http
        connections = list(server.connections) if server is not None else []
        for conn in connections:
            conn.shutdown(reload=True)  # (what it leaves unserved is recorded with the reload's reason, not SIGTERM's)
        log.info("reload: listen.tls client authentication changed; %d open TLS connection(s) closed for new "
                 "handshakes", len(connections))  # fmt: skip

    def _apply_limits(self, before: Limits, after: Limits) -> None:
        """The listeners take the new limits: new connections and requests from now on. Those fixed when a
        listener started are named in a warning."""
        for server in self._servers:
            server.set_limits(after)
        fixed = []
        if self._tls is not None and after.header_timeout_s != before.header_timeout_s:
            fixed.append("limits.header_timeout_s as the TLS handshake timeout (request heads and bodies use it now)")
        if fixed:
            log.warning("reload: %s: restart to apply", "; ".join(fixed))

    # -- admin

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Whether this sidecar is ready, and why not: every upstream answers, and with --workers N every worker
        turns its loop (the kernel gives each its share of the connections, whichever answers the probe)."""
        reachable = self.book.reachable
        down = sorted(name for name, ok in reachable.items() if not ok)
        detail: dict[str, Any] = {"status": "", "upstreams_down": down}
        ok = not down
        if self._beats is not None:
            stalled = self._beats.stalled(self._index)
            self._say_stalled(stalled)
            detail["workers_stalled"] = stalled
            ok = ok and not stalled
        detail["status"] = "ready" if ok else "not ready"
        return ok, detail

    def _say_stalled(self, stalled: list[str]) -> None:
        """Log a worker found stalled once, and once it turns its loop again."""
        for name in stalled:
            if name not in self._said_stalled:
                self._said_stalled.add(name)
                log.warning("%s has not turned its event loop for %gs or more (stopped, or its loop blocked): the "
                            "kernel still gives it its share of the connections; /readyz says not ready until it "
                            "does", name, STALL_S)  # fmt: skip
        if len(self._said_stalled) > len(stalled):
            for name in self._said_stalled - set(stalled):
                self._said_stalled.discard(name)
                log.info("%s turns its event loop again (or has stopped)", name)

    def admin_response(self, path: str) -> tuple[int, bytes, bytes] | None:
        """(status, content type, body) for an admin path, None for any other path."""
        if path == "/healthz":
            return 200, b"application/json", b'{"status":"ok"}'
        if path == "/readyz":
            self.book.check()  # the upstreams asked now whether they still answer; the next probe reads it
            ok, detail = self.ready()
            return 200 if ok else 503, b"application/json", orjson.dumps(detail)
        if path == "/metrics" and not self.metrics.enabled:
            return 404, b"text/plain; charset=utf-8", b"metrics are off (telemetry.metrics: false)\n"
        if path == "/metrics":
            return 200, b"text/plain; charset=utf-8", self.metrics_text().encode()
        return None

    async def _admin_handle(self, request: Request, conn: HttpConnection) -> None:
        answer = self.admin_response(request.path) if request.method in ("GET", "HEAD") else None
        conn.reply(request, *(answer or (404, b"text/plain; charset=utf-8", b"not found\n")))

    def metrics_text(self) -> str:
        """Prometheus text exposition: with --workers N, every worker's series summed (proxy/metrics.py), and the
        workers this one finds stalled now, as /readyz does (`lineage_proxy_workers_stalled`); the config each
        process runs (`lineage_proxy_config_info`)."""
        book = self.book
        text = self.metrics.render(
            self._metric_lines(), sorted(book.reachable.items()), sorted(book.incomplete.items())
        )
        if self._beats is None:
            lines = config_info([("proxy", self.config.digest)])
        else:
            lines = [*workers_stalled(len(self._beats.stalled(self._index))), *config_info(self._beats.configs())]
        return text + "".join(line + "\n" for line in lines)

    def _metric_lines(self) -> list[str]:
        """What the sinks count, the log lines this process dropped, the listeners' bodies held and the gRPC listener's
        request messages arriving, as exposition lines."""
        lines = list(self.runtime.sinks.metrics())
        lines += log_lines(logs.dropped())
        if self.metrics.shared is None:  # one process (a `--workers` supervisor counts them in its own file)
            lines += unclean_stops(markers.unclean_stops())
        if self._http is not None:
            held = self._http.held + (self._grpc.held if self._grpc is not None else 0)
            lines += [
                "# HELP lineage_proxy_request_bodies_held_bytes Request bodies (gRPC request messages, replies read whole) "
                "held in memory now (at most limits.bodies_max_bytes a listener).",
                "# TYPE lineage_proxy_request_bodies_held_bytes gauge",
                f"lineage_proxy_request_bodies_held_bytes {held}",
            ]
        if self._grpc is not None:
            arriving = self._grpc.room.taken + self._grpc.health_room.taken
            lines += [
                "# HELP lineage_proxy_grpc_request_messages_arriving_bytes gRPC request messages asked of grpc before "
                "their calls are decided, each counted at the most grpc takes (at most limits.grpc_arriving_max_bytes, and "
                "16 health checks').",
                "# TYPE lineage_proxy_grpc_request_messages_arriving_bytes gauge",
                f"lineage_proxy_grpc_request_messages_arriving_bytes {arriving}",
            ]
        return lines

    async def _publish_metrics(self) -> None:
        """With --workers N: copy the sinks' counters into the shared files at least once a second, so
        a scrape answered by another worker sees them too."""
        while True:
            await asyncio.sleep(1.0)
            self._publish()

    def _publish(self) -> None:
        try:
            book = self.book
            self.metrics.publish(self._metric_lines(), sorted(book.reachable.items()), sorted(book.incomplete.items()))
        except Exception:
            log.exception("could not publish metrics for the other workers")


def as_reloaded(current: Config, new: Config, files: ReloadFiles | None = None) -> Config | None:
    """The config a process running `current` serves with once a reload of `new` is applied
    (`ProxyProcess.reload`): `new`, with what only a restart applies as `current` has it (listen addresses,
    telemetry.metrics, what the lineage store reads at start); None when that reload is refused by the workers' own
    rule (`reload_refusal`, `_unmade`, an exporter it cannot build), its files as `files` read them (None: read now,
    `ReloadFiles.in_supervisor`): a worker restarted with a config its siblings refused failed its every start, or
    ran beside them on another. `--workers N` starts a worker it restarts with it, so that one serves as its siblings
    do: on their store, with their /metrics, behind their listeners."""
    if files is None:
        files = ReloadFiles.in_supervisor(current, new)
    refused = (
        reload_refusal(current, current.lineage.store, new, files) or files.unbuilt or _unmade(new.upstreams, files)
    )
    if refused is not None:
        return None
    kept = current.listen
    listen = replace(new.listen, http=kept.http, grpc=kept.grpc, admin=kept.admin)
    telemetry = replace(new.telemetry, metrics=current.telemetry.metrics)
    lineage = replace(new.lineage, **{name: getattr(current.lineage, name) for name in _LINEAGE_AT_START})
    return replace(new, listen=listen, telemetry=telemetry, lineage=lineage)


def _secret(setting: str, path: str | None) -> bytes | None:
    """A key or password file's secret. The loader checked it was readable; it may have changed since."""
    if path is None:
        return None
    try:
        return read_secret(path)
    except OSError as exc:
        raise StartupError(f"{setting}: cannot read {path!r}: {exc.strerror or exc}") from exc
