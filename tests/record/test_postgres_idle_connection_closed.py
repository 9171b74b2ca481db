"""The server closes a sidecar's connection while it is idle: a restart done with since (`pg_ctl restart`, a
failover), `idle_session_timeout` set by the DBA, `pg_terminate_backend`, a pooler or a firewall ending idle
connections. The database answers as ever: the next write must reach it on a new connection, not be journaled
and logged as an outage (`lineage_proxy_edge_database_failing` 1, "writes are failing"), which a sidecar with
quiet spells and a DBA's idle timeout said once a spell."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest

from proxy.record.journal import Journal, JournaledStore
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer

KEY = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")


def test_a_connection_the_server_closed_while_idle_is_replaced_not_an_outage(
    postgres: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.database()
    store = JournaledStore(PostgresStore(url), Journal(tmp_path / "journal.db"))
    try:
        store.upsert([(KEY, 1.0, 1.0, 1, None)])  # the connection is made, and then idle
        with psycopg.connect(url, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                "WHERE application_name = 'lineage-proxy' AND datname = current_database()"
            ).fetchall()
        assert ended == [(True,)]  # the sidecar's one connection, gone (the call waits for its backend's exit)
        with caplog.at_level(logging.WARNING, logger="lineage_proxy.edges"):
            store.upsert([(KEY._replace(caller="next"), 2.0, 2.0, 1, None)])
        assert store.journaled == 0  # HEAD: 1, the write journaled
        assert "lineage_proxy_edge_database_failing 0" in store.metrics()  # HEAD: 1
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == []  # HEAD: "writes are failing (terminating connection due to administrator command)"
        assert {r.key.caller: r.count for r in store.rows()} == {"svc": 1, "next": 1}
        assert store.integrity().intact
    finally:
        store.close()
