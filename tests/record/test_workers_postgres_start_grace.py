"""`serve --workers N` with a PostgreSQL store: a worker's start grace (`workers.start_grace_s`) covered a SQLite
store's open waits (2 x 10 s), not a PostgreSQL store's (its connection, the chain's lock under the statement
timeout, its journal: 55 s at the default bounds), so a worker whose open waited for the chain's lock (a sibling
sidecar's long write holding it) was killed as start_stalled, and at the proxy's start the start failed (exit 1),
though nothing was stuck for good. The grace now follows the store, its URL's own bounds included.

A real `serve --workers 2` on the real PostgreSQL, the chain's lock held by the test for the whole start: the
worker's open waits the URL's statement_timeout (LOCK_WAIT_S) for it, then journals, as during any outage, and
serves. A shim (sitecustomize) makes START_GRACE_S, a SQLite store's grace, 3 s (it is 50 s), so the start's bound
was 5 + 3 s, which the lock's wait alone outlasts; it is 5 + 3 s and the store's waits beyond a SQLite file's
now (here 5 s for the connection and LOCK_WAIT_S for the lock)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psycopg

import proxy
from proxy.record.postgres import LOCK_ID, PostgresStore
from tests.servers.postgres import PostgresServer
from tests.test_workers import Serve

STALL_S = 5  # limits.worker_stall_s (its least)
LOCK_WAIT_S = 10  # the URL's statement_timeout: how long an open waits for the chain's lock
START_S = 120.0  # how long the test waits for the start's outcome (its bound is far less)

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: origin, url: "http://127.0.0.1:9", checkpoint: pinned}]
routes: [{model: "*", upstream: origin}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE", journal: "JOURNAL"}
limits: {drain_timeout_s: 2, worker_stall_s: STALL}
"""

SITECUSTOMIZE = """
import proxy.workers

proxy.workers.START_GRACE_S = 3.0
"""


def _outcome(serve: Serve) -> str:
    """ "ready" once the proxy serves, or "exit N" when it exits first."""

    def exited() -> None:
        serve.proc.wait()
        with serve._cond:  # (the predicate below is looked at again)
            serve._cond.notify_all()

    threading.Thread(target=exited, daemon=True).start()

    def ready() -> bool:
        return any("lineage-proxy ready" in line for line in serve.out)

    with serve._cond:
        serve._cond.wait_for(lambda: ready() or serve.proc.poll() is not None, START_S)
    return "ready" if ready() else f"exit {serve.proc.poll()}"


def test_a_worker_whose_postgresql_open_waits_for_the_chains_lock_is_not_killed_as_start_stalled(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.database()
    PostgresStore(url).close()  # made (its schema and first entry): a start's open waits for the lock alone
    slow = f"{url}{'&' if '?' in url else '?'}options=-c%20statement_timeout%3D{LOCK_WAIT_S}s"
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
    config = tmp_path / "proxy.yaml"
    config.write_text(
        CONFIG.replace("STORE", slow).replace("JOURNAL", str(tmp_path / "journal.db")).replace("STALL", str(STALL_S))
    )
    root = str(Path(proxy.__file__).parents[1])  # the build this test runs
    env = {"PYTHONPATH": os.pathsep.join([str(shim), root]), "TMPDIR": str(tmp_path)}
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_catalog.pg_advisory_lock(%s)", (LOCK_ID,))  # a sibling's long write, say
        serve = Serve.workers(config, 2, env)
        try:
            outcome = _outcome(serve)
            assert outcome == "ready", (outcome, "".join(serve.err))
            assert serve.stop() == 0, "".join(serve.err)
        finally:
            serve.end()
    assert not any("start_stalled" in line or "has not said it serves" in line for line in serve.err), serve.err
