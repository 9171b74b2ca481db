"""`lineage-proxy serve` told to stop while it starts, as real processes: a SIGTERM/SIGINT that comes at
any point of the start (the config loading, modules importing, ports claimed and bound, workers forked)
stops it cleanly, exit 0, nothing left behind; a SIGTERM sent to one starting worker alone has it
started again."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proxy.config import load
from proxy.workers import claim, release
from tests.harness import LoopThread, dead_port, serving
from tests.test_workers import WAIT_S, Serve, SlowMetadata, alive, chat, config_file

CONFIG = """
listen: {http: "127.0.0.1:HTTP", admin: "127.0.0.1:ADMIN"}
upstreams: [{name: m, url: "http://127.0.0.1:DEAD"}]
routes: [{model: "*", upstream: m}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"}
limits: {drain_timeout_s: 2}
"""


def _sig_bits(pid: int, field: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1], 16)
    return 0


def _serve_began(proc: subprocess.Popen[str]) -> None:
    """Once `serve` runs its first line: it ignores SIGHUP from there until its config is loaded. Before
    that, Python itself is starting, which nothing in the proxy can hold a signal for."""
    deadline = time.monotonic() + WAIT_S
    while not _sig_bits(proc.pid, "SigIgn") & (1 << (signal.SIGHUP - 1)):
        assert proc.poll() is None and time.monotonic() < deadline, "serve never began"
        time.sleep(0.0005)


def _ours(config: Path) -> list[int]:
    """Live processes whose command line names this config: the supervisor and every worker it forked."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if str(config).encode() in cmdline.read_bytes() and alive(int(cmdline.parent.name)):
                found.append(int(cmdline.parent.name))
    return found


def _nothing_listens(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_stop_at_any_point_of_the_start_exits_0_and_leaves_nothing(tmp_path: Path, workers: str) -> None:
    """SIGTERM (and SIGINT) sent right as `serve` begins, then at growing offsets until the proxy says
    ready first. One that came before the serving code's handler was in (the config loading, the proxy's
    modules importing: ~0.3 s) ended the process with the default action: exit -15, a supervisor's
    metrics directory left, its workers never told."""
    http, admin = dead_port(), dead_port()
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("HTTP", str(http)).replace("ADMIN", str(admin))
                      .replace("DEAD", str(dead_port())).replace("STORE", str(tmp_path / "lineage.db")))  # fmt: skip
    temp = tmp_path / "tmp"  # the supervisor's metrics directory is made here, and must be gone
    temp.mkdir()
    offsets = [(signal.SIGINT, 0.0)] + [(signal.SIGTERM, 0.0)] + [(signal.SIGTERM, 0.01 * 2**n) for n in range(9)]
    served_first = False
    for signum, offset in offsets:
        serve = Serve([sys.executable, "-m", "proxy", "serve", "--config", str(config), "--workers", workers],
                      env={"TMPDIR": str(temp)})  # fmt: skip
        try:
            _serve_began(serve.proc)
            time.sleep(offset)  # the point of the start the signal comes at, not a wait for anything
            serve.proc.send_signal(signum)
            try:
                code = serve.proc.wait(WAIT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{signum!r} at +{offset}s: still running; stderr:\n{''.join(serve.err)}")
            what = f"{signum!r} at +{offset}s, exit {code}; stderr:\n{''.join(serve.err)}"
            assert code == 0, what
            assert "Traceback" not in "".join(serve.err), what
            assert not _ours(config), what  # the supervisor and every worker are gone
            assert _nothing_listens(http) and _nothing_listens(admin), what
            release(claim(load(str(config))))  # no claim is held: another proxy may take these ports
            assert not list(temp.iterdir()), what
            served_first = served_first or bool(serve.out)
        finally:
            serve.end()
        if served_first:
            break
    assert served_first, "the proxy never said ready before the last signal: the offsets did not cover its start"


def test_a_sigterm_to_one_starting_worker_alone_starts_it_again(loop_thread: LoopThread, tmp_path: Path) -> None:
    """worker-1 waits for its upstream's first metadata and is sent a SIGTERM of its own (the supervisor
    is not told to stop). It stopped before serving and the whole start failed ("worker-1 exited during
    startup with 0", exit 1); now it is started again, as a worker that exits is, and both serve."""
    server = SlowMetadata()
    server.hang = True
    with serving(loop_thread, server.app()) as upstream:
        serve = Serve.workers(config_file(tmp_path, upstream))
        try:
            serve.wait("waiting up to")  # worker-1 is starting, its first probe unanswered
            (first,) = serve.children()
            os.kill(first, signal.SIGTERM)
            server.hang = False  # its replacement's probe is answered
            serve.wait("worker-1 was stopped before it served (a SIGTERM or SIGINT sent to it alone)")
            addresses = serve.ready()
            workers = serve.children()
            assert len(workers) == 2 and first not in workers, "".join(serve.err)
            assert not alive(first)
            assert chat(f"http://{addresses['http']}") == 200
            assert serve.stop() == 0, "".join(serve.err)
            assert not [pid for pid in workers if alive(pid)]
        finally:
            serve.end()


# `serve` with a finalizer run while its config loads that sends the process a SIGTERM: the handler runs
# inside it (os.kill checks for signals at once), as one can in an import's module-lock callback
LOST_RAISE = """
import os, signal, sys
import proxy.cli

load = proxy.cli._load

class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)

def _load(*args):  # (the path, and the command its problems are said under)
    Finalized()
    return load(*args)

proxy.cli._load = _load
sys.exit(proxy.cli.main(sys.argv[1:]))
"""


def test_a_stop_whose_handler_ran_in_a_finalizer_still_stops_the_start(tmp_path: Path) -> None:
    """A signal's handler runs in whatever Python code runs when it comes; in a weakref callback or a
    `__del__` (an import's module-lock callback, seen once in 276 starts) the exception it raises to stop
    the start is printed as ignored and lost: `serve` went on to serve, its SIGTERM spent and ignored, and
    never stopped. It stops before serving, exit 0, and reports no error."""
    http, admin = dead_port(), dead_port()
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("HTTP", str(http)).replace("ADMIN", str(admin))
                      .replace("DEAD", str(dead_port())).replace("STORE", str(tmp_path / "lineage.db")))  # fmt: skip
    serve = Serve([sys.executable, "-c", LOST_RAISE, "serve", "--config", str(config)])
    try:
        try:
            code = serve.proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running; stdout: {''.join(serve.out)!r}; stderr:\n{''.join(serve.err)}")
        serve.wait("stopping before serving")
        assert code == 0 and not serve.out, "".join(serve.err)
        assert "Traceback" not in "".join(serve.err) and "ignored" not in "".join(serve.err), "".join(serve.err)
        assert _nothing_listens(http) and _nothing_listens(admin)
    finally:
        serve.end()
