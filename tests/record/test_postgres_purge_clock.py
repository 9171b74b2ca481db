"""Every sidecar purges the fleet's whole store (README, Running a fleet). A sidecar whose clock runs ahead (a VM
restored with a wrong clock, an NTP step, a host set by hand) cut by its own clock: two days ahead under a
two-day `retention_days`, it deleted every edge the rest of the fleet had seen within the last day or two, and
signed the result into the chain as a purge's snapshot, so `verify` passed. One clock for the fleet's purges, the
database's, deletes only what has expired."""

from __future__ import annotations

import time
import types

import pytest

import proxy.record.postgres as postgres_module
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer

KEY = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")
DAY = 86400.0


def test_a_sidecar_whose_clock_runs_ahead_purges_only_what_has_expired(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.database()
    now = time.time()
    fresh, old = KEY._replace(caller="seen-an-hour-ago"), KEY._replace(caller="seen-three-days-ago")
    writer = PostgresStore(url)  # the rest of the fleet, clocks right
    writer.upsert([(fresh, now - 3600, now - 3600, 5, None), (old, now - 3 * DAY, now - 3 * DAY, 1, None)])
    writer.close()
    # the purging sidecar: its clock two days ahead (monotonic time, which bounds its round trips, is not a clock)
    ahead = types.SimpleNamespace(time=lambda: time.time() + 2 * DAY, monotonic=time.monotonic)
    monkeypatch.setattr(postgres_module, "time", ahead)
    ahead_store = PostgresStore(url)
    try:
        replay = ahead_store.prepare_purge(2.0)  # as the aggregator runs it: at start and hourly
        assert ahead_store.purge(2.0, None, replay) == 1  # HEAD: 2
        assert {r.key.caller: r.count for r in ahead_store.rows()} == {"seen-an-hour-ago": 5}  # HEAD: {}
        assert ahead_store.integrity().intact
    finally:
        ahead_store.close()
