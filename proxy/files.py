"""Reading a file the config names, interruptibly."""

from __future__ import annotations

import contextlib
import os
import select
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

_WAIT_MS = 100
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
