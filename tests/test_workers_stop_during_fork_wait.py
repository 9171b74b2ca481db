"""A `--workers` supervisor restarting a worker forks it once no reload's load runs on its other thread, waiting
FORK_WAIT_S at most for a load that does not end (a file on a hung mount: tests/test_workers_fork_after_load.py). A
SIGTERM that came meanwhile was noticed only once that wait ended: the supervisor, told to stop, went on waiting (10 s
by default), and only then stopped. The stop now ends the wait: the worker is not started, and the supervisor stops.

The supervisor's load is held by a shim (sitecustomize) on a pipe nobody writes to; the shim also makes FORK_WAIT_S an
hour, so a supervisor that waits it out is plainly still running when the test gives up on it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import proxy
from tests.test_reload_load_waits import _holding
from tests.test_workers import WAIT_S, Serve, alive
from tests.test_workers_fork_after_load import CONFIG, SITECUSTOMIZE

LONG_WAIT = SITECUSTOMIZE + "\nproxy.workers.FORK_WAIT_S = 3600.0\n"


def test_a_sigterm_while_a_restart_waits_for_a_hung_load_stops_at_once(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(LONG_WAIT)
    hold = tmp_path / "hold.pipe"
    os.mkfifo(hold)
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db")))
    root = str(Path(proxy.__file__).parents[1])  # the build this test runs
    env = {"PYTHONPATH": os.pathsep.join([str(shim), root]), "LP_TEST_HOLD_LOAD": str(hold)}
    serve = Serve.workers(config, 2, env)
    try:
        serve.ready()
        first = serve.children()
        assert len(first) == 2, first
        serve.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + WAIT_S  # the supervisor's load has begun, and never ends (nobody writes)
        while not _holding(serve.proc.pid, hold):
            assert serve.proc.poll() is None and time.monotonic() < deadline, "".join(serve.err)
            time.sleep(0.005)
        os.kill(first[0], signal.SIGKILL)
        serve.wait("exited with -9; restarting it")  # its restart waits for the load to end (an hour here)
        serve.proc.send_signal(signal.SIGTERM)
        try:
            code = serve.proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {WAIT_S:g}s after SIGTERM (waiting for the load to fork); stderr:\n"
                        f"{''.join(serve.err)}")  # fmt: skip
        assert code == 0, "".join(serve.err)
        assert not [pid for pid in first if alive(pid)]
        err = "".join(serve.err)
        assert "forked all the same" not in err, err  # not started: the proxy stops
    finally:
        serve.end()
