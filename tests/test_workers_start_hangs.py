"""`serve --workers N`: a worker whose start hangs (stopped, or its start blocked on a hung file system or a FIFO before
it serves) was counted as serving once the supervisor had waited 60 s for it, and then never watched (it has no beat):
it stayed in its slot for good, one worker fewer. Meanwhile the supervisor watched nobody else, so a serving worker
that stalled then was killed only once that wait ended. A start that has not said it serves within
`limits.worker_stall_s` and a margin is now a failed start: killed (SIGKILL), said, and started again as a failed
restart is; the others are watched meanwhile. At the proxy's start it fails the start, said, exit 1.

A real `serve --workers 2`. Its start is hung by a shim (sitecustomize): the first worker forked after a file is made
stops itself (SIGSTOP) at once, and removes the file (one worker only); the shim also makes the margin 3 s, so the
start's bound is 5 + 3 s here (an hour where a stop must not wait for it).

The start killed is counted in `lineage_proxy_worker_restarts_total{reason="start_stalled"}` (it was not counted).

A stop while a start hung waited out that bound too (60 s by default, before: always): the worker starting is now
killed once the stop's drain bound and 5 s are over."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import proxy
from tests.test_workers import WAIT_S, Serve, alive, chat
from tests.test_workers_stalled_restarted import restarts

STALL_S = 5  # limits.worker_stall_s (its least)
GRACE_S = 3.0

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: origin, url: "UPSTREAM"}]
routes: [{model: "*", upstream: origin}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"}
limits: {drain_timeout_s: 2, worker_stall_s: STALL}
"""

SITECUSTOMIZE = """
import os, signal
import proxy.workers

proxy.workers.START_GRACE_S = @GRACE@

def _hang() -> None:
    try:
        os.unlink(os.environ["LP_TEST_HANG_START"])
    except (KeyError, FileNotFoundError):
        return
    os.kill(os.getpid(), signal.SIGSTOP)

os.register_at_fork(after_in_child=_hang)
"""


def start(tmp_path: Path, upstream: str, hang: Path, grace: float = GRACE_S) -> Serve:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE.replace("@GRACE@", str(grace)))
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db"))
                      .replace("STALL", str(STALL_S)))  # fmt: skip
    root = str(Path(proxy.__file__).parents[1])  # the build this test runs
    env = {"PYTHONPATH": os.pathsep.join([str(shim), root]), "LP_TEST_HANG_START": str(hang), "TMPDIR": str(tmp_path)}
    return Serve.workers(config, 2, env)


def stopped(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


def test_a_restart_that_hangs_is_killed_and_started_again_and_the_others_are_watched(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    hang = tmp_path / "hang"
    serve = start(tmp_path, upstream, hang)
    try:
        addresses = serve.ready()
        first = serve.children()
        assert len(first) == 2, first
        hang.touch()  # the next worker forked hangs as it starts
        os.kill(first[0], 9)
        serve.wait("exited with -9; restarting it")
        deadline = time.monotonic() + WAIT_S
        hung = [pid for pid in serve.children() if pid not in first]
        while not hung or not stopped(hung[0]):
            assert time.monotonic() < deadline, f"no hung worker: {serve.children()}; {''.join(serve.err)}"
            hung = [pid for pid in serve.children() if pid not in first]
        assert not hang.exists()
        os.kill(first[1], 19)  # SIGSTOP: the other worker's loop stalls while the supervisor waits for the hung one
        said = serve.wait("has not turned its event loop")[0]  # within its 5 s, not once the wait for the start ends
        assert f"(pid {first[1]})" in said, said
        said = serve.wait("has not said it serves")[0]
        assert re.search(rf"worker-[12] \(pid {hung[0]}\) has not said it serves 8s after it was started", said), said
        assert "killed with SIGKILL; starting it again in 1s" in said, said
        assert not alive(hung[0]) and not alive(first[1])
        serve.wait("lineage_proxy: serving http=", 5)  # two workers, the supervisor, and the two replacements
        now = serve.children()
        assert len(now) == 2 and not set(now) & {*first, hung[0]}, (now, "".join(serve.err))
        assert [chat(f"http://{addresses['http']}") for _ in range(4)] == [200] * 4
        # each death counted once, by why: the start killed has its own reason (before 2026-12-03 it was not counted)
        assert restarts(addresses["http"]) == {"sigkill": 1, "exit": 0, "stalled": 1, "start_stalled": 1}
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()


def test_a_worker_that_hangs_at_the_proxys_start_fails_the_start(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    hang = tmp_path / "hang"
    hang.touch()  # worker-1 hangs as it starts
    serve = start(tmp_path, upstream, hang)
    try:
        assert serve.proc.wait(WAIT_S) == 1, "".join(serve.err)
        err = "".join(serve.err)
        assert re.search(r"worker-1 \(pid \d+\) has not said it serves 8s after it was started", err), err
        assert not serve.out  # never said ready
        assert not serve.children()
    finally:
        serve.end()


def test_a_stop_while_a_restart_hangs_ends_within_the_drain_bound(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    hang = tmp_path / "hang"
    serve = start(tmp_path, upstream, hang, grace=3600.0)  # the start's own bound is out of the question here
    try:
        serve.ready()
        first = serve.children()
        assert len(first) == 2, first
        hang.touch()
        os.kill(first[0], 9)
        serve.wait("exited with -9; restarting it")
        deadline = time.monotonic() + WAIT_S
        hung = [pid for pid in serve.children() if pid not in first]
        while not hung or not stopped(hung[0]):
            assert time.monotonic() < deadline, f"no hung worker: {serve.children()}; {''.join(serve.err)}"
            hung = [pid for pid in serve.children() if pid not in first]
        serve.proc.send_signal(15)
        assert serve.proc.wait(WAIT_S) == 0, "".join(serve.err)  # drain_timeout_s (2) + 5 s, and a margin
        said = serve.wait("after the proxy was told to stop")[0]
        assert re.search(rf"worker-[12] \(pid {hung[0]}\) was still starting [\d.]+s after the proxy was told to stop",
                         said), said  # fmt: skip
        assert not alive(hung[0]) and not alive(first[1])
    finally:
        serve.end()
