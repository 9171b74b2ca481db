"""A `serve --workers N` worker whose event loop stalls while it drains (SIGSTOP here; a loop blocked on a hung file
system the same) held the stop for good: it cleared its beat slot as it stopped accepting, so the supervisor's watchdog
no longer watched it, and the supervisor waited for a worker that could not end its drain. A draining worker is still
watched (readiness no longer counts it: it takes no connections): killed once its loop has not turned for
`limits.worker_stall_s`, and the stop ends. A real `serve --workers 2`."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import orjson
import pytest

from tests.test_workers import WAIT_S, Serve, alive
from tests.test_workers_stalled_restarted import CONFIG, ROOT, STALL_S, in_flight, slow_call


def state(pid: int) -> str:
    """A process's state letter and the kernel function it sleeps in (/proc), for a failure's message."""
    try:
        return f"{Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]} in {Path(f'/proc/{pid}/wchan').read_text()}"
    except OSError as exc:
        return f"gone ({exc.strerror})"


def test_a_worker_stalled_in_its_drain_is_killed_and_the_stop_ends(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db"))
                      .replace("STALL", str(STALL_S)).replace("drain_timeout_s: 2", "drain_timeout_s: 60"))  # fmt: skip
    serve = Serve.workers(config, env={"PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)})
    outcomes: list[str] = []
    threads: list[threading.Thread] = []
    try:
        addresses = serve.ready()
        workers = serve.children()
        assert len(workers) == 2
        calls = 4
        threads = [threading.Thread(target=slow_call, args=(addresses["http"], outcomes)) for _ in range(calls)]
        for thread in threads:
            thread.start()
        held = in_flight(tmp_path, workers, calls)
        draining = max(workers, key=lambda pid: held[pid])  # (at least 2 of the 4 calls: its drain waits for them)
        serve.proc.send_signal(signal.SIGTERM)
        begun = serve.wait("stopping: draining in-flight calls", 2)  # each worker, as its drain begins
        assert draining in {orjson.loads(line)["pid"] for line in begun}, begun
        os.kill(draining, signal.SIGSTOP)  # its loop stalls mid-drain (its drain would wait 60 s for its calls)
        # before: never said (the supervisor waited for it for good, a second stop signal or not)
        said = orjson.loads(serve.wait("killed with SIGKILL")[0])["message"]
        assert f"(pid {draining}) has not turned its event loop" in said, said
        assert "the proxy is stopping: it is not restarted." in said, said
        serve.proc.send_signal(signal.SIGUSR1)  # the other worker's drain cut short: its slow calls would hold 60 s
        try:
            code = serve.proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:  # why it did not end: its processes, and every line they wrote
            left = {pid: state(pid) for pid in serve.children()}
            pytest.fail(f"the supervisor still runs {WAIT_S:g}s after SIGUSR1 (its state {state(serve.proc.pid)}); "
                        f"its workers left (pid: state): {left}; stderr:\n{''.join(serve.err)}")  # fmt: skip
        assert code == 0, "".join(serve.err)
        assert not alive(draining)
    finally:
        serve.end()
        for thread in threads:
            thread.join(WAIT_S)
