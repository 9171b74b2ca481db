"""`serve --workers N` told to stop by SIGINTs sent to the supervisor alone (`kill -INT`, `docker kill -s INT`,
a process manager signalling the main process): the second cuts the drain short, as it does for one process
(README: "a second Ctrl-C (SIGINT) cuts the drain short"). The supervisor passed every SIGINT on as a SIGTERM,
and a worker counts SIGINTs alone (a terminal's Ctrl-C reaches each worker beside the supervisor's SIGTERM),
so the second did nothing: the drain ran its whole `drain_timeout_s` and the call was not cut."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_cli import GatedStream
from tests.test_workers import WAIT_S, Serve

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"}
logging: {access: true}
limits: {drain_timeout_s: 60}
"""


def test_a_second_sigint_to_the_supervisor_cuts_the_workers_drain_short(vllm, loop_thread, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db")))
    serve = Serve.workers(config, env={"TMPDIR": str(tmp_path)})
    stream = None
    try:
        addresses = serve.ready()
        seen = len(server.requests)
        stream = GatedStream(f"http://{addresses['http']}")  # never released: the drain would last its 60 s
        deadline = time.monotonic() + WAIT_S
        while len(server.requests) == seen and time.monotonic() < deadline:  # the call is at the upstream
            time.sleep(0.01)
        assert len(server.requests) > seen, "".join(serve.err)
        serve.proc.send_signal(signal.SIGINT)
        serve.wait("stopping: draining", 2)  # each worker
        serve.proc.send_signal(signal.SIGINT)
        try:
            code = serve.proc.wait(15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"a second SIGINT did not cut the drain short; stderr:\n{''.join(serve.err)}")
        assert code == 0, "".join(serve.err)
        # the worker was sent SIGUSR1, the supervisor's word for it: its line names both
        serve.wait("1 HTTP call(s) still running were cut off (cut short by SIGUSR1 (a second SIGINT to the supervisor")
        access = [line for line in serve.err if "lineage_proxy.access" in line]
        assert len(access) == 1 and "code=drain_timeout" in access[0], access
    finally:
        for _ in range(8):
            server.release(loop_thread.loop)
        serve.end()
        if stream is not None:
            stream.thread.join(WAIT_S)
