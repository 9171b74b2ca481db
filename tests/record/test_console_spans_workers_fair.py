"""`--workers N` with `exporter: console` behind a stdout read slowly (a log shipper, a terminal): the workers take
turns on stdout by one record lock. A batch that could be given up on (every console batch: its stop may give up)
asked for that lock without waiting, again after up to 50 ms, while the worker holding it released it and asked again
within microseconds: a worker whose turn came when the lock was free kept it, batch after batch, and the other waited.
Two processes sending 4 KB batches through the console sink to a pipe read at 2 MB/s for 3 s: one wrote 1985 batches,
the other 1 (review revrec12; before, with the kernel's wait, 897 and 1073). Its queue full, each of its calls' spans
was dropped while the other worker's went out. Now a batch waits for its turn in the kernel, as the log lines do, and
one its stop gave up on meanwhile is dropped, unwritten, once its turn comes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
RUN_S: Final = 3.0
RATE: Final = 2_000_000  # bytes a second the reader takes
# two processes forked as `serve --workers 2` forks its workers (the lock's file made before the first fork), each
# sending batches of one 4 KB span through the console sink until its deadline
WORKERS: Final = f"""
import os, sys, time
from proxy.record.export import ConsoleSink
children = []
for worker in (b"1", b"2"):
    pid = os.fork()
    if pid == 0:
        sink = ConsoleSink()
        deadline = time.monotonic() + {RUN_S}
        while time.monotonic() < deadline:
            sink.send([b'{{"worker":' + worker + b',"pad":"' + b"x" * 4000 + b'"}}'])
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
"""


def test_each_worker_gets_its_turns_on_a_slow_stdout() -> None:
    proc = subprocess.Popen([sys.executable, "-c", WORKERS], stdout=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert proc.stdout is not None
    read = b""
    start = time.monotonic()
    while chunk := os.read(proc.stdout.fileno(), 65536):
        read += chunk
        ahead = len(read) / RATE - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)  # the reader's pace, not a synchronisation: stdout is read at RATE
    assert proc.wait(30) == 0
    lines = read.splitlines()
    turns = {worker: sum(line.startswith(b'{"worker":%s,' % worker) for line in lines) for worker in (b"1", b"2")}
    assert sum(turns.values()) == len(lines) > 100, (turns, len(lines))  # every line a whole batch
    # the kernel wakes the one waiting as the lock is let go: each worker had 45 to 55% of the turns
    assert min(turns.values()) >= len(lines) // 5, turns
