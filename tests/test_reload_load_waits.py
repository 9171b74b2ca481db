"""A SIGHUP whose config load waits on a file (a `lineage.baseline` that is a FIFO nobody writes yet, as a hung
network mount or a secret handed over through a pipe would be): the load ran on the event loop, in the signal's
callback, so while it waited the proxy answered nothing (calls in flight and new ones, /healthz), and SIGTERM,
itself a callback of that loop, did nothing: only SIGKILL ended it; with `--workers` the supervisor's own load,
in its signal handler, held it as well. The load now runs off the loop: calls are served by the config in force
until it ends, the new one applied then, and a stop meanwhile drains and exits 0; a worker restarted while the
supervisor's load waits reloads as its siblings do."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.test_workers import Serve, chat

WAIT_S = 10.0

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"BASELINE}
"""
BASELINE = """version: 1
flows:
  - {caller: anonymous, purpose: assistant}
"""


def _holding(pid: int, fifo: Path) -> bool:
    """Process `pid` has `fifo` open (its load waits there for a writer)."""
    with contextlib.suppress(OSError):
        return any(os.readlink(fd) == str(fifo) for fd in Path(f"/proc/{pid}/fd").iterdir())
    return False


def _waits_on(serve: Serve, fifo: Path) -> None:
    """Every process of `serve` (the supervisor and each worker, with `--workers`) has begun the reload: its
    load waits on `fifo`."""
    pids = [serve.proc.pid, *serve.children()]
    deadline = time.monotonic() + WAIT_S
    while not all(_holding(pid, fifo) for pid in pids):
        waiting = [pid for pid in pids if _holding(pid, fifo)]
        assert serve.proc.poll() is None and time.monotonic() < deadline, (
            f"of {pids} (supervisor first) only {waiting} began the reload; stderr:\n{''.join(serve.err)}"
        )
        time.sleep(0.005)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_calls_are_served_and_a_stop_works_while_a_reload_waits_to_read_a_file(
    vllm, tmp_path: Path, workers: str
) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    fifo = tmp_path / "baseline.pipe"
    os.mkfifo(fifo)
    config = tmp_path / "proxy.yaml"
    text = CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db"))
    config.write_text(text.replace("BASELINE", ""))
    serve = Serve([sys.executable, "-m", "proxy", "serve", "--config", str(config), "--workers", workers])
    try:
        url = f"http://{serve.ready()['http']}"
        assert chat(url) == 200
        config.write_text(text.replace("BASELINE", f', baseline: "{fifo}"'))
        serve.proc.send_signal(signal.SIGHUP)
        _waits_on(serve, fifo)
        # the load waits: the config in force serves every call meanwhile
        try:
            statuses = [chat(url) for _ in range(4)]
        except httpx.TimeoutException:
            pytest.fail("a call went unanswered while a reload waited to read a file")
        assert statuses == [200] * 4
        if workers == "2":  # a worker restarted while the loads wait reloads too, as its siblings do, once it serves
            os.kill(serve.children()[0], signal.SIGKILL)
            serve.wait("a SIGHUP came while starting: reloading now")
            _waits_on(serve, fifo)
            assert chat(url) == 200
            # its fork did not wait for the supervisor's load, which holds nothing while it waits on the pipe
            assert not [line for line in serve.err if "forked all the same" in line], serve.err
        if workers == "1":  # the file comes: the reload is applied, then
            with open(fifo, "w") as pipe:
                pipe.write(BASELINE)
            serve.wait("reloaded")
            assert chat(url) == 200
            serve.proc.send_signal(signal.SIGHUP)  # and again, the stop this time comes while it waits
            _waits_on(serve, fifo)
        serve.proc.send_signal(signal.SIGTERM)
        try:
            code = serve.proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {WAIT_S:g} s after SIGTERM; stderr:\n{''.join(serve.err)}")
        assert code == 0, "".join(serve.err)
    finally:
        serve.end()
