"""Log lines on stderr: text for people, or one JSON object a line for log pipelines (Loki, Elastic,
Cloud Logging), each naming the process that wrote it.

A line about a call carries its `trace_id` (the `x-trace-id` the client got), so a log search joins
the trace. Content never reaches a log line: the access log says who called for what and how it went,
not what was said.

A record reaches stderr whole, however long (`WholeLineHandler`): with `--workers N` every process writes
to the same pipe, where a write is atomic only up to PIPE_BUF (4096 bytes), so two workers' long lines
(an access line with many labels, a traceback) came out interleaved, neither parseable.

A record is written by a thread of its own (`_Writer`), never by the thread that logs it: a stderr nobody reads
(a log shipper stalled, a container runtime's log disk full) fills its pipe, and a write to it waited until it
was read again, on the event loop, so every call, `/metrics` and a SIGTERM's drain hung with it. The lines
waiting are bounded (`BUFFER_BYTES`); past that they are dropped, and said once stderr takes lines again.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import signal
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Final

import orjson

from proxy.config import Logging

ACCESS = "lineage_proxy.access"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(processName)s[%(process)d] %(name)s: %(message)s"
# LogRecord attributes that are the record's machinery, not fields a caller passed in `extra`
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (RFC 3339, UTC), level, process, pid, logger, message, then every
    field passed as `extra=` (trace_id, caller, ...), then the exception if any. C1 controls, the line separators and the
    characters a reader does not see as themselves (`HIDDEN`) are JSON escapes, as the text format escapes them."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "process": record.processName,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:  # its text as a filter may have left it (what may be a token hidden: `openlineage._Hiding`)
            line["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json_line(orjson.dumps(line, default=str).decode())


# characters a reader does not see as themselves: the bidirectional controls (Unicode's Bidi_Control: an override
# such as U+202E lays out the rest of a line right to left, where a viewer follows the bidi algorithm, a browser's
# log view among them: the fields after a model's name shown reversed) and those that render as nothing (a name
# with U+200B looks like the name without it)
HIDDEN = (
    0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A),
    0x00AD, 0x034F, 0x180E, *range(0x200B, 0x200E), *range(0x2060, 0x2065), 0xFEFF,
)  # fmt: skip
# C0, DEL, C1 (CSI U+009B rewrites a terminal's line, NEL U+0085 breaks it), the Unicode line and paragraph
# separators, which `str.splitlines` and some viewers read as line breaks, and HIDDEN
_ESCAPED = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {
    0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029",
} | {c: f"\\u{c:04x}" for c in HIDDEN}  # fmt: skip
# what JSON lines write as JSON escapes beside those orjson writes (C0, `"`, `\\`): C1, the line separators and
# HIDDEN, for the reasons above. They occur in JSON strings only, so the line parses to the same values
_JSON_ESCAPED = {c: f"\\u{c:04x}" for c in (*range(0x80, 0xA0), 0x2028, 0x2029, *HIDDEN)}


def json_line(text: str) -> str:
    """A line of JSON (orjson's, which escapes C0 only) with C1, the line separators and HIDDEN written as JSON
    escapes too (`_JSON_ESCAPED`): the log lines' and the console exporter's spans'."""
    return text if text.isascii() else text.translate(_JSON_ESCAPED)


def escaped(text: str) -> str:
    """`text` with its control characters escaped (`\\n`, `\\x00`): a value shown in a line of text (a log
    field, a table cell) cannot start a line of its own."""
    return text.translate(_ESCAPED)


def quoted(value: object) -> str:
    """A value for a `key=value` line: escaped, and in double quotes (its `\\` and `"` escaped) when it holds
    a space, `=`, `"` or `\\` (or is empty), so a model named `m caller=admin` cannot add a field of its own."""
    text = escaped(str(value))
    if text and not any(c in text for c in ' ="\\'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class TextFormatter(logging.Formatter):
    """The classic line, with the `extra=` fields appended as key=value (the access log's shape)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        # the message's args hold what callers wrote (a model name); a line break in one would forge a
        # line. Escaped here, not in `record.message`, which other handlers read; a traceback is appended
        # after this and keeps its lines. The access line's args are quoted too: its message comes before
        # its fields, so a model named `m caller=admin` would read as a field ahead of the real ones.
        message = record.message
        if record.name == ACCESS and isinstance(record.args, tuple) and record.args:
            message = escaped(str(record.msg) % tuple(quoted(arg) for arg in record.args))
            return TEXT_FORMAT % (record.__dict__ | {"message": message})
        return TEXT_FORMAT % (record.__dict__ | {"message": escaped(message)})

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = [f"{key}={quoted(value)}" for key, value in record.__dict__.items()
                 if key not in _STANDARD and not key.startswith("_")]  # fmt: skip
        return f"{text} {' '.join(extra)}" if extra else text


class _ForkLock:
    """One lock for every process forked from this one (the workers and their supervisor), held while a
    record is written: a POSIX record lock on an unlinked file opened before the first fork. The kernel
    releases it when its holder dies, so a worker killed mid-line cannot stop the others logging. A process
    that never forks has none and takes none. A record lock is its process's, not a thread's, so the process's
    own threads take turns by a lock of their own (two span exporters at a reload, the old one's last export)."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self._threads = threading.Lock()

    def before_fork(self) -> None:
        if self.fd is None:
            try:
                fd, path = tempfile.mkstemp(prefix="lineage-proxy-log-lock-")
            except OSError:
                return  # no lock: long lines may interleave again, nothing worse
            os.unlink(path)  # the open descriptor is all the processes share
            self.fd = fd

    def after_fork_in_child(self) -> None:
        self._threads = threading.Lock()  # maybe held by a thread of the parent's, which the child does not have

    def write(self, fd: int, data: bytes, abandoned: Callable[[], bool] | None = None) -> bool:
        """All of `data` to `fd`, no other write through this lock (another process's, another thread's) in between.
        False, nothing written, when `abandoned()` turns true while this waits for its turn (a stopped span exporter's
        batch): that thread ends, its batch freed (one waiting for another process's turn, once that turn comes), where
        one a reload left waiting behind a stalled stdout held it (up to 3 MiB) as long as the process lived, one more
        each reload."""
        while not self._threads.acquire(timeout=TURN_WAIT_S if abandoned is not None else -1):
            if abandoned is not None and abandoned():
                return False
        try:
            return self._write_turn(fd, data, abandoned)
        finally:
            self._threads.release()

    def _write_turn(self, fd: int, data: bytes, abandoned: Callable[[], bool] | None) -> bool:
        """`write`'s, its thread's turn taken: the other processes' turn by the record lock, then all of `data`. False,
        nothing written, when `abandoned()` turned true while another process held the record lock. That turn is waited
        for in the kernel, which wakes the waiter as the lock is let go: a wait that asked without waiting, again after
        up to 50 ms (review revrec12), found it free only by chance, as its holder asked again within microseconds, and
        behind a stdout read slowly one worker wrote 1985 batches, the other 1 (its spans dropped, queue full)."""
        lock = self.fd
        if lock is None:
            _write_all(fd, data)
            return True
        try:
            _lock_record(lock)
        except OSError:
            # a file system refusing record locks (NFS without lockd: ENOLCK): written unlocked from now on, as
            # when no lock file could be made, rather than a span batch failed or a log line lost for the lock
            self.fd = None
            _write_all(fd, data)
            return True
        try:
            # a batch its stop gave up on while it waited for another process's turn: dropped, unwritten (`--workers`:
            # one waiting behind another worker's write to a stdout nobody reads, which its stop counted lost)
            if abandoned is not None and abandoned():
                return False
            _write_all(fd, data)
        finally:
            fcntl.lockf(lock, fcntl.LOCK_UN)
        return True


TURN_WAIT_S: Final = 0.05  # how often a write that may be abandoned (`_ForkLock.write`) asks whether it is
FALSE_DEADLOCK_WAIT_S: Final = 0.005  # how long a record lock refused as a deadlock waits to be asked again


def _lock_record(lock: int) -> None:
    """Take the record lock `lock`, waiting for it. A record lock is its process's, not its thread's: a process whose
    exporter holds stdout's (its write waiting for room) while its log writer waits for stderr's, and another the other
    way round, are a cycle to the kernel, which refuses the last request with EDEADLK (a batch of spans failed: 98 of
    200 lost, both pipes unread a while; or log lines lost unsaid). No thread holds one while it waits for another, so
    the cycle is never real: each holder's write ends as its pipe is read. The lock is asked again until it is free."""
    while True:
        try:
            fcntl.lockf(lock, fcntl.LOCK_EX)
            return
        except OSError as exc:
            if exc.errno != errno.EDEADLK:
                raise
        time.sleep(FALSE_DEADLOCK_WAIT_S)


_fork_lock = _ForkLock()  # stderr's: the log lines
_stdout_lock = _ForkLock()  # stdout's: the console exporter's spans (`write_stdout`)
os.register_at_fork(before=_fork_lock.before_fork, after_in_child=_fork_lock.after_fork_in_child)
os.register_at_fork(before=_stdout_lock.before_fork, after_in_child=_stdout_lock.after_fork_in_child)


BUFFER_BYTES = 4 * 1024 * 1024  # log lines a process holds while stderr takes none; past it they are dropped
EXIT_WAIT_S = 5.0  # how long an exit waits for the lines still held to reach stderr
# then, with lines still held, how much longer it waits for the line saying so (written after the lines the writer has in
# hand: it gets out when stderr is read, slowly, not when nothing reads it)
EXIT_SAY_S = 0.5

_writers: weakref.WeakSet[_Writer] = weakref.WeakSet()
# the lines this process dropped past the bound since it started (or was forked), for /metrics
# (`lineage_proxy_log_lines_dropped_total`): the line that says them waits for stderr to take lines again
_dropped_total = 0
_dropped_lock = threading.RLock()  # reentrant: a signal handler that logs may drop a line inside `_count_dropped`


def dropped() -> int:
    """The log lines this process dropped, stderr taking none, since it started (a forked child: since its fork)."""
    return _dropped_total


class _Writer:
    """The lines one process logs to one descriptor, written in order by a thread of its own, each whole (under
    `_ForkLock` once the process has forked or was forked; the lines waiting go out together, in one write when
    the pipe takes it). The thread that logs only queues its line: a stderr nobody reads blocks this thread,
    never the event loop. At most BUFFER_BYTES wait; a line past that is dropped, counted, and said in a line
    of its own once stderr takes lines again."""

    def __init__(self, fd: int, handler: logging.StreamHandler) -> None:  # type: ignore[type-arg]
        self.fd = fd
        self.handler = handler  # what says the lines dropped, in its format
        self._reset()
        _writers.add(self)

    def _reset(self) -> None:
        # a reentrant lock: a signal handler that logs may interrupt this thread inside `put`
        self._cond = threading.Condition(threading.RLock())
        self._lines: list[bytes] = []
        self._held = 0
        self._busy = False  # the thread has lines in hand
        self._dropped = 0
        self._dropped_since = 0.0
        self._refused_lines = 0  # lines lost to writes stderr refused, not yet said (`_refused`)
        self._refused_error = ""
        # the lines queued saying lines were lost, not yet written (`_say_refused`, `_say_dropped`): each with its count,
        # and when the drops it says began (None: refused writes'), put back should stderr refuse it in turn
        self._saying: list[tuple[bytes, int, float | None]] = []
        self._thread: threading.Thread | None = None
        self._started = False  # its thread is started, or being started

    def put(self, data: bytes) -> None:
        with self._cond:
            if self._held + len(data) > BUFFER_BYTES and self._lines:
                if not self._dropped:
                    self._dropped_since = time.monotonic()
                self._dropped += 1
                _count_dropped()
                return
            self._lines.append(data)
            self._held += len(data)
            if not self._started:
                # said before the thread is made: a signal handler that logs may run in this thread inside the
                # making (its `put` reentrant), and would start a second one, the two writing at once
                self._started = True
                self._thread = threading.Thread(target=self._run, name="lineage-proxy-log", daemon=True)
                self._thread.start()
            elif not self._busy:
                self._cond.notify()

    def _run(self) -> None:
        # never this thread's to take a signal sent to the process: a SIGTERM taken here only sets Python's flag, and a
        # main thread waiting on a lock (a supervisor's fork waiting for a load) is not woken to run its handler
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        while True:
            with self._cond:
                self._busy = False
                self._cond.notify_all()  # `flush` waits for this
                while not self._lines:
                    self._cond.wait()
                lines, self._lines, self._held, self._busy = self._lines, [], 0, True
                dropped, since, self._dropped = self._dropped, self._dropped_since, 0
            try:
                self._write(b"".join(lines))
            except OSError as exc:
                self._refused(lines, getattr(exc, _SENT, 0), dropped, since, exc)
                continue
            if self._saying:
                with self._cond:
                    self._saying = [saying for saying in self._saying if not any(line is saying[0] for line in lines)]
            if dropped:  # in the handler's format, once the lines held before them are out
                self._say_dropped(dropped, since)
            refused = self._refused_lines  # (this thread's alone: `_refused`)
            if refused:
                self._refused_lines = 0
                self._say_refused(refused)

    def _refused(self, lines: list[bytes], sent: int, dropped: int, since: float, exc: OSError) -> None:
        """A write stderr refused (a full disk, `2>/dev/full`: ENOSPC; its reader gone, EPIPE; EIO) after `sent` bytes:
        its lines not written whole are lost, counted as dropped lines are, and said once stderr takes a write again
        (`_say_refused`), with those dropped past the bound meanwhile. They were lost uncounted: with `exporter: none` a
        call that carries no data (a listing, a health check: no edge) had no record left, and
        `lineage_proxy_log_lines_dropped_total` said 0. A line the write that found a disk full wrote whole is not
        counted (it was, review revrec12: 20 counted of 10 lost); a line saying lines were lost, refused in turn, is
        counted, and its count is said in the next such line (it was said nowhere)."""
        taken = lines
        for whole, line in enumerate(taken):
            sent -= len(line)
            if sent < 0:
                lines = taken[whole:]
                break
        else:
            lines = []
        for _ in lines:
            _count_dropped()
        with self._cond:
            self._refused_lines += len(lines)
            self._refused_error = f"{type(exc).__name__}: {exc}"
            for data, count, began in self._saying:
                if not any(line is data for line in lines):
                    continue
                if began is None:
                    self._refused_lines += count
                else:
                    self._dropped_since = min(self._dropped_since, began) if self._dropped else began
                    self._dropped += count
            self._saying = [saying for saying in self._saying if not any(line is saying[0] for line in taken)]
            if dropped:  # (said with the next write that succeeds)
                self._dropped_since = min(self._dropped_since, since) if self._dropped else since
                self._dropped += dropped

    def _say_refused(self, refused: int) -> None:
        """Queue the line saying `refused` lines were lost to writes stderr refused (`_refused`)."""
        record = logging.getLogger("lineage_proxy").makeRecord(
            "lineage_proxy", logging.ERROR, __file__, 0,
            "%d log lines (access lines among them) were lost: stderr refused their write (%s) (counted in "
            "lineage_proxy_log_lines_dropped_total)", (refused, self._refused_error), None)  # fmt: skip
        self._queue_past_bound(record, refused, None)

    def _say_dropped(self, dropped: int, since: float) -> None:
        """Queue the line saying `dropped` lines were dropped, past the bound: a bound that dropped it too would
        lose the count (the lines still arriving fill what the last write freed)."""
        record = logging.getLogger("lineage_proxy").makeRecord(
            "lineage_proxy", logging.ERROR, __file__, 0,
            "%d log lines (access lines among them) were dropped: stderr took none for %.0fs, while this "
            "process held %d bytes of lines for it; see what reads it (counted in lineage_proxy_log_lines_dropped_total)",
            (dropped, time.monotonic() - since, BUFFER_BYTES), None)  # fmt: skip
        self._queue_past_bound(record, dropped, since)

    def _queue_past_bound(self, record: logging.LogRecord, count: int = 0, since: float | None = None) -> None:
        """Queue `record` in the handler's format whatever is held (a line saying lines were lost: `count` of them,
        refused writes' or, dropped since `since`, the bound's, put back should its write be refused)."""
        handler = self.handler
        try:
            text = handler.format(record) + handler.terminator
        except Exception:
            handler.handleError(record)
            return
        data = text.encode(getattr(handler.stream, "encoding", None) or "utf-8", "backslashreplace")
        with self._cond:
            self._lines.append(data)
            self._held += len(data)
            if count:
                self._saying.append((data, count, since))

    def _write(self, data: bytes) -> None:
        _fork_lock.write(self.fd, data)

    def flush(self, timeout: float) -> bool:
        """Wait until the lines held are written, `timeout` seconds at most; whether they were."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._lines and not self._busy, timeout)

    def exit_flush(self, timeout: float) -> None:
        """At exit: `flush`, then the lines still waiting (not those the thread is writing) are dropped, counted
        (`lineage_proxy_log_lines_dropped_total`: a `--workers` worker's count outlives it) and said in one line in their
        place, waited for EXIT_SAY_S more: out once the thread's write ends, if stderr takes it before the process ends.
        They were lost unsaid."""
        if self.flush(timeout):
            return
        with self._cond:
            lost = len(self._lines)
            if not lost:
                return
            self._lines, self._held = [], 0
            for _ in range(lost):
                _count_dropped()
        record = logging.getLogger("lineage_proxy").makeRecord(
            "lineage_proxy", logging.ERROR, __file__, 0,
            "%d log lines (access lines among them) still held at exit were not written: stderr took none of them in "
            "the %gs the exit waits (counted in lineage_proxy_log_lines_dropped_total)", (lost, timeout), None)  # fmt: skip
        self._queue_past_bound(record)
        with self._cond:
            self._cond.notify_all()
        self.flush(EXIT_SAY_S)


def _count_dropped() -> None:
    global _dropped_total
    with _dropped_lock:  # (the writers of one process share the count)
        _dropped_total += 1


def _after_fork() -> None:
    """A forked child writes its own lines: its parent's (and its parent's thread, which it does not have) stay
    the parent's, and so does its count of lines dropped (each process's is summed on /metrics)."""
    global _dropped_total, _dropped_lock
    _dropped_total = 0
    _dropped_lock = threading.RLock()
    for writer in list(_writers):
        writer._reset()


os.register_at_fork(after_in_child=_after_fork)


def flush(timeout: float = EXIT_WAIT_S) -> None:
    """Wait for the log lines still held to reach stderr (before a process exits), `timeout` seconds at most."""
    deadline = time.monotonic() + timeout
    for writer in list(_writers):
        writer.exit_flush(max(0.0, deadline - time.monotonic()))


class WholeLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler whose every record reaches the stream in one piece: written with `os.write` until all
    of it is, under `_ForkLock` once the process has forked or was forked, by a `_Writer`'s thread. A stream
    without a file descriptor (a test's StringIO) is written to as StreamHandler does."""

    _writer: _Writer | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record) + self.terminator
            stream = self.stream
            try:
                fd = stream.fileno()
            except (AttributeError, OSError, ValueError):
                stream.write(text)
                self.flush()
                return
            writer = self._writer
            if writer is None or writer.fd != fd:
                writer = self._writer = _Writer(fd, self)
            writer.put(text.encode(getattr(stream, "encoding", None) or "utf-8", "backslashreplace"))
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Also waits (EXIT_WAIT_S at most) for the lines held to be written: `logging.shutdown` calls it at exit. Those
        still held then are said (`_Writer.exit_flush`)."""
        super().flush()
        if self._writer is not None:
            self._writer.exit_flush(EXIT_WAIT_S)


NO_STDOUT: Final = "the proxy was started with no stdout (1>&-)"


def stdout_unwritable() -> str | None:
    """Why this process's stdout takes no write, said as a start or a reload to `exporter: console` is refused: with
    none (`1>&-`, Python's `sys.stdout` is None), one open for reading alone (`1</dev/null`, each write EBADF) or a pipe
    or socket whose reader is gone (each write EPIPE), every span would fail from the first call on. None when it takes
    writes, or is no file (a test's capture)."""
    if sys.stdout is None:
        return NO_STDOUT
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # a stdout of no file: written as `print` writes (`write_stdout`)
        return None
    try:
        mode = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError:  # (closed since the start)
        return NO_STDOUT
    if mode == os.O_RDONLY:
        return "the proxy's stdout is open for reading only (1</dev/null)"
    return READER_GONE if _reader_gone(fd) else None


READER_GONE: Final = "the proxy's stdout is a pipe or socket whose reader is gone (EPIPE)"


def _reader_gone(fd: int) -> bool:
    """Whether `fd` is a pipe whose read end is closed (poll: POLLERR) or a socket whose peer is (POLLHUP): each write
    fails with EPIPE. Until 2026-12-07 such a stdout was found by the ready line's write, which ended the start (exit
    141, nothing said; with `--workers N` its workers stopped too) and a console exporter failed every span."""
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poll.poll(0))


def write_stdout(data: bytes, abandoned: Callable[[], bool] | None = None) -> bool:
    """Whole lines onto stdout, whole (the console exporter's spans, `serve`'s ready line). With `--workers N` every
    process writes to the same stdout, where a pipe takes a write whole only up to PIPE_BUF (4096 bytes): two workers'
    spans of more (many labels, captured content) came out in each other's pieces; and on a pipe another process left
    non-blocking (`_write_all` waits for room) Python's buffered stdout wrote what had room and dropped the rest,
    raising nothing. False, nothing written, when `abandoned()` turns true while it waits for its turn
    (`_ForkLock.write`)."""
    if sys.stdout is None:  # (said so in the export's failure line, not as `'NoneType' object has no attribute`)
        raise OSError(f"{NO_STDOUT}: console spans have nowhere to go")
    sys.stdout.flush()  # what `print` left buffered (the ready line) goes first
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # a stdout of no file (io.StringIO, a test's capture, an embedder's)
        sys.stdout.write(data.decode("utf-8", "replace"))  # written as `print` wrote it: no other process shares it
        sys.stdout.flush()
        return True
    return _stdout_lock_for(fd).write(fd, data, abandoned)


def _stdout_lock_for(fd: int) -> _ForkLock:
    """The log lines' lock when stdout is where they go too (`2>&1`, systemd's default `StandardError=inherit`): a span
    and a log line then take turns (each process's writer and exporter are two threads: 24 of 600 lines broken, one
    process); else stdout's own, so that a stdout nobody reads holds up no log line."""
    try:
        return _fork_lock if os.path.sameopenfile(fd, 2) else _stdout_lock
    except OSError:  # (no stderr)
        return _stdout_lock


def _write_all(fd: int, data: bytes) -> None:
    """Write all of `data`: a pipe takes a long line in parts, a non-blocking one when it has room. A write refused
    raises its error, which holds (as `_SENT`) how many bytes of `data` were written before it."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:  # O_NONBLOCK set on the shared pipe by another process: wait for room
            select.select([], [fd], [])
        except OSError as exc:
            setattr(exc, _SENT, len(data) - len(view))  # (a full disk's last write took part of it)
            raise


_SENT: Final = "lineage_proxy_sent"  # the attribute of `_write_all`'s error: the bytes written before it


_override: list[str | None] = [None]


def configure(settings: Logging, level_override: str | None = None) -> None:
    """Apply `logging:` (a reload applies it again). `--log-level` given on the command line wins, on
    reloads too."""
    if level_override is not None:
        _override[0] = level_override
    level_override = _override[0]
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_lineage_proxy", False)), None)
    if handler is None:
        handler = WholeLineHandler(sys.stderr)
        handler._lineage_proxy = True  # type: ignore[attr-defined]
        for old in list(root.handlers):
            root.removeHandler(old)
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    root.setLevel(getattr(logging, (level_override or settings.level).upper(), logging.INFO))
    # the access log has its own switch: on at any level once `access: true`, silent otherwise
    access = logging.getLogger(ACCESS)
    access.setLevel(logging.INFO if settings.access else logging.CRITICAL + 1)
