"""`serve --workers N`: a worker whose start has not said it serves within `limits.worker_stall_s` and
`START_GRACE_S` more is killed as `start_stalled`. Its start waits, one after the other, for bounded times of its own:
the SQLite store's open (switching a new file to WAL, then the write lock), the HTTPS upstreams' TLS contexts, the
upstreams' first metadata. The grace was 30 s, the sum of three of those bounds and no margin: a start with every wait
at its limit (a hung mount, siblings making the store) and `worker_stall_s: 5` could be killed, though nothing was
stuck for good. The grace must cover every wait at its limit and leave room for the rest of a start."""

from __future__ import annotations

import inspect
import socket

import psycopg
import pytest

from proxy import checkpoints, server, workers
from proxy.config.model import Limits
from proxy.record import postgres, store
from tests.test_docs import README

MARGIN_S = 5.0  # the least left for the fork, the imports and the config's reading on a busy host


def test_the_start_grace_covers_every_bounded_wait_of_a_start_at_its_limit() -> None:
    waits = {
        "the store's switch to WAL": inspect.signature(store.wal).parameters["wait_s"].default,
        "the store's write lock at its open": store.OPEN_TIMEOUT_S,
        "the HTTPS upstreams' TLS contexts": server.UPSTREAM_TLS_WAIT_S,
        "the upstreams' first metadata": checkpoints.METADATA_TIMEOUT_S,
    }
    assert sum(waits.values()) + MARGIN_S <= workers.START_GRACE_S, (workers.START_GRACE_S, waits)


def test_the_start_grace_covers_a_postgresql_stores_open_at_its_bounds() -> None:
    """A PostgreSQL store's open waits for its connection, then the chain's lock (the schema's transaction, under the
    statement timeout), then its journal's open (a SQLite file's): 55 s at the default bounds, where the grace, 50 s
    whatever the store, counted a SQLite file's 20 s: a worker opening a slow one was killed as start_stalled (with
    worker_stall_s under 30 s) though nothing was stuck for good. The grace follows the store, and its URL's bounds."""
    url = "postgresql://lineage@db.example:5432/lineage"
    waits = {
        "the database's connection": postgres.DEFAULT_CONNECT_TIMEOUT_S,
        "the chain's lock": postgres.DEFAULT_STATEMENT_TIMEOUT_S,
        "the journal's switch to WAL": inspect.signature(store.wal).parameters["wait_s"].default,
        "the journal's write lock at its open": store.OPEN_TIMEOUT_S,
        "the HTTPS upstreams' TLS contexts": server.UPSTREAM_TLS_WAIT_S,
        "the upstreams' first metadata": checkpoints.METADATA_TIMEOUT_S,
    }
    grace = workers.start_grace_s(url)
    assert sum(waits.values()) + MARGIN_S <= grace, (grace, waits)
    # the URL's own bounds: a connect_timeout per host of its list, a statement_timeout in its options
    slow = "postgresql://lineage@db1,db2/lineage?connect_timeout=20&options=-c%20statement_timeout%3D90s"
    more = 2 * 20 - postgres.DEFAULT_CONNECT_TIMEOUT_S + 90 - postgres.DEFAULT_STATEMENT_TIMEOUT_S
    assert workers.start_grace_s(slow) == grace + more
    # a SQLite store's, or none: as it was
    assert workers.start_grace_s("/var/lib/lineage.db") == workers.start_grace_s(None) == workers.START_GRACE_S


def test_the_readme_gives_the_grace_the_code_has() -> None:
    grace = f"`limits.worker_stall_s` and {workers.START_GRACE_S:g} s more"
    assert README.count(grace) == 2, grace  # `serve`, and lineage_proxy_worker_restarts_total{reason="start_stalled"}
    assert f"{grace} ({Limits().worker_stall_s + workers.START_GRACE_S:g} s by default;" in README


def test_a_postgresql_stores_connection_is_counted_as_long_as_psycopg_waits_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The connection's share of a PostgreSQL store's open waits is what psycopg, which connects the store, waits for
    each host of the URL: a `connect_timeout=0` (libpq's "no bound") is psycopg's own default, 130 s a host, where
    5 s was counted, so a worker whose database did not answer (a host that drops the SYN, a server that accepts and
    says nothing) was killed as start_stalled with the default worker_stall_s. The store's own open is run, against a
    listener that accepts and never answers; psycopg's wait for each host is recorded as it is asked for, then cut
    short so the test does not wait it out."""
    asked: list[float] = []
    wait_conn = psycopg.waiting.wait_conn

    def recorded(gen, interval=None, timeout=None):  # type: ignore[no-untyped-def]
        asked.append(timeout)
        return wait_conn(gen, interval=interval, timeout=0.05)

    monkeypatch.setattr(psycopg.waiting, "wait_conn", recorded)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        twice = f"127.0.0.1:{port},127.0.0.1:{port}"
        for where, query, attempts in (
            (twice, "connect_timeout=0", 2),
            (twice, "connect_timeout=0.5", 2),
            (twice, "connect_timeout=1", 2),
            (twice, "connect_timeout=7", 2),
            (twice, "", 2),
            (f":{port}", "hostaddr=127.0.0.1,127.0.0.1&connect_timeout=3", 2),  # a list of addresses
            (twice, "target_session_attrs=prefer-standby&connect_timeout=3", 4),  # a standby first, then any
        ):
            url = f"postgresql://lineage@{where}/lineage?{query}"
            asked.clear()
            opened = postgres.PostgresStore(url, wait_for_server=True)  # as a journal-fronted writer opens it
            assert opened.unreachable is not None, query  # (no answer: it waited, then journals)
            assert len(asked) == attempts, (query, asked)  # each host of the list in turn
            counted = postgres.open_waits_s(url) - postgres.DEFAULT_STATEMENT_TIMEOUT_S
            assert counted >= sum(asked), (query, counted, asked)
