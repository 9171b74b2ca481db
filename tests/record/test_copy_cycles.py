"""`edges --copy-to` between fleet stores: a history is copied once, also when it comes back inside another
store. A copied into B, then B into A, counted A's own calls twice in A (its `verify` passing: the copy is
chained as any write); A into B and into C, then C into B, counted A's calls twice in B."""

from __future__ import annotations

import subprocess
import sys

from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer

KEY = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60)


def store_with(url: str, caller: str, calls: int) -> None:
    store = PostgresStore(url)
    store.upsert([(KEY._replace(caller=caller), 1.0, 2.0, calls, None)])
    store.close()


def counts(url: str) -> dict[str, int]:
    store = PostgresStore(url, readonly=True)
    try:
        assert store.integrity().intact
        return {row.key.caller: row.count for row in store.rows()}
    finally:
        store.close()


def test_a_store_copied_back_into_a_store_it_holds_a_copy_of_is_refused(postgres: PostgresServer) -> None:
    a, b, c = postgres.database(), postgres.database(), postgres.database()
    store_with(a, "a", 5)
    store_with(b, "b", 3)
    store_with(c, "c", 2)
    assert cli("edges", "--store", a, "--copy-to", b).returncode == 0
    back = cli("edges", "--store", b, "--copy-to", a)
    assert back.returncode == 1 and "holds a copy of this store" in back.stderr, back.stdout + back.stderr
    assert counts(a) == {"a": 5}
    assert cli("edges", "--store", a, "--copy-to", c).returncode == 0
    again = cli("edges", "--store", c, "--copy-to", b)  # C holds A's history, which B holds already
    assert again.returncode == 1 and "whose calls are here already" in again.stderr, again.stdout + again.stderr
    assert counts(b) == {"a": 5, "b": 3}
    onward = cli("edges", "--store", b, "--copy-to", c)  # B holds A's history too, which C holds
    assert onward.returncode == 1, onward.stdout + onward.stderr
    d = postgres.database()
    assert cli("edges", "--store", b, "--copy-to", d).returncode == 0  # B, and A's history in it, into D
    assert cli("edges", "--store", d, "--copy-to", a).returncode == 1  # D holds A's history, by way of B
    assert counts(a) == {"a": 5} and counts(d) == {"a": 5, "b": 3}
