"""A PostgreSQL reader locks the lineage tables it reads before its snapshot (ACCESS SHARE), so their owner cannot
truncate one, or turn row security on, while it reads; it locks no table it does not read. Locking all four for every
read, `edges` and `verify` waited for a `VACUUM FULL applied` (or any lock that excludes readers: `LOCK TABLE`,
`ALTER TABLE`), which they read none of, until the statement timeout, and failed as if the database were away, "no
answer from the database in 1.5s", where they had read the store (review revproof12)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.record.test_copy_cycles import store_with
from tests.servers.postgres import PostgresServer

READERS = {
    "edges": (["edges"], "applied"),
    "edges, chain held": (["edges"], "chain"),
    "verify --baseline": (["verify", "--baseline", "BASELINE"], "applied"),
    "verify --integrity": (["verify", "--integrity"], "applied"),
}


@pytest.mark.parametrize("reader", READERS)
def test_a_reader_waits_for_no_table_it_does_not_read(postgres: PostgresServer, tmp_path: Path, reader: str) -> None:
    args, held = READERS[reader]
    url = postgres.database()
    store_with(url, "app", 2)
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("version: 1\nflows:\n  - {caller: app, purpose: assistant, labels: [team-a]}\n")
    given = [str(baseline) if arg == "BASELINE" else arg for arg in args]
    bounded = f"{url}&options=-cstatement_timeout%3D1500"
    with psycopg.connect(url) as maintenance:  # as VACUUM FULL holds it, till its transaction ends
        maintenance.execute(f"LOCK TABLE {held} IN ACCESS EXCLUSIVE MODE")
        done = subprocess.run([sys.executable, "-m", "proxy", given[0], "--store", bounded, *given[1:]],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no answer" not in done.stderr, done.stderr
