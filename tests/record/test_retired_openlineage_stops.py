"""The stop of an OpenLineage sink a reload retired (SIGHUP, lineage.openlineage changed: `FanOut.stop_retired`), in
the cases the last sitting checked by hand only: a stop that gives up on a sender a hung backend holds (past
STOP_WAIT_S), and a flush under way as the reload retires the sink. (A retired sink's stop that raises is counted:
tests/record/test_sink_failures_counted.py.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.config.model import Config
from proxy.metrics import Metrics
from proxy.record import openlineage
from proxy.record.openlineage import OpenLineageRecorder
from proxy.record.sinks import Recorder
from proxy.server import ProxyProcess
from tests.harness import LoopThread, ProxyHandle, start_app
from tests.held import until
from tests.record.test_openlineage import HeldMarquez, Marquez, chat, config, marquez, sink, spooled_runs
from tests.record.test_sink_failures_counted import Flaky

__all__ = ["marquez"]  # the fixture, imported


@pytest.fixture
def held(loop_thread: LoopThread) -> Iterator[tuple[HeldMarquez, str]]:
    """A backend that takes each request and answers it only once `hold` is set."""
    server = HeldMarquez()

    async def holding() -> None:
        server.hold = asyncio.Event()

    loop_thread.run(holding())
    runner, port = loop_thread.run(start_app(server.app()))
    yield server, f"http://127.0.0.1:{port}"
    release(loop_thread, server)
    loop_thread.run(runner.cleanup())


def release(loop_thread: LoopThread, server: Marquez) -> None:
    if server.hold is not None:
        loop_thread.loop.call_soon_threadsafe(server.hold.set)


def reload_to(proxy: ProxyHandle, loop_thread: LoopThread, tmp_path: Path, text: str, upstream: str) -> None:
    path = tmp_path / "reloaded.yaml"
    path.write_text(text.replace("${UPSTREAM}", upstream).replace("${STORE}", str(tmp_path / "lineage.db")))

    async def reload() -> bool:
        return proxy.process.reload(str(path))

    assert loop_thread.run(reload())


def test_a_retired_sink_whose_backend_hangs_past_the_stop_s_wait_ends_once_the_backend_answers(
    vllm: Any, held: tuple[HeldMarquez, str], marquez: tuple[Marquez, str], make_proxy: Any,
    loop_thread: LoopThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The stop gives up on the sender the hung backend holds (its marker not queued: the queue is full), spools what
    it had and lets the reload go on; once the backend answers, the sender ended only when the stop's marker was
    queued: with a full queue it waited for an item for good, its transport (its connection) open, a thread more
    each such reload. Now it ends once the stop has taken what it had and the queue is empty."""
    monkeypatch.setattr(openlineage, "STOP_WAIT_S", 0.2)
    monkeypatch.chdir(tmp_path)  # the default spool
    _, upstream = vllm
    backend, url = held
    _, other = marquez
    proxy = make_proxy(config(f'{{url: "{url}", snapshot_interval_s: 600, queue_size: 1}}'), UPSTREAM=upstream)
    old = sink(proxy)
    chat(proxy)
    assert backend.arrived.wait(10)  # the sender is held in the first new flow's event
    chat(proxy, **{"x-data-labels": "health"})  # the second's waits in the queue, full
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        reload_to(proxy, loop_thread, tmp_path, config(f'{{url: "{other}", snapshot_interval_s: 600}}'), upstream)
        assert until(lambda: any("at shutdown" in r.getMessage() for r in caplog.records))
    (line,) = [r.getMessage() for r in caplog.records if "at shutdown" in r.getMessage()]
    assert line.startswith("openlineage: 2 events not sent to http "), line
    assert line.endswith("at shutdown, and the counts of 2 flows (2 calls)"), line
    spooled = [("health,user-interaction", 1), ("user-interaction", 1)]
    assert until(lambda: sorted(spooled_runs().values()) == spooled), spooled_runs()  # written after the line
    assert sink(proxy) is not old
    release(loop_thread, backend)
    assert until(lambda: not old._thread.is_alive()), "the retired sender waits for good"
    assert old._transport is None  # closed
    # the new flows' events, the second too: sent late, as a stuck sender's are (test_openlineage.py)
    assert len(backend.events) == 2


class Gate(Flaky):
    """A sink whose flush waits until `open` is set, saying when it began: a flush under way."""

    name = "gate"

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.open = asyncio.Event()

    async def flush(self) -> None:
        self.entered.set()
        await self.open.wait()


def test_a_sink_retired_by_a_reload_while_the_sinks_flush_lets_the_flush_end(
    vllm: Any, marquez: tuple[Marquez, str], make_proxy: Any, loop_thread: LoopThread, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The fan-out's flush reaches each sink in turn; one a reload retired (and stopped) meanwhile is flushed after
    its stop: its flush waited for good for a sender that had ended (its marker queued where none reads it)."""
    _, upstream = vllm
    backend, url = marquez
    gate = Gate()
    built = ProxyProcess._sinks

    def with_gate(config: Config, metrics: Metrics) -> list[Recorder]:
        sinks = built(config, metrics)
        return [*sinks[:-1], gate, sinks[-1]]  # before openlineage's

    monkeypatch.setattr(ProxyProcess, "_sinks", staticmethod(with_gate))
    monkeypatch.chdir(tmp_path)  # the default spool
    proxy = make_proxy(config(f'{{url: "{url}", snapshot_interval_s: 600}}'), UPSTREAM=upstream)
    old = sink(proxy)
    chat(proxy)
    backend.wait_for(1)
    flushing = asyncio.run_coroutine_threadsafe(proxy.process.runtime.sinks.flush(), loop_thread.loop)

    async def entered() -> None:
        await gate.entered.wait()

    loop_thread.run(entered())
    reload_to(proxy, loop_thread, tmp_path, config(f'{{url: "{url}", snapshot_interval_s: 601}}'), upstream)
    assert until(lambda: not old._thread.is_alive())  # stopped: its count went out
    assert isinstance(old, OpenLineageRecorder) and sink(proxy) is not old
    loop_thread.loop.call_soon_threadsafe(gate.open.set)
    flushing.result(10)  # (waited for good)
    assert len(backend.wait_for(2)) == 2  # the new flow's event and its count, sent at the stop


def test_a_flush_waiting_for_room_as_the_stop_gives_up_ends_its_counts_counted_dropped(
    vllm: Any, held: tuple[HeldMarquez, str], make_proxy: Any, loop_thread: LoopThread, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A flush already waiting for room in the full queue (the backend hangs) when the stop gives up on the sender:
    the stop spooled what it found, not the counts the flush held; the flush waited as long as the backend hung, then
    queued them where the sender, the stop's taking done, only held them: lost, unsaid, uncounted. Now the flush ends
    as the stop takes what is not sent, its counts counted dropped and said."""
    monkeypatch.setattr(openlineage, "STOP_WAIT_S", 0.2)
    monkeypatch.chdir(tmp_path)  # the default spool
    _, upstream = vllm
    backend, url = held
    proxy = make_proxy(config(f'{{url: "{url}", snapshot_interval_s: 600, queue_size: 1}}'), UPSTREAM=upstream)
    recorder = sink(proxy)
    try:
        chat(proxy)
        assert backend.arrived.wait(10)  # the sender is held in the first new flow's event
        chat(proxy, **{"x-data-labels": "health"})  # the second's waits in the queue, full
        dropped = recorder.counts["dropped"]
        flushing = asyncio.run_coroutine_threadsafe(recorder.flush(), loop_thread.loop)
        assert until(lambda: not recorder._window)  # the flush has the window's counts, waiting for room
        with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
            loop_thread.run(recorder.stop())  # gives up on the sender
            flushing.result(10)  # (waited until the backend answered)
        assert recorder.counts["dropped"] - dropped == 2  # the two flows' count events (were lost uncounted)
        (said,) = [r.getMessage() for r in caplog.records if "a flush" in r.getMessage()]
        assert said.startswith("openlineage: the counts of 2 flows (2 calls) a flush was queueing for http ")
    finally:
        release(loop_thread, backend)
    assert until(lambda: not recorder._thread.is_alive())
