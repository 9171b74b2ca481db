"""`serve --workers N` whose supervisor is killed (SIGKILL, the OOM killer): its workers stop, draining as a
SIGTERM makes them, and the proxy started again on the same address and store serves. The workers used to
serve on for ever on their own, unsupervised, and the next `serve` was refused: "address already in use"."""

from __future__ import annotations

import contextlib
import os
import select
import signal
from pathlib import Path

from tests.harness import dead_port
from tests.servers.vllm_like import VllmLike
from tests.test_workers import WAIT_S, Serve, chat

CONFIG = """
listen: {http: "127.0.0.1:PORT"}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"}
limits: {drain_timeout_s: 2}
"""


def gone(pid: int, timeout: float) -> bool:
    """Whether process `pid` (not a child of this one) has ended within `timeout` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)  # a pidfd turns readable as its process ends
        return bool(readable)
    finally:
        os.close(fd)


def test_the_workers_of_a_killed_supervisor_stop_and_the_proxy_starts_again(  # type: ignore[no-untyped-def]
    vllm: tuple[VllmLike, str], tmp_path: Path
) -> None:
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("PORT", str(dead_port())).replace("UPSTREAM", upstream)
                      .replace("STORE", str(tmp_path / "lineage.db")))  # fmt: skip
    first = Serve.workers(config)
    second: Serve | None = None
    workers: list[int] = []
    try:
        url = f"http://{first.ready()['http']}"
        assert chat(url) == 200
        workers = first.children()
        assert len(workers) == 2
        first.proc.kill()
        first.proc.wait(WAIT_S)
        assert all(gone(pid, WAIT_S) for pid in workers), "the workers serve on without their supervisor"
        second = Serve.workers(config)
        assert f"http://{second.ready()['http']}" == url
        assert chat(url) == 200
        assert second.stop() == 0, "".join(second.err)
    finally:
        for pid in workers:  # no longer the supervisor's children once it is gone
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        first.end()
        if second is not None:
            second.end()
