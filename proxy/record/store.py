"""The embedded lineage store: edges in one SQLite file (WAL), safe for several processes at once.

Writes are upserts that add counts, so any number of proxy workers can share the file. The sink only
writes what it is given; when to write is the aggregator's business (`edges.py`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

SCHEMA = """
CREATE TABLE IF NOT EXISTS edges (
    caller        TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    input_labels  TEXT NOT NULL,
    checkpoint    TEXT NOT NULL,
    output_labels TEXT NOT NULL,
    decision      TEXT NOT NULL,
    first_seen    REAL NOT NULL,
    last_seen     REAL NOT NULL,
    count         INTEGER NOT NULL,
    rule          TEXT,
    reason        TEXT,
    PRIMARY KEY (caller, purpose, input_labels, checkpoint, output_labels, decision)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS edges_last_seen ON edges (last_seen);
"""

UPSERT = """
INSERT INTO edges (caller, purpose, input_labels, checkpoint, output_labels, decision,
                   first_seen, last_seen, count, rule, reason)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (caller, purpose, input_labels, checkpoint, output_labels, decision) DO UPDATE SET
    count = count + excluded.count,
    first_seen = min(first_seen, excluded.first_seen),
    last_seen = max(last_seen, excluded.last_seen),
    rule = coalesce(excluded.rule, rule),
    reason = coalesce(excluded.reason, reason)
"""


class EdgeKey(NamedTuple):
    """The identity of a lineage flow (CONTRACT.md §5). Label sets are stored sorted, comma-joined."""

    caller: str
    purpose: str
    input_labels: str
    checkpoint: str
    output_labels: str
    decision: str


# One edge's write: key, first_seen, last_seen, count, rule, and the reason the caller was given (the
# reason may be left out: a store written before it existed, or a caller that has none).
EdgeWrite = tuple[EdgeKey, float, float, int, str | None] | tuple[EdgeKey, float, float, int, str | None, str | None]


@dataclass(frozen=True, slots=True)
class EdgeRow:
    key: EdgeKey
    first_seen: float
    last_seen: float
    count: int
    rule: str | None
    reason: str | None = None  # what the caller was told (a denial's message), when the store has it

    def as_dict(self) -> dict[str, object]:
        return {
            "caller": self.key.caller,
            "purpose": self.key.purpose,
            "input_labels": split_labels(self.key.input_labels),
            "checkpoint": self.key.checkpoint,
            "output_labels": split_labels(self.key.output_labels),
            "decision": self.key.decision,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "count": self.count,
            "rule": self.rule,
            "reason": self.reason,
        }


class EdgeStore(Protocol):
    """Where edges are kept. Called from one writer thread at a time; `upsert` adds counts, so any
    number of writers (workers, sidecars) may share one store."""

    def upsert(self, rows: Iterable[EdgeWrite]) -> None: ...

    def purge(self, retention_days: float, now: float | None = None) -> int: ...

    def rows(self) -> list[EdgeRow]: ...

    def close(self) -> None: ...


def split_labels(joined: str) -> list[str]:
    return joined.split(",") if joined else []


class SqliteStore:
    """One connection, used from one thread at a time (the aggregator's writer thread)."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = str(path)
        if readonly:
            if not Path(self.path).exists():
                raise FileNotFoundError(self.path)
            uri = f"file:{Path(self.path).resolve()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10)
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed transaction survives a crash of the process (kill -9);
        # only a power loss may roll back the last commits.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(SCHEMA)
        if "reason" not in self._columns():
            try:  # a store made before reasons were kept; another worker may be adding it right now
                self._db.execute("ALTER TABLE edges ADD COLUMN reason TEXT")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):
                    raise

    def _columns(self) -> set[str]:
        return {row[1] for row in self._db.execute("PRAGMA table_info(edges)")}

    def upsert(self, rows: Iterable[EdgeWrite]) -> None:
        params = [(*row[0], *row[1:5], row[5] if len(row) > 5 else None) for row in rows]
        if not params:
            return
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(UPSERT, params)

    def purge(self, retention_days: float, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - retention_days * 86400
        with self._db:
            cursor = self._db.execute("DELETE FROM edges WHERE last_seen < ?", (cutoff,))
        return cursor.rowcount

    def rows(self) -> list[EdgeRow]:
        reason = "reason" if "reason" in self._columns() else "NULL"  # read-only: an older file stays as it is
        cursor = self._db.execute(
            "SELECT caller, purpose, input_labels, checkpoint, output_labels, decision, first_seen, last_seen, "
            f"count, rule, {reason} FROM edges ORDER BY checkpoint, purpose, caller, input_labels"
        )
        return [EdgeRow(EdgeKey(*row[:6]), row[6], row[7], row[8], row[9], row[10]) for row in cursor]

    def close(self) -> None:
        self._db.close()
