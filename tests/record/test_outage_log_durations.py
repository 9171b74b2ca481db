"""An outage's log line says how long the store refused writes by the monotonic clock: a wall clock stepped back
during it (NTP) made "writes succeed again after -3600s"."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from proxy.record.edges import EdgeAggregator
from proxy.record.store import SqliteStore


def test_an_outage_lasts_no_negative_time_when_the_wall_clock_steps_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteStore(tmp_path / "lineage.db")
    aggregator = EdgeAggregator(store)
    caplog.set_level(logging.WARNING, logger="lineage_proxy")
    wall = time.time
    try:
        aggregator._store_failed(OSError("disk full"), [])
        monkeypatch.setattr(time, "time", lambda: wall() - 3600)  # stepped back an hour meanwhile
        aggregator._store_ok()
    finally:
        monkeypatch.undo()
        store.close()
    (line,) = [r.getMessage() for r in caplog.records if "succeed again" in r.getMessage()]
    assert line == "lineage store: writes succeed again after 0s", line
