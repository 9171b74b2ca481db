"""`serve --workers N`: each worker says in memory its siblings share that it turns its event loop (`server.Beats`), so
a /readyz probe, whichever worker answers it, is 503 while one has not for `server.STALL_S`. Two windows were left:

- a worker's slot was first written by its first beat, after its HTTP, admin and gRPC listeners had started: a worker
  whose loop blocked in between took its share of the connections while its slot read pid 0 (its first start) or its
  predecessor's dead pid, and every probe said 200. Its slot now names it as its HTTP listener opens.
- a slot names a pid, checked to be a live child of the supervisor. A supervisor that is a container's pid 1 adopts
  every orphan of the container: a dead worker's pid taken by one before the restarted worker's slot is written read
  as a stalled worker (503). The slot now says when its process started, as /proc/PID/stat does, and another process
  of that pid is not it.

Driven with a clock of the test's own; this test process stands for the worker (a child of its parent, as a worker is
of its supervisor)."""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

import pytest

from proxy import markers, server
from proxy.config import Address, parse
from proxy.server import STALL_S, Bound, ProxyProcess

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/PID/stat")

CONFIG = """
listen: {http: 127.0.0.1:0, admin: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
"""
STALLED = int(STALL_S * 1e9) + 1  # ns: a loop that has not turned for this long is stalled


def clocked(workers: int) -> tuple[server.Beats, list[int]]:
    """Beats read and written by a clock the test moves: `now[0]`, in ns."""
    beats = server.Beats(workers)
    now = [10**15]
    beats.clock = lambda: now[0]
    return beats, now


def test_a_worker_is_stalled_from_the_moment_its_http_listener_opens(  # type: ignore[no-untyped-def]
    loop_thread, vllm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, upstream = vllm
    config = parse(CONFIG.replace("UPSTREAM", upstream), source="test.yaml", env=dict(os.environ))
    beats, now = clocked(2)
    monkeypatch.setattr(server, "_shared_beats", [beats])  # as `share_beats` in the supervisor, before its fork
    monkeypatch.setattr(multiprocessing.current_process(), "name", "worker-2")  # as the supervisor names it
    process = ProxyProcess(config, reuse_port=True, ports=Bound(Address("127.0.0.1", 0), None, Address("127.0.0.1", 0)))
    seen: list[list[str]] = []
    serve = ProxyProcess._serve

    async def opening(self: ProxyProcess, *args: object) -> Address:
        bound: Address = await serve(self, *args)  # type: ignore[arg-type]
        if not seen:  # its HTTP listener: the kernel gives it connections from now on
            now[0] += STALLED  # its loop blocks here (before its admin and gRPC listeners, its first beat)
            seen.append(beats.stalled(1))  # a probe worker-1 answers
        return bound

    monkeypatch.setattr(ProxyProcess, "_serve", opening)
    loop_thread.run(process.start())
    try:
        assert seen == [[f"worker-2 (pid {os.getpid()})"]]
    finally:
        loop_thread.run(process.stop())
    assert beats.stalled(1) == []  # it stopped accepting: no longer one the kernel gives connections to


def test_a_dead_workers_pid_taken_by_another_process_is_no_stalled_worker() -> None:
    beats, now = clocked(2)
    pid = os.getpid()  # a child of this process's parent, as a worker is of its supervisor
    started = markers._started(pid)
    assert started is not None
    beats.serve(2, pid, started)
    now[0] += STALLED
    assert beats.stalled(1) == [f"worker-2 (pid {pid})"]  # its loop has not turned: stalled
    beats.beat(2)
    assert beats.stalled(1) == []  # it turns again
    # worker-2, started at another time, died (its slot left as it was); its pid was taken since by another child of
    # the supervisor: an orphan it adopted as a container's pid 1
    beats.serve(2, pid, started + 1)
    now[0] += STALLED
    assert beats.stalled(1) == []
