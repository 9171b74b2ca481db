"""A store that refuses writes until the proxy stops (its file removed while serving, a disk full) leaves counts
that never reach it. The line a stop logged said how many flows ("3 flows' counts could not be written before
shutdown"), not how many calls: an operator reconciling the store with the spans or access lines could not tell
how many calls the store is missing. It names the calls too.

The rows of a failed write go back to the batch on the loop (the writer thread posts them there): a stop that found
the writer done with the store before it looked (the writer's thread ran the last flush and the close while the
loop's waited for a core: a loaded machine) read the batch before they were back, and said nothing of them. A stop
that gave up on the store's writes (its close not done within the wait) said those queued are lost, and nothing of the
calls held in the batch: they are named there too."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.record import edges as edges_module
from proxy.record.edges import EdgeAggregator
from proxy.record.store import SqliteStore
from tests.configs import ONE_UPSTREAM_STORED
from tests.harness import LoopThread
from tests.record.test_edges_forgotten import flow
from tests.servers.vllm_like import SERVED


def chat(base: str, labels: str) -> None:
    reply = httpx.post(f"{base}/v1/chat/completions", timeout=10,
                       headers={"x-purpose": "assistant", "x-data-labels": labels},
                       json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.status_code == 200


def test_a_stop_names_the_calls_its_store_never_took(vllm, make_proxy, loop_thread, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    where = tmp_path / "store"
    where.mkdir()
    proxy = make_proxy(ONE_UPSTREAM_STORED, UPSTREAM=upstream, STORE=str(where / "lineage.db"))
    chat(proxy.url, "before")
    (where / "lineage.db").rename(where / "elsewhere.db")  # from now on every write fails
    for labels in ["one", "two", "two", "three", "three", "three", "before"]:
        chat(proxy.url, labels)
    with caplog.at_level("ERROR", logger="lineage_proxy.edges"):
        loop_thread.run(proxy.process.stop())
    (said,) = [r.getMessage() for r in caplog.records if "could not be written before shutdown" in r.getMessage()]
    assert said == (
        "lineage store: 4 flows' counts, 7 calls, could not be written before shutdown and are lost from the "
        "store (their spans and access lines, where telemetry and logging.access write them, are not)"
    ), said
    # (the config writes neither spans nor access lines: the line said "each call's span and access line remain")


class ClosesFirst(concurrent.futures.ThreadPoolExecutor):
    """The aggregator's writer, which runs the store's close (and so every write queued before it) before the stop that
    handed it over looks whether it is done: what a loaded machine does now and then (the stop's thread waiting for
    a core while the writer's runs), here every time."""

    def __init__(self, close: Callable[[], None]) -> None:
        super().__init__(max_workers=1, thread_name_prefix="edge-writer")
        self._close = close

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        if fn == self._close:
            concurrent.futures.wait([future])
        return future


class ClosesLate(concurrent.futures.ThreadPoolExecutor):
    """The aggregator's writer, whose store's close does not end until `closes` is set (after the stop): a close the
    stop gives up on. The writes queued before it have ended by the time it begins."""

    def __init__(self, close: Callable[[], None]) -> None:
        super().__init__(max_workers=1, thread_name_prefix="edge-writer")
        self._close = close
        self.closes = threading.Event()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        if fn != self._close:
            return super().submit(fn, *args, **kwargs)

        def late() -> None:
            self.closes.wait(30.0)  # (a bound, never reached: set once the stop has given up)
            fn()

        return super().submit(late)


def _refused_stop(
    writer: Callable[[Callable[[], None]], concurrent.futures.ThreadPoolExecutor],
    loop_thread: LoopThread,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> list[str]:
    """A stop of an aggregator on `writer`, its store refusing 4 flows' counts, 7 calls: the ERROR lines it logs."""
    store = SqliteStore(tmp_path / "lineage.db")
    aggregator = EdgeAggregator(store, flush_interval_s=3600.0)
    aggregator._writer = writer(store.close)

    async def start() -> None:
        aggregator.start()

    async def count(numbers: list[int]) -> None:
        for n in numbers:
            written = aggregator.add(flow(n))
            if written is not None:  # a new flow's first write, as its call waits for it
                await asyncio.gather(asyncio.wrap_future(written), return_exceptions=True)

    loop_thread.run(start())
    loop_thread.run(count([0]))
    (tmp_path / "lineage.db").rename(tmp_path / "elsewhere.db")  # from now on every write fails
    loop_thread.run(count([1, 2, 2, 3, 3, 3, 0]))
    with caplog.at_level(logging.ERROR, logger="lineage_proxy.edges"):
        try:
            loop_thread.run(aggregator.stop())
        finally:
            if isinstance(aggregator._writer, ClosesLate):
                aggregator._writer.closes.set()
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_stop_whose_writer_closed_the_store_before_it_looked_names_the_calls_too(
    loop_thread: LoopThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    said = _refused_stop(ClosesFirst, loop_thread, tmp_path, caplog)
    (unwritten,) = [line for line in said if "could not be written before shutdown" in line]
    assert unwritten.startswith("lineage store: 4 flows' counts, 7 calls, could not be written before shutdown"), said


@pytest.mark.interpreted  # patches STOP_WAIT_S, which a compiled module reads directly (tests/conftest.py)
def test_a_stop_that_gave_up_on_the_stores_close_names_the_calls_it_held_too(
    loop_thread: LoopThread, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edges_module, "STOP_WAIT_S", 0.5, raising=False)
    said = _refused_stop(ClosesLate, loop_thread, tmp_path, caplog)
    (gave_up,) = [line for line in said if "shutdown gave up on the store's writes" in line]
    assert gave_up.startswith("lineage store: shutdown gave up on the store's writes after 0.5s"), said
    (unwritten,) = [line for line in said if "could not be written before shutdown" in line]
    assert unwritten.startswith("lineage store: 4 flows' counts, 7 calls, could not be written before shutdown"), said


class WritesLate(ClosesLate):
    """`ClosesLate`, whose writes submitted once `armed` is set begin when `closes` is set, too: the stop's last flush
    still running when the stop gives up, failing after it (a database that answers after the wait)."""

    def __init__(self, close: Callable[[], None]) -> None:
        super().__init__(close)
        self.armed = threading.Event()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        if fn == self._close or not self.armed.is_set():
            return super().submit(fn, *args, **kwargs)

        def late() -> Any:
            self.closes.wait(30.0)  # (a bound, never reached)
            return fn(*args, **kwargs)

        return concurrent.futures.ThreadPoolExecutor.submit(self, late)


@pytest.mark.interpreted  # patches STOP_WAIT_S, which a compiled module reads directly (tests/conftest.py)
def test_a_write_that_fails_after_the_stop_gave_up_on_it_names_its_calls(
    loop_thread: LoopThread, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stop's last flush still running when the stop gave up: its rows, put back in the batch when it failed,
    were read by nothing (the stop had said what it held); the general "those still queued are lost" was all."""
    monkeypatch.setattr(edges_module, "STOP_WAIT_S", 0.5, raising=False)
    store = SqliteStore(tmp_path / "lineage.db")
    aggregator = EdgeAggregator(store, flush_interval_s=3600.0)
    writer = WritesLate(store.close)
    aggregator._writer = writer

    async def start() -> None:
        aggregator.start()

    async def count(numbers: list[int]) -> None:
        for n in numbers:
            written = aggregator.add(flow(n))
            if written is not None:
                await asyncio.gather(asyncio.wrap_future(written), return_exceptions=True)

    loop_thread.run(start())
    loop_thread.run(count([0, 1, 2]))  # three flows written
    loop_thread.run(count([0, 1, 1, 2, 2, 2]))  # batched: the stop's last flush, 3 flows, 6 calls
    (tmp_path / "lineage.db").rename(tmp_path / "elsewhere.db")  # that flush fails
    writer.armed.set()
    with caplog.at_level(logging.ERROR, logger="lineage_proxy.edges"):
        try:
            loop_thread.run(aggregator.stop())
        finally:
            writer.closes.set()
        writer.shutdown(wait=True)  # the flush has failed and the close run
        loop_thread.run(edges_module._posted_before(aggregator._loop))  # (a row put back is in the batch now)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("shutdown gave up on the store's writes" in line for line in said), said
    (lost,) = [line for line in said if "a write still running when the shutdown gave up" in line]
    assert lost.endswith(
        "3 flows' counts, 6 calls, are lost from the store (their spans and access lines, where "
        "telemetry and logging.access write them, are not)"
    )
    assert not any("calls go on" in line for line in said), said  # (no longer: the proxy has stopped)
    assert aggregator._pending == {}, "put back where nothing reads it"
