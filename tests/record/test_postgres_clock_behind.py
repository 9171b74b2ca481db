"""A writer whose clock runs behind the database's says so at its start. The edges it writes carry its own time, and
every other sidecar purges by the database's clock: one two days behind under a one-day `retention_days` had what it
recorded deleted as expired by the next purge of any other sidecar, signed into the chain as a purge, `verify`
passing, and nothing said why. (A clock ahead is warned of too: the fleet's first and last seen disagree.)"""

from __future__ import annotations

import logging
import time
import types

import pytest

import proxy.record.postgres as postgres_module
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer

KEY = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")
DAY = 86400.0


def test_a_writer_whose_clock_runs_behind_is_warned_at_its_start(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.database()
    PostgresStore(url).close()  # the fleet's store, made by a sidecar whose clock is right
    # this sidecar's clock two days behind (monotonic time, which bounds its round trips, is not a clock)
    behind = types.SimpleNamespace(time=lambda: time.time() - 2 * DAY, monotonic=time.monotonic)
    monkeypatch.setattr(postgres_module, "time", behind)
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.edges"):
        lagging = PostgresStore(url)
    try:
        lagging.upsert([(KEY, behind.time(), behind.time(), 1, None)])
    finally:
        lagging.close()
    said = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]
    assert "behind the database's" in said[0] and "purged as expired" in said[0], said[0]
    # what it means: the next purge of a sidecar whose clock is right deletes the call just recorded
    monkeypatch.setattr(postgres_module, "time", time)
    right = PostgresStore(url)
    try:
        assert right.purge(1.0, None, right.prepare_purge(1.0)) == 1
    finally:
        right.close()


def test_a_writer_whose_clock_is_right_says_nothing_of_it(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.database()
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.edges"):
        PostgresStore(url).close()
        PostgresStore(url).close()
    assert not [r for r in caplog.records if "clock" in r.getMessage()]
