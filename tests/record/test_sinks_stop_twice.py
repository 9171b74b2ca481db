"""Stopping the record twice: a SIGTERM's drain racing a second signal, a reload failing mid-way then a
stop, a test that stops a proxy its fixture stops again. The second stop waits for the first (one after
the other, or both at once), logs nothing and loses nothing the first one wrote."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.transport import Transport

from proxy.config.model import OpenLineage
from proxy.flow import ALLOW, Call, Decision, Outcome, TraceContext
from proxy.record import openlineage
from proxy.record.access import AccessRecorder
from proxy.record.edges import EdgeAggregator
from proxy.record.openlineage import OpenLineageRecorder
from proxy.record.sinks import FanOut
from proxy.record.store import EdgeKey, SqliteStore
from tests.harness import LoopThread
from tests.record.test_edges import CONFIG, chat, rows
from tests.servers.vllm_like import ROOT

FIRST = EdgeKey("anonymous", "assistant", "team-a", "ckpt", "team-a", "allow", "")
SECOND = FIRST._replace(caller="other")


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]


def recorded(loop_thread: LoopThread, path: Path) -> tuple[FanOut, EdgeAggregator]:
    """A fan-out with the edges sink on a real SQLite store, two flows counted: one written through, the
    other's later calls and the first's still batched in memory (the stop writes those)."""
    aggregator = EdgeAggregator(SqliteStore(path), flush_interval_s=3600.0)
    sinks = FanOut([aggregator, AccessRecorder()])

    async def record() -> None:
        sinks.start()
        for key, calls in ((FIRST, 3), (SECOND, 2)):
            for _ in range(calls):
                written = aggregator.add(key)
                if written is not None:
                    await asyncio.wrap_future(written)

    loop_thread.run(record())
    return sinks, aggregator


def test_a_second_stop_logs_nothing_and_loses_nothing(loop_thread, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    sinks, _ = recorded(loop_thread, tmp_path / "lineage.db")
    with caplog.at_level(logging.WARNING):
        loop_thread.run(sinks.stop())
        loop_thread.run(sinks.stop())
    assert problems(caplog) == []
    assert rows(tmp_path / "lineage.db") == {tuple(FIRST): 3, tuple(SECOND): 2}


def test_two_stops_at_once_both_wait_for_the_writes(loop_thread, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    sinks, aggregator = recorded(loop_thread, tmp_path / "lineage.db")

    async def both() -> None:
        second = asyncio.get_running_loop().create_task(aggregator.stop())
        await sinks.stop()
        await second

    with caplog.at_level(logging.WARNING):
        loop_thread.run(both())
    assert problems(caplog) == []
    assert rows(tmp_path / "lineage.db") == {tuple(FIRST): 3, tuple(SECOND): 2}


def test_a_proxy_stopped_twice_logs_nothing(vllm, make_proxy, loop_thread, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """The running proxy's record (edges, spans off, access, timings), stopped by the test and then by the
    `make_proxy` fixture's teardown, as many tests do."""
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    for text in ("one", "two"):
        assert chat(proxy.url, text, labels="team-a").status_code == 200
    with caplog.at_level(logging.WARNING):
        loop_thread.run(proxy.process.stop())
        loop_thread.run(proxy.process.stop())
    assert problems(caplog) == []
    assert rows(tmp_path / "lineage.db") == {("anonymous", "assistant", "team-a", ROOT, "team-a", "allow", ""): 2}


class HungTransport(Transport):
    """A backend that does not answer: `emit` blocks until the test lets it go."""

    kind = "hung"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.go = threading.Event()
        self.events: list[Any] = []

    def emit(self, event: Any) -> None:
        self.entered.set()
        assert self.go.wait(60)
        self.events.append(event)


def test_an_openlineage_sink_on_a_hung_backend_stopped_twice_says_once_what_it_did_not_send(
    loop_thread, monkeypatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    """The second stop waited for the stuck sender again and logged the unsent events a second time."""
    monkeypatch.setattr(openlineage, "STOP_WAIT_S", 0.05)  # the stop gives up on the sender (it is stuck)
    transport = HungTransport()
    sink = OpenLineageRecorder(OpenLineage(snapshot_interval_s=3600.0), transport=transport)
    call = Call("openai", "chat", "m", TraceContext(trace_id=1, span_id=2))

    async def record() -> None:
        sink.start()
        sink.on_end(call, Decision(ALLOW, None, labels=frozenset({"team-a"})), Outcome(started_ns=1), frozenset())

    loop_thread.run(record())
    assert transport.entered.wait(30)  # the new flow's event: the sender is stuck in it
    try:
        with caplog.at_level(logging.WARNING):
            loop_thread.run(sink.stop())
            loop_thread.run(sink.stop())
        said = [line for line in problems(caplog) if "not sent" in line]
        assert len(said) == 1, said
    finally:
        transport.go.set()
