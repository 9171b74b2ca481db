"""A sending thread that failed (`OpenLineageRecorder._send_loop`: what no send raises, a transport's SystemExit, a
bug) sends nothing more, yet left its transport open for good: openlineage-python's async_http transport runs a thread
of its own, with its event loop and its HTTP client's connection to the backend, until its `close()`, which only the
sender's clean end called. Every reload that retired such a recorder (SIGHUP, lineage.openlineage changed) left one
more thread and socket behind, for the process's life. Now the failed sender closes its transport at once."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from openlineage.client.transport.async_http import AsyncHttpTransport

from tests.harness import LoopThread
from tests.record.test_openlineage import Marquez, chat, config, marquez, metric


class SendsThenExits(AsyncHttpTransport):
    """openlineage-python's async_http transport by dotted path, whose emit hands the event over (its worker posts
    it) and then ends the thread it runs on (a library's sys.exit)."""

    kind = "sends-then-exits"

    def emit(self, event: Any) -> None:
        super().emit(event)
        raise SystemExit(3)


def _workers() -> int:
    """The async_http transports' own threads alive (each named after its target, `_setup_loop`)."""
    return sum(1 for thread in threading.enumerate() if thread.name.endswith("(_setup_loop)"))


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


RELOADS = 5
__all__ = ["marquez"]  # the fixture, imported


def test_a_failed_sender_closes_its_transport_across_reloads(
    vllm: Any, marquez: tuple[Marquez, str], make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    _, upstream = vllm
    backend, url = marquez

    def settings(interval: int) -> str:  # a spool each: no recorder sends the one it replaced spooled
        transport = f'{{type: {__name__}.SendsThenExits, url: "{url}"}}'
        return config(
            f"{{transport: {transport}, snapshot_interval_s: {interval}, spool: {tmp_path / f'spool-{interval}'}}}"
        )

    workers, fds = _workers(), _fds()
    proxy = make_proxy(settings(600), UPSTREAM=upstream)
    path = tmp_path / "reloaded.yaml"

    async def reload() -> bool:
        return proxy.process.reload(str(path))

    for reloads in range(RELOADS + 1):
        chat(proxy)  # the recorder's new flow: its event goes out, then its sender fails
        backend.wait_for(reloads + 1)
        if reloads == RELOADS:
            break
        # a new recorder, each time: the one it replaces stopped
        text = (
            settings(601 + reloads).replace("${UPSTREAM}", upstream).replace("${STORE}", str(tmp_path / "lineage.db"))
        )
        path.write_text(text)
        assert loop_thread.run(reload())
    assert metric(proxy, "lineage_proxy_openlineage_outages_total") == RELOADS + 1
    loop_thread.run(proxy.process.stop())
    # before: 6 threads and 33 descriptors more (each transport's event loop, its wakeup pipe, its connection to the
    # backend); the 2 or so left now are the test's own clients' connections (the openai SDK's, not closed)
    assert _workers() - workers == 0
    assert _fds() - fds < RELOADS, _fds() - fds
