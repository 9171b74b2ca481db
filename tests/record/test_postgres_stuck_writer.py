"""A sidecar frozen inside its write (a paused container, a VM snapshot, a network partition between two
statements) holds the chain's advisory lock: the server sees a session idle in its transaction, its client
silent, and keeps the lock for as long as that lasts (for ever for a paused container, whose kernel still
acknowledges; hours for a partition, until the server's TCP keepalive). Every other sidecar journals meanwhile.
The server ends such a transaction after the statement timeout, so the fleet writes again."""

from __future__ import annotations

import time
from contextlib import ExitStack, suppress

import psycopg

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
