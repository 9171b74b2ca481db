"""The line saying why a command stops (`lineage-proxy <command>: ...`, `cli._fail`) is printed on stderr after the log lines
the process logged before it, each whole. Log lines are written by a thread of their own (`proxy.logs._Writer`), so
the fatal line, printed at once, came out ahead of the warnings that explained it (an upstream not reachable, a
store refused), or inside one of them: `lineage-proxy: cannot start: ...2026-12-03 14:52:00 WARNING ...`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The writer thread is made the slower one, as it is when the loop keeps the GIL: it writes once the main thread has
# written to stderr itself, or has waited for the lines held (`_Writer.flush`), whichever comes first
SCRIPT = """
import logging, sys, threading
from proxy import cli, logs
from proxy.config import Logging

logs.configure(Logging())
gate = threading.Event()
write_all, writer_flush = logs._write_all, logs._Writer.flush

def slow_write_all(fd, data):
    gate.wait()
    write_all(fd, data)

def flush(self, timeout):
    gate.set()
    return writer_flush(self, timeout)

class Stderr:
    def __init__(self, stream):
        self.stream = stream
    def write(self, text):
        gate.set()
        return self.stream.write(text)
    def flush(self):
        self.stream.flush()

logs._write_all, logs._Writer.flush, sys.stderr = slow_write_all, flush, Stderr(sys.stderr)
log = logging.getLogger("lineage_proxy")
for n in range(3):
    log.warning("upstream u%d: metadata not reachable at http://127.0.0.1:9: connection refused", n)
sys.exit(cli._fail("cannot start: see above", "serve"))
"""


def test_the_fatal_line_follows_the_lines_logged_before_it() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 4, result.stderr
    for n, line in enumerate(lines[:-1]):
        assert line.endswith(f"lineage_proxy: upstream u{n}: metadata not reachable at http://127.0.0.1:9: "
                             "connection refused"), result.stderr  # fmt: skip
    assert lines[-1] == "lineage-proxy serve: cannot start: see above", result.stderr
