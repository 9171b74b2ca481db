"""A PostgreSQL reader kept out by another session's lock says it waited for a lock, and who holds it, not that the
database did not answer: its lock wait (`lock_timeout`) ends before the bound at which the watchdog cuts a round trip
with no answer (`reader_lock_wait_s`). Until 2026-12-07 `edges`, `report` and `verify` said "not a lineage store: no
answer from the database in 1.5s" (`verify`: "cannot read it as a lineage store: ...") of a store whose table another
session held locked: a `LOCK TABLE edges IN ACCESS EXCLUSIVE MODE`, or what a VACUUM FULL, ALTER TABLE or TRUNCATE
holds (proof13)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from proxy.record.postgres import reader_lock_wait_s
from tests.record.test_copy_cycles import store_with
from tests.servers.postgres import PostgresServer

READERS = {
    "edges": (["edges"], 1),
    "verify --integrity": (["verify", "--integrity"], 2),
    "verify --baseline": (["verify", "--baseline", "BASELINE"], 2),
    "report": (["report", "--out", "OUT"], 1),
}


@pytest.mark.parametrize("held", ["edges", "meta"])
@pytest.mark.parametrize("reader", READERS)
def test_a_reader_kept_out_by_a_lock_says_so_and_who_holds_it(
    postgres: PostgresServer, tmp_path: Path, reader: str, held: str
) -> None:
    args, code = READERS[reader]
    url = postgres.database()
    store_with(url, "app", 2)
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("version: 1\nflows:\n  - {caller: app, purpose: assistant, labels: [team-a]}\n")
    given = [{"BASELINE": str(baseline), "OUT": str(tmp_path / "report.html")}.get(arg, arg) for arg in args]
    bounded = f"{url}&options=-cstatement_timeout%3D1500"
    with psycopg.connect(url) as other:
        other.execute(f"LOCK TABLE {held} IN ACCESS EXCLUSIVE MODE")
        done = subprocess.run([sys.executable, "-m", "proxy", given[0], "--store", bounded, *given[1:]],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        holder = other.info.backend_pid
    said = done.stdout + done.stderr
    assert done.returncode == code, said
    assert (f"the database did not grant this read its lock on the lineage tables within {reader_lock_wait_s(1.5):g}s: "
            f"another session holds a lock that keeps readers out (ACCESS EXCLUSIVE: process {holder} holds it on "
            f"table {held}), as a LOCK TABLE") in said, said  # fmt: skip
    assert "no answer" not in said and "not a lineage store" not in said, said


def test_the_lock_wait_ends_before_the_bound() -> None:
    assert reader_lock_wait_s(1.5) == 1.125 and reader_lock_wait_s(30.0) == 29.0 and reader_lock_wait_s(2.0) == 1.5


@pytest.mark.parametrize("reader", ["edges", "verify --integrity"])
def test_a_reader_whose_database_stops_answering_says_no_answer_and_not_that_it_is_no_lineage_store(
    postgres: PostgresServer, reader: str
) -> None:
    """The database stops answering mid-read (the reader's own backend stopped, SIGSTOP, while it waits for a lock:
    its lock wait then never ends, as a host that hangs): the watchdog cuts the round trip at the bound and the reader
    says `no answer from the database in 4s`, as it is (StoreWaited), where it said `not a lineage store: no answer
    ...` (`verify`: `cannot read it as a lineage store: ...`) until 2026-12-07 (review revproof13: proof13's claim,
    untested)."""
    import os
    import signal
    import time

    args, code = READERS[reader]
    url = postgres.database()
    store_with(url, "app", 2)
    bounded = f"{url}&options=-cstatement_timeout%3D4000"  # a lock wait of 3 s, in which its backend is found
    with psycopg.connect(url) as other, psycopg.connect(url, autocommit=True) as watch:
        other.execute("LOCK TABLE edges IN ACCESS EXCLUSIVE MODE")
        started = subprocess.Popen([sys.executable, "-m", "proxy", args[0], "--store", bounded, *args[1:]],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        waiting: list[tuple[int]] = []
        deadline = time.monotonic() + 20
        while not waiting and time.monotonic() < deadline and started.poll() is None:
            waiting = watch.execute("SELECT pid FROM pg_locks WHERE NOT granted AND relation = 'edges'::regclass"
                                    ).fetchall()  # fmt: skip
        assert waiting, started.communicate(timeout=30)
        os.kill(waiting[0][0], signal.SIGSTOP)
        try:
            out, err = started.communicate(timeout=30)
        finally:
            os.kill(waiting[0][0], signal.SIGCONT)
    said = out + err
    assert started.returncode == code, said
    assert f"{postgres.port}/" in said and ": no answer from the database in 4s" in said, said
    assert "not a lineage store" not in said and "cannot read it" not in said and "lock" not in said, said


def test_a_reader_kept_out_by_a_prepared_transaction_s_lock_names_that_transaction(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """A lock held by a prepared transaction (PREPARE TRANSACTION: no session holds it, pg_locks' pid is NULL; it stays
    until COMMIT PREPARED or ROLLBACK PREPARED, whoever says it) is named by its gid, and how it ends, not as `process
    None` nor left out (rec15)."""
    url = postgres.database()
    store_with(url, "app", 2)
    bounded = f"{url}&options=-cstatement_timeout%3D1500"
    with psycopg.connect(url) as other:
        other.execute("LOCK TABLE edges IN ACCESS EXCLUSIVE MODE")
        other.execute("PREPARE TRANSACTION 'nightly-migration'")
    try:
        done = subprocess.run([sys.executable, "-m", "proxy", "edges", "--store", bounded], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
    finally:
        with psycopg.connect(url, autocommit=True) as ending:
            ending.execute("ROLLBACK PREPARED 'nightly-migration'")
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert ("another session holds a lock that keeps readers out (ACCESS EXCLUSIVE: the prepared transaction "
            "'nightly-migration' holds it on table edges until COMMIT PREPARED or ROLLBACK PREPARED ends it), as a "
            "LOCK TABLE") in said, said  # fmt: skip
    assert "None" not in said, said
