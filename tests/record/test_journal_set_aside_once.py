"""Workers sharing one journal may both replay a batch and both find it refused (a value the database refuses, a
signature that does not match): its rows are kept in `rejected` once, and counted once
(`lineage_proxy_edge_journal_rejected_total`), not once by each worker."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from proxy.record.journal import Journal

ROWS = [["allow", "app", "assistant", "", "ck", "", 1.0, 1.0, 1, "", None]]


def rejected_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM rejected").fetchone()[0])


def test_a_batch_two_workers_set_aside_is_kept_once(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    first, second = Journal(path), Journal(path)
    first.append("t1", ROWS)
    [(entry_id, token, _, _)] = first.oldest()
    assert first.set_aside(entry_id, token, ROWS, "refused") is True
    assert second.set_aside(entry_id, token, ROWS, "refused") is False  # the other worker's, a moment later
    assert rejected_rows(path) == 1
    assert second.set_aside(None, "t2", ROWS, "refused") is True  # a write never journaled: kept
    first.append("t3", ROWS)
    [(entry_id, _, _, _)] = first.oldest()
    assert first.reject(entry_id, "bad signature") is True and second.reject(entry_id, "bad signature") is False
    assert rejected_rows(path) == 3
    first.close()
    second.close()
