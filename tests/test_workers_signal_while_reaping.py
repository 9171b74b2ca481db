"""A stop signal that a `serve --workers N` supervisor takes as it reaps a worker that ended, between the `waitpid` that
reaped it and multiprocessing's noting its exit code: its handler, passing the signal on, found the worker alive still
(`is_alive` saw no exit code, its own `waitpid` nothing to reap) and sent it to a pid gone, and the ProcessLookupError it
raised came out where the handler had interrupted `waitpid`'s caller, multiprocessing's `poll`, which takes any OSError
for "not exited yet": the worker's exit code was never noted, and the supervisor waited for that worker for good (the
workers after it in its list not told to stop either). The clean-clone CI run met it once, its SIGUSR1 taken as the
watchdog's kill was reaped (test_workers_stalled_draining.py). Here the signal is raised at that point (a real
`serve --workers 2`, `os.waitpid` wrapped in its supervisor): it stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_workers import WAIT_S, Serve, alive, config_file

# the supervisor, `os.waitpid` wrapped: the first worker it reaps, a signal comes right after (before Python noted it)
REAPING = """
import logging, os, signal, sys
from proxy import workers
from proxy.config import load

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(processName)s: %(message)s")
supervisor, real, raised = os.getpid(), os.waitpid, []

def waitpid(pid, options):
    got = real(pid, options)
    if os.getpid() == supervisor and got[0] == pid and not raised:
        raised.append(pid)
        print(f"reaped {pid}: raising {sys.argv[2]}", file=sys.stderr, flush=True)
        signal.raise_signal(getattr(signal, sys.argv[2]))  # its handler runs here, before this returns
    return got

os.waitpid = waitpid
sys.exit(workers.run_workers(sys.argv[1], load(sys.argv[1]), 2))
"""


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGUSR1"])
def test_a_stop_signal_taken_as_a_dead_worker_is_reaped_stops_the_proxy(vllm, tmp_path: Path, signum: str) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    serve = Serve([sys.executable, "-c", REAPING, str(config_file(tmp_path, upstream)), signum])
    try:
        serve.wait("lineage-proxy ready", out=True)
        workers = serve.children()
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)  # it died: the supervisor reaps it
        serve.wait(f"reaped {workers[0]}: raising {signum}")
        try:
            code = serve.proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:  # before: for good (the reaped worker's exit code never noted)
            pytest.fail(f"still running {WAIT_S:g}s after {signum}; workers alive: "
                        f"{[pid for pid in serve.children() if alive(pid)]}; stderr:\n{''.join(serve.err)}")  # fmt: skip
        assert code == 0, "".join(serve.err)
        assert not [pid for pid in workers if alive(pid)]
        assert "Traceback" not in "".join(serve.err), "".join(serve.err)
    finally:
        serve.end()
