"""A sidecar (re)started while its database takes no writes — a failover whose standby is not promoted yet (a hot
standby runs every transaction read-only), or `default_transaction_read_only` set for maintenance — is a
database away for now, as the README has a server starting up or shutting down: it must start, serve, journal
its calls and write them once the database takes writes. It stopped at its start instead (`serve` exits 1:
"cannot execute INSERT in a read-only transaction"), so a pod restarted during a failover crash-looped and served
no call, while a sidecar already running journals through the same failover."""

from __future__ import annotations

import logging

import psycopg

from proxy.record.journal import Journal
from tests.record.test_postgres import calls, counts, flush, start
from tests.servers.vllm_like import ROOT


def read_only(url: str, on: bool) -> None:
    """The database's sessions read-only from now on (or not), as a DBA (or a standby) makes them."""
    name = url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
        conn.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = {'on' if on else 'off'}")


def test_a_proxy_started_while_the_database_takes_no_writes_serves_and_writes_everything_once_it_does(  # type: ignore[no-untyped-def]
    postgres, vllm, make_proxy, loop_thread, tmp_path, caplog
) -> None:
    url = postgres.database()  # made, but no proxy has written it yet: no tables
    _, upstream = vllm
    read_only(url, True)
    with caplog.at_level(logging.ERROR, logger="lineage_proxy.edges"):
        proxy = start(make_proxy, upstream, url, tmp_path / "journal.db")  # HEAD: StartupError, read-only transaction
    assert [r.getMessage() for r in caplog.records if "writes are failing" in r.getMessage()]
    assert loop_thread.run(calls(proxy.url, ["audited", "open", "audited"])) == [200, 200, 200]
    flush(loop_thread, proxy)
    assert Journal(tmp_path / "journal.db").held() > 0
    read_only(url, False)  # promoted, or the maintenance is over
    proxy.process.runtime.sinks.get("edges")._store._next_try = 0.0  # type: ignore[union-attr]
    loop_thread.run(proxy.process.stop())  # drains, flushes, and replays the journal
    assert counts(url) == {
        ("anonymous", "assistant", "audited", ROOT, "audited", "allow", ""): 2,
        ("anonymous", "assistant", "open", ROOT, "open", "allow", ""): 1,
    }
    assert Journal(tmp_path / "journal.db").held() == 0
