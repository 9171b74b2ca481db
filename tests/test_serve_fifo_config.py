"""`lineage-proxy serve` stopped while its config load waits on a file: a `lineage.baseline` or
`lineage.password_file` that is a FIFO nobody writes (as a hung path would) keeps the load waiting, in
open() until a writer comes, in read() while one holds it open writing nothing. `serve` blocked SIGTERM
and SIGINT for the whole load, so neither did anything there: only SIGKILL ended it. Both now stop it
there, exit 0, "stopping before serving"."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import dead_port

WAIT_S = 10.0  # "within a few seconds": a stop that works takes milliseconds

CONFIG = """
listen: {{http: "127.0.0.1:{http}"}}
upstreams: [{{name: m, url: "http://127.0.0.1:{dead}"}}]
routes: [{{model: "*", upstream: m}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: null, {field}: "{fifo}"}}
"""


def _waits_on_fifo(pid: int, fifo: Path) -> bool:
    """The process has the FIFO open, waiting for a writer (the load opens it without blocking and waits in
    poll(), so a signal's handler runs: proxy/files.py)."""
    with contextlib.suppress(OSError):
        return any(os.readlink(fd) == str(fifo) for fd in Path(f"/proc/{pid}/fd").iterdir())
    return False


@contextlib.contextmanager
def _serving(tmp_path: Path, field: str, workers: str) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.format(http=dead_port(), dead=dead_port(), field=field, fifo=fifo))
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(config), "--workers", workers],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        yield proc, fifo
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=WAIT_S)  # its pipes closed


def _stops(proc: subprocess.Popen[str], signum: int) -> None:
    proc.send_signal(signum)
    try:
        out, err = proc.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{signum!r} did nothing: serve still waits on the FIFO {WAIT_S}s later")
    assert proc.returncode == 0, err
    assert "stopping before serving" in err, err
    assert "Traceback" not in err, err
    assert "ready" not in out, out


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize(("field", "workers"), [("baseline", "1"), ("password_file", "1"), ("baseline", "2")])
def test_a_stop_while_the_load_waits_to_open_a_fifo(tmp_path: Path, field: str, workers: str, signum: int) -> None:
    with _serving(tmp_path, field, workers) as (proc, fifo):
        deadline = time.monotonic() + WAIT_S
        while not _waits_on_fifo(proc.pid, fifo):  # the load reached the FIFO, and waits there
            assert proc.poll() is None and time.monotonic() < deadline, "serve never opened the FIFO"
            time.sleep(0.005)
        _stops(proc, signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("field", ["baseline", "password_file"])
def test_a_stop_while_the_load_waits_to_read_a_fifo(tmp_path: Path, field: str, signum: int) -> None:
    with _serving(tmp_path, field, "1") as (proc, fifo):
        deadline = time.monotonic() + WAIT_S
        while True:  # a writer that opens the FIFO once serve has it open for reading, and writes nothing
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
            assert proc.poll() is None and time.monotonic() < deadline, "serve never opened the FIFO"
            time.sleep(0.005)
        try:
            _stops(proc, signum)
        finally:
            os.close(writer)
