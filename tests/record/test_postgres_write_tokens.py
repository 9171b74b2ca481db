"""A fleet writer's once-only write tokens (journal.py): the chain shows every token applied, so the next
ones must not follow from them. Whoever can write the database, without the key, could otherwise claim them
in `applied` first, and every later write of that sidecar was skipped as applied already: its calls never
recorded, no error, `verify` (and `--expect-head`) passing."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import psycopg

from proxy.record.journal import Journal, JournaledStore
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer

KEY = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")
SECRET = b"k" * 32


def successors(token: str, n: int) -> list[str]:
    """What one might take for the tokens after `token`: the same prefix, the following numbers."""
    prefix, _, serial = token.rpartition(":")
    return [f"{prefix}:{int(serial) + i}" for i in range(1, n + 1)] if serial.isdigit() else []


def test_the_next_write_tokens_cannot_be_claimed_from_those_the_chain_shows(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.database()
    store = JournaledStore(PostgresStore(url, key=SECRET), Journal(tmp_path / "journal.db", key=SECRET))
    try:
        store.upsert([(KEY, 1.0, 1.0, 1, None)])
        store.upsert([(KEY, 2.0, 2.0, 1, None)])
        with psycopg.connect(url, autocommit=True) as conn:  # someone who can write the store, not the key
            bodies = [row[0] for row in conn.execute("SELECT body FROM chain ORDER BY seq")]
            seen = [orjson.loads(body)["token"] for body in bodies if "token" in orjson.loads(body)]
            assert len(seen) == 2 and len(set(seen)) == 2
            claimed = {guess for token in seen for guess in successors(token, 100)} - set(seen)
            for guess in claimed:
                conn.execute("INSERT INTO applied (token, at) VALUES (%s, 1e12)", (guess,))
        for i in range(5):
            store.upsert([(KEY, 3.0 + i, 3.0 + i, 10, None)])
        assert {r.key: r.count for r in store.rows()} == {KEY: 52}  # every call recorded
        assert store.integrity(SECRET).intact
    finally:
        store.close()


def test_write_tokens_past_retention_are_forgotten_when_no_edge_expires(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """`applied` gains a row for every write: a fleet whose flows all recur (no edge ever expires) never
    purged, and the tokens' cleanup ran only with a purge, so the table grew by a row every flush interval
    for ever. An hourly retention pass forgets the tokens past retention whether or not an edge expires."""
    url = postgres.database()
    store = JournaledStore(PostgresStore(url, key=SECRET), Journal(tmp_path / "journal.db", key=SECRET))
    try:
        for i in range(3):
            store.upsert([(KEY, 1.0 + i, 1.0 + i, 1, None)])
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM applied").fetchone() == (3,)
            conn.execute("UPDATE applied SET at = at - 40 * 86400")  # written 40 days ago
            conn.execute("INSERT INTO applied (token, at) VALUES ('copy:elsewhere', 0)")  # a copy's: kept
        store.upsert([(KEY, time.time(), time.time(), 1, None)])  # the flow recurs today: nothing expires
        assert store.prepare_purge(30) is None
        with psycopg.connect(url, autocommit=True) as conn:
            left = [row[0] for row in conn.execute("SELECT token FROM applied ORDER BY at")]
        assert len(left) == 2 and left[0] == "copy:elsewhere", left  # the copy's and today's
        assert {r.key: r.count for r in store.rows()} == {KEY: 4}
        assert store.integrity(SECRET).intact
    finally:
        store.close()
