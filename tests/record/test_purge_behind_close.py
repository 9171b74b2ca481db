"""A retention purge whose chain replay (`prepare_purge`, on the reader thread) ends as the stop begins. The replay's
future is done before its done callback has run: a stop that found it done went on, set `_closing` and queued the
store's close, while the callback, past its look at `_closing`, waited for a core; its purge was queued behind the close
and ran on the closed store (SQLite: `retention purge failed: ProgrammingError: Cannot operate on a closed database.`
at ERROR at the stop; a PostgreSQL store connects again after its close). The purge is queued before the close, or not
run (the next start purges)."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxy.record.edges import EdgeAggregator
from proxy.record.store import SqliteStore
from tests.harness import LoopThread
from tests.record.test_edges_forgotten import flow

BOUND_S = 30.0  # what the hooks wait at most for the other side (a bound, never reached: not a synchronisation)


class PurgeBehindClose(concurrent.futures.ThreadPoolExecutor):
    """The aggregator's writer, whose purge from the reader's thread (`replayed`, past its look at `_closing`) is
    queued once the stop has queued the store's close, and the close's `submit` returns once it is: what a loaded
    machine does now and then (the reader's thread waiting for a core while the stop runs), here every time."""

    def __init__(self, close: Callable[[], None]) -> None:
        super().__init__(max_workers=1, thread_name_prefix="edge-writer")
        self._close = close
        self.purging = threading.Event()  # the replay's callback submits its purge
        self.closing = threading.Event()  # the stop has queued the store's close
        self.purge_queued = threading.Event()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        if threading.current_thread().name.startswith("edge-purge-read"):
            self.purging.set()
            self.closing.wait(BOUND_S)
            future = super().submit(fn, *args, **kwargs)
            self.purge_queued.set()
            return future
        future = super().submit(fn, *args, **kwargs)
        if fn == self._close:
            self.closing.set()
            self.purge_queued.wait(BOUND_S)
        return future


class ReadsWhenLet(concurrent.futures.ThreadPoolExecutor):
    """The aggregator's reader, whose replay begins once `go` is set: after `_purge` has added its done callback, so
    the callback runs on the reader's thread, as after any replay that takes time."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="edge-purge-read")
        self.go = threading.Event()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        def when_let() -> Any:
            self.go.wait(BOUND_S)
            return fn(*args, **kwargs)

        return super().submit(when_let)


def test_a_purge_whose_replay_ends_as_the_stop_begins_never_runs_on_the_closed_store(
    loop_thread: LoopThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = SqliteStore(tmp_path / "lineage.db")
    old.upsert([(flow(1), 1.0, 1.0, 1, None)])  # last seen in 1970: expired
    old.close()
    store = SqliteStore(tmp_path / "lineage.db")
    aggregator = EdgeAggregator(store, flush_interval_s=3600.0, retention_days=1.0)
    writer = aggregator._writer = PurgeBehindClose(store.close)
    reader = aggregator._reader = ReadsWhenLet()

    async def start() -> None:
        aggregator.start()

    loop_thread.run(start())
    reader.go.set()
    assert writer.purging.wait(BOUND_S)  # the replay done, its callback past `_closing`
    with caplog.at_level(logging.ERROR, logger="lineage_proxy.edges"):
        loop_thread.run(aggregator.stop())
    assert writer.closing.is_set() and writer.purge_queued.is_set()  # the purge was queued behind the close
    failed = [r.getMessage() for r in caplog.records if "retention purge failed" in r.getMessage()]
    assert not failed, failed
    again = SqliteStore(tmp_path / "lineage.db")
    try:
        assert [row.key for row in again.rows()] == [flow(1)]  # left to the next start's purge
    finally:
        again.close()
