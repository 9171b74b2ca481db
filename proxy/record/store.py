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
    PRIMARY KEY (caller, purpose, input_labels, checkpoint, output_labels, decision)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS edges_last_seen ON edges (last_seen);
"""

UPSERT = """
INSERT INTO edges (caller, purpose, input_labels, checkpoint, output_labels, decision,
                   first_seen, last_seen, count, rule)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (caller, purpose, input_labels, checkpoint, output_labels, decision) DO UPDATE SET
    count = count + excluded.count,
    first_seen = min(first_seen, excluded.first_seen),
    last_seen = max(last_seen, excluded.last_seen),
    rule = coalesce(excluded.rule, rule)
"""


class EdgeKey(NamedTuple):
    """The identity of a lineage flow (CONTRACT.md §5). Label sets are stored sorted, comma-joined."""

    caller: str
    purpose: str
    input_labels: str
    checkpoint: str
    output_labels: str
    decision: str


@dataclass(frozen=True, slots=True)
class EdgeRow:
    key: EdgeKey
    first_seen: float
    last_seen: float
    count: int
    rule: str | None

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
        }


class EdgeStore(Protocol):
    """Where edges are kept. Called from one writer thread at a time; `upsert` adds counts, so any
    number of writers (workers, sidecars) may share one store."""

    def upsert(self, rows: Iterable[tuple[EdgeKey, float, float, int, str | None]]) -> None: ...

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

    def upsert(self, rows: Iterable[tuple[EdgeKey, float, float, int, str | None]]) -> None:
        params = [(*key, first, last, count, rule) for key, first, last, count, rule in rows]
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
        cursor = self._db.execute(
            "SELECT caller, purpose, input_labels, checkpoint, output_labels, decision, first_seen, last_seen, "
            "count, rule FROM edges ORDER BY checkpoint, purpose, caller, input_labels"
        )
        return [EdgeRow(EdgeKey(*row[:6]), row[6], row[7], row[8], row[9]) for row in cursor]

    def close(self) -> None:
        self._db.close()
