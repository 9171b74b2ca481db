"""Reading a file the config names, interruptibly; work on a thread the stop does not wait for; a directory synced."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

_WAIT_MS = 100
T = TypeVar("T")
_held = threading.local()  # the lock this thread lets go of while it waits on a FIFO (`released_while_waiting`)


class Held(Protocol):
    def acquire(self) -> object: ...
    def release(self) -> None: ...


@contextlib.contextmanager
def released_while_waiting(lock: Held) -> Iterator[None]:
    """For the block, run by the thread holding `lock`: a read waiting on a FIFO (`read_bytes`) lets go of `lock` while
    it waits, and takes it again before it reads (a `--workers` supervisor's fork gate: workers.FORK_GATE)."""
    _held.lock = lock
    try:
        yield
    finally:
        _held.lock = None


def read_bytes(path: str | Path) -> bytes:
    """A file's bytes; raises OSError as `Path.read_bytes` does. A FIFO (a secret handed over through a pipe,
    or a hung path) is opened without blocking and read in waits of 0.1 s at most: a blocking open() or read()
    that a signal came just before (between two of the interpreter's checks) would sleep in the kernel with
    the signal's Python handler not yet run, for as long as the pipe stays silent, so SIGTERM or Ctrl-C did
    nothing there (`serve`, about one start in six in a test)."""
    if not stat.S_ISFIFO(os.stat(path).st_mode):
        return Path(path).read_bytes()
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        chunks: list[bytes] = []
        while True:
            # Linux reports neither data nor a hang-up before a writer has come: the wait goes on until one
            # writes, or comes and goes (the end), a signal's handler running between two waits
            if not _wait(poller):
                continue
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                return b"".join(chunks)
            chunks.append(data)
    finally:
        os.close(fd)


def _wait(poller: select.poll) -> bool:
    """One wait of `read_bytes` on a FIFO, the lock `released_while_waiting` names let go of meanwhile."""
    lock: Held | None = getattr(_held, "lock", None)
    if lock is None:
        return bool(poller.poll(_WAIT_MS))
    lock.release()
    try:
        return bool(poller.poll(_WAIT_MS))
    finally:
        lock.acquire()


def off_loop(work: Callable[[], T], name: str = "lineage-proxy-off-loop") -> asyncio.Future[T]:
    """`work()` on a daemon thread of its own (`name`), its outcome the future's. Not the loop's executor
    (`asyncio.to_thread`): `asyncio.run` and the interpreter's exit join its threads, so a read that never ends
    (a hung mount, a FIFO nobody writes) would hold the stop for good; a daemon thread is left behind."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done():  # cancelled meanwhile (the stop)
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = work()
        except BaseException as exc:  # handed to the loop, raised there
            error = exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop is closed: no one waits for it any more
            pass

    threading.Thread(target=run, name=name, daemon=True).start()
    return done


def sync_directory(path: str) -> None:
    """fsync the directory `path`, so that a file just renamed into it outlives a power cut; not done where the file
    system refuses it."""
    with contextlib.suppress(OSError):
        directory = os.open(path, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
