"""SIGUSR1 sent to a `serve --workers N` supervisor (the word it passes to its workers for a second SIGINT, which
anyone may send it as it is): the workers stop with their drain cut short, as a single `serve` sent SIGUSR1 does.
Sent alone it stops the proxy (nothing listening from then on); sent while a SIGTERM's drain runs it cuts that
drain short. Either way the call still running ends then, recorded as `drain_timeout`, and the proxy exits 0."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_cli import GatedStream
from tests.test_workers import WAIT_S, Serve
from tests.test_workers_second_sigint import CONFIG


@pytest.mark.parametrize("first", [None, signal.SIGTERM], ids=["alone", "after-sigterm"])
def test_sigusr1_to_the_supervisor_stops_the_workers_with_their_drain_cut_short(  # type: ignore[no-untyped-def]
    vllm, loop_thread, tmp_path: Path, first: signal.Signals | None
) -> None:
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
        if first is not None:
            serve.proc.send_signal(first)
            serve.wait("stopping: draining", 2)  # each worker
        serve.proc.send_signal(signal.SIGUSR1)
        try:
            code = serve.proc.wait(15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"SIGUSR1 did not stop the workers with their drain cut short; stderr:\n{''.join(serve.err)}")
        assert code == 0, "".join(serve.err)
        assert len(serve.wait("SIGUSR1 (a second SIGINT to the supervisor, or sent as it is)", 2)) == 2  # each worker
        serve.wait("1 HTTP call(s) still running were cut off (cut short by SIGUSR1")  # not "a second SIGINT"
        access = [line for line in serve.err if "lineage_proxy.access" in line]
        assert len(access) == 1 and "code=drain_timeout" in access[0], access
        assert serve.children() == []
    finally:
        for _ in range(8):
            server.release(loop_thread.loop)
        serve.end()
        if stream is not None:
            stream.thread.join(WAIT_S)
