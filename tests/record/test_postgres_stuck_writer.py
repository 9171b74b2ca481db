"""A sidecar frozen inside its write (a paused container, a VM snapshot, a network partition between two
statements) holds the chain's advisory lock: the server sees a session idle in its transaction, its client
silent, and keeps the lock for as long as that lasts (for ever for a paused container, whose kernel still
acknowledges; hours for a partition, until the server's TCP keepalive). Every other sidecar journals meanwhile.
The server ends such a transaction after the statement timeout, so the fleet writes again."""

from __future__ import annotations

import time
from contextlib import ExitStack, suppress
from typing import Any

import psycopg
import pytest

from proxy.record import integrity
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer

KEY = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")


def test_a_writer_frozen_inside_its_write_holds_the_chain_lock_no_longer_than_the_statement_timeout(
    postgres: PostgresServer,
) -> None:
    url = postgres.database()
    frozen = PostgresStore(url, statement_timeout_s=1.0)
    other = PostgresStore(url, statement_timeout_s=8.0)
    with ExitStack() as stack:
        cur = stack.enter_context(frozen._transaction())  # the chain's lock taken, then nothing more is sent
        cur.execute("SELECT 1")
        started = time.monotonic()
        other.upsert([(KEY, 1.0, 1.0, 1, None)])  # waits for the lock: on HEAD until its own statement timeout
        waited = time.monotonic() - started
        stack.pop_all()  # the frozen writer's transaction was ended by the server: its exit raises
    with suppress(psycopg.OperationalError):
        frozen._drop()
    assert waited < 6.0, waited
    assert {r.key: r.count for r in other.rows()} == {KEY: 1}
    assert other.integrity().intact
    frozen.close()
    other.close()


def test_a_purge_whose_own_work_outlasts_the_idle_bound_is_not_ended_by_it(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A purge compares and signs every edge it keeps between two statements (tens of seconds at a million edges):
    the idle-in-transaction bound that frees a frozen writer's lock must not end it every time. Its work is
    stretched here past a short bound, as a large store's is past the 30 s one."""
    url = postgres.database()
    store = PostgresStore(url, statement_timeout_s=0.5)
    old, kept = KEY._replace(caller="old"), KEY._replace(caller="kept")
    store.upsert([(old, 1.0, 1.0, 1, None), (kept, 9e9, 9e9, 1, None)])
    body = integrity.body

    def slow(kind: str, rows: Any) -> Any:
        time.sleep(1.5)  # the Python work of a large store's snapshot, inside the purge's transaction
        return body(kind, rows)

    monkeypatch.setattr(integrity, "body", slow)
    assert store.purge(retention_days=1, now=1e9) == 1
    monkeypatch.undo()
    assert {r.key: r.count for r in store.rows()} == {kept: 1}
    assert store.integrity().intact
    store.close()
