"""Every reader lists the edges in one order, an edge's whole key (`READ_ORDER`): SQLite's, PostgreSQL's and
`in_read_order`'s (the verified read's). Until 2026-12-07 the order ended at the sidecar, so rows differing by output
labels or decision alone came as the plan gave them: PostgreSQL in the order they were written (here, the reverse of
the key's), and on a large store in another order from one read to the next (`verify --baseline` text differing run
to run)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Final

from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey, EdgeRow, SqliteStore, in_read_order
from tests.servers.postgres import PostgresServer

# one tie group of the old order (checkpoint, purpose, caller, input labels, rule, sidecar), its rows differing by
# output labels and decision alone, beside a row of another checkpoint
TIED: Final = [
    EdgeKey("app", "assistant", "pii:email", "m1", output, decision, "zone:pii")
    for output in ("", "pii:email", "public")
    for decision in ("allow", "audit-deny", "deny")
] + [EdgeKey("app", "assistant", "pii:email", "m0", "public", "deny", "zone:pii")]
EXPECTED: Final = sorted(TIED, key=lambda k: (k.checkpoint, k.purpose, k.caller, k.input_labels, k.rule,
                                              k.output_labels, k.decision))  # fmt: skip


def _written_in_reverse(store: SqliteStore | PostgresStore) -> list[EdgeKey]:
    """The rows written one at a time, the key's order reversed (a table's own order: the order written); read back."""
    for n, key in enumerate(reversed(EXPECTED)):
        store.upsert([(key, 1.0 + n, 2.0 + n, 1, None)])
    return [row.key for row in store.rows()]


def test_sqlite_lists_tied_rows_by_the_whole_key(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "l.db")
    try:
        assert _written_in_reverse(store) == EXPECTED
    finally:
        store.close()


def test_postgres_lists_tied_rows_by_the_whole_key(postgres: PostgresServer) -> None:
    store = PostgresStore(postgres.database())
    try:
        assert _written_in_reverse(store) == EXPECTED
    finally:
        store.close()


def test_the_verified_read_lists_them_so_too() -> None:
    rows = [EdgeRow(key, 1.0, 2.0, 1) for key in EXPECTED]
    for seed in range(5):
        random.Random(seed).shuffle(rows)
        assert [row.key for row in in_read_order(rows)] == EXPECTED
