"""When the lineage database is away, nothing is lost: writes go to a bounded local journal (a SQLite
file) and are replayed into the database, in order and exactly once, when it answers again.

Every batch carries a token (`<process id>:<n>`), and the database records the token of every batch it
applies in the same transaction (postgres.py `applied`). So a replay that crashes between applying an
entry and deleting it, a batch whose commit was lost with the connection and then journaled, or two
workers sharing one journal and replaying the same entry, all count once. While the journal holds rows,
new writes join its end (the order stays the order the calls came), and the database is probed at most
every `RETRY_S`, never on every write, so a database that hangs does not slow each new flow by a
connect timeout. Only when the journal cannot take a batch either (full, or its disk refuses) does
`upsert` raise: the aggregator then keeps the counts in memory and `require_record` zones fail closed.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import psycopg

from proxy.errors import StartupError
from proxy.record import integrity
from proxy.record.integrity import Report
from proxy.record.postgres import PostgresStore, one_line, redact
from proxy.record.store import (
    EdgeKey,
    EdgeRow,
    EdgeWrite,
    SchemaTooNew,
    flat,
    foreign_tables,
    require_directory,
    wal,
)

log = logging.getLogger("lineage_proxy.edges")

JOURNAL_TABLES = frozenset({"entries", "meta", "rejected"})
RETRY_S = 1.0  # how often a failing database is tried again (by the next write or the aggregator's tick)
DEFAULT_MAX_ROWS = 1_000_000  # edge writes the journal holds at most (lineage.journal_max_rows)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    token TEXT NOT NULL,
    n     INTEGER NOT NULL,
    rows  TEXT NOT NULL,
    mac   TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (
    id    INTEGER PRIMARY KEY,
    token TEXT NOT NULL,
    n     INTEGER NOT NULL,
    rows  TEXT NOT NULL,
    mac   TEXT,
    at    REAL NOT NULL,
    why   TEXT NOT NULL
);
"""


def _mac(key: bytes, token: str, rows: bytes) -> str:
    """What signs one journaled batch: the chain's key over the token and the rows (the database chains the
    batch, signed with the same key, only once this matches)."""
    return hmac.new(key, b"journal\n" + token.encode() + b"\n" + rows, hashlib.sha256).hexdigest()


class JournalFull(Exception):
    """The journal holds `max_rows` already: the batch stays with the caller."""


class Journal:
    """Batches not yet in the database, oldest first. Safe for several workers sharing the file (WAL).
    The edge writes it holds are counted as batches come and go, so a write never scans the journal to
    enforce `max_rows`; the count is read from the file again only when another process has written to it
    since (`PRAGMA data_version` changes for other connections' commits only)."""

    def __init__(self, path: str | Path, max_rows: int = DEFAULT_MAX_ROWS, *, key: bytes | None = None) -> None:
        """`key`: the chain's HMAC key (lineage.integrity_key_file). Each batch is signed with it, and one
        whose signature does not match (edited, added by hand, or written without the key) is never
        replayed into the database, where it would be chained and signed: it is set aside in `rejected`."""
        self.path = str(path)
        self.max_rows = max_rows
        self._key = key
        require_directory(self.path, "lineage journal")
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10, isolation_level=None)
        foreign = foreign_tables(self._db, JOURNAL_TABLES)
        if foreign:  # before WAL mode is set: that too would change another program's file
            self._db.close()
            raise StartupError(f"lineage journal {self.path}: not a lineage journal: it holds other tables "
                               f"({foreign}) and none of a journal's; point lineage.journal at a new file")  # fmt: skip
        wal(self._db)
        self._db.execute("PRAGMA synchronous=NORMAL")  # survives kill -9, like the SQLite store
        with self._db:  # under the write lock: workers opening one journal together see one schema
            self._db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            if "mac" not in {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}:
                # a journal from before signatures (or one whose column was dropped, which looks the same): its
                # batches are unsigned, so with a key they are set aside at replay, never signed as they stand
                self._db.execute("ALTER TABLE entries ADD COLUMN mac TEXT")
        self._held = 0  # edge writes in the file, as of `_version`
        self._version: int | None = None
        self._count()

    def _count(self) -> int:
        """The edge writes held: the running count, read again when another connection has committed."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:  # read before the sum: a commit in between only makes it recount
            self._held = int(self._db.execute("SELECT coalesce(sum(n), 0) FROM entries").fetchone()[0])
            self._version = version
        return self._held

    def append(self, token: str, rows: list[tuple[Any, ...]]) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")  # the write lock first: no other process appends meanwhile
            held = self._count()
            if held + len(rows) > self.max_rows:
                raise JournalFull(f"the journal {self.path} holds {held} edge writes (journal_max_rows "
                                  f"{self.max_rows})")  # fmt: skip
            text = orjson.dumps(rows)
            mac = _mac(self._key, token, text) if self._key is not None else None
            self._db.execute("INSERT INTO entries (token, n, rows, mac) VALUES (?, ?, ?, ?)",
                             (token, len(rows), text, mac))  # fmt: skip
        self._held = held + len(rows)  # committed

    def oldest(self, limit: int = 100) -> list[tuple[int, str, list[EdgeWrite] | str]]:
        """The oldest batches: (id, token, edge writes), or in place of the writes why the batch may not
        be replayed (its signature does not match, or it is not a batch of edge writes)."""
        found = self._db.execute("SELECT id, token, rows, mac FROM entries ORDER BY id LIMIT ?", (limit,)).fetchall()
        batches: list[tuple[int, str, list[EdgeWrite] | str]] = []
        for id_, token, text, mac in found:
            if not isinstance(token, str) or not isinstance(text, str | bytes):  # edited by hand
                batches.append((id_, str(token)[:60], "its token or rows are not text"))
                continue
            data = text.encode() if isinstance(text, str) else bytes(text)
            if self._key is not None and not (
                isinstance(mac, str) and hmac.compare_digest(mac, _mac(self._key, token, data))
            ):
                batches.append((id_, token, "its signature does not match: edited, or not written with this key"))
                continue
            try:
                rows = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                batches.append((id_, token, f"not JSON ({exc})"))
                continue
            if not isinstance(rows, list) or not all(integrity.is_change(row) for row in rows):
                batches.append((id_, token, "not a batch of edge writes"))
                continue
            batches.append((id_, token, [_write(row) for row in rows]))
        return batches

    def reject(self, entry_id: int, why: str) -> None:
        """Set a batch aside, kept for whoever looks into it, never replayed."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO rejected SELECT id, token, n, rows, mac, ?, ? FROM entries "
                             "WHERE id = ?", (time.time(), why, entry_id))  # fmt: skip
            self.remove(entry_id)

    def remove(self, entry_id: int) -> None:
        found = self._db.execute("SELECT n FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if self._db.execute("DELETE FROM entries WHERE id = ?", (entry_id,)).rowcount and found is not None:
            self._held -= found[0]  # not when another process replayed and removed it first (it recounts then)

    def held(self) -> int:
        """Edge writes waiting (from every process sharing the file)."""
        return self._count()

    def close(self) -> None:
        self._db.close()


def _write(row: list[Any]) -> EdgeWrite:
    """A journaled row as an edge write, keyed by its rule (a row journaled by a release before edges were
    keyed by rule holds one too, or none: None)."""
    reason = row[10] if len(row) > 10 else None
    return (EdgeKey._make((*row[:6], row[9] or "")), row[6], row[7], row[8], row[9], reason)


class JournaledStore:
    """The PostgreSQL store with the journal in front of its outages (an `EdgeStore`)."""

    def __init__(self, database: PostgresStore, journal: Journal) -> None:
        self.database = database
        self.journal = journal
        self._process = uuid.uuid4().hex
        self._serial = itertools.count(1)
        self._backlog = journal.held() > 0  # left by a previous run (a crash during an outage)
        self._down_since: float | None = None
        self._next_try = 0.0  # monotonic: when the database may be tried again
        self.journaled = 0  # edge writes that went to the journal
        self.replayed = 0  # edge writes replayed from it into the database
        self.rejected = 0  # batches set aside by the replay (signature or shape)
        if database.unreachable is not None:  # away at the start: an outage from the first write on
            self._failed(database.unreachable)

    def upsert(self, rows: Iterable[EdgeWrite]) -> None:
        """Write to the database, or journal when it is away or a backlog is still waiting. Raises only
        when neither can take the rows. An empty call only gives a backlog its chance to drain."""
        writes = list(rows)
        if self._backlog and time.monotonic() >= self._next_try:
            self._replay()
        if not writes:
            return
        token = f"{self._process}:{next(self._serial)}"
        if (not self._backlog and self._down_since is None) or self._probe_due():
            try:
                self.database.apply(writes, token)  # it flattens them for its statement itself
            except (psycopg.Error, SchemaTooNew, integrity.UnsignedHead, StartupError) as exc:
                self._failed(exc)  # journaled (signed) until the database takes them
            else:
                self._recovered()
                return
        # JournalFull / sqlite3.Error: the aggregator keeps the rows
        self.journal.append(token, [flat(row) for row in writes])
        self.journaled += len(writes)
        self._backlog = True

    def _probe_due(self) -> bool:
        return not self._backlog and self._down_since is not None and time.monotonic() >= self._next_try

    def _replay(self) -> None:
        """Every journaled batch, oldest first, each applied (or found applied) then deleted."""
        try:
            while batch := self.journal.oldest():
                for entry_id, token, rows in batch:
                    if isinstance(rows, str):
                        self._set_aside(entry_id, token, rows)
                        continue
                    try:
                        applied = self.database.apply(rows, token)
                    except psycopg.DataError as exc:  # values the database refuses: never any better on a retry
                        self._set_aside(entry_id, token, f"the database refuses its values: {one_line(exc)}")
                        continue
                    if applied:
                        self.replayed += len(rows)
                    self.journal.remove(entry_id)
        except (psycopg.Error, SchemaTooNew, integrity.UnsignedHead, StartupError) as exc:
            self._failed(exc)
            return
        self._backlog = False
        self._recovered()

    def _set_aside(self, entry_id: int, token: str, why: str) -> None:
        log.error("lineage journal %s: batch %s is not replayed: %s. It is kept in the journal's `rejected` table",
                  self.journal.path, token, why)  # fmt: skip
        self.journal.reject(entry_id, why)
        self.rejected += 1

    def _failed(self, error: Exception) -> None:
        self._next_try = time.monotonic() + RETRY_S
        if self._down_since is None:
            self._down_since = time.time()
            log.error("lineage database %s: writes are failing (%s); new flows and counts go to the journal %s "
                      "and are replayed when it answers (logged once per outage)",
                      redact(self.database.url), one_line(error), self.journal.path)  # fmt: skip

    def _recovered(self) -> None:
        if self._down_since is not None:
            log.warning("lineage database %s: writes succeed again after %.0fs; the journal is replayed",
                        redact(self.database.url), time.time() - self._down_since)  # fmt: skip
            self._down_since = None

    def prepare_purge(self, retention_days: float, now: float | None = None) -> integrity.Replay | None:
        try:
            return self.database.prepare_purge(retention_days, now)
        except (psycopg.Error, SchemaTooNew):
            return None  # the purge reads it again itself, or waits for the next one

    def purge(self, retention_days: float, now: float | None = None, replay: integrity.Replay | None = None) -> int:
        try:
            return self.database.purge(retention_days, now, replay)
        except (psycopg.Error, SchemaTooNew) as exc:
            self._failed(exc)
            return 0  # the next purge (hourly) tries again; nothing is lost by waiting

    def rows(self) -> list[EdgeRow]:
        return self.database.rows()

    def integrity(self, key: bytes | None = None, *, strict: bool = True) -> integrity.Report:
        return self.database.integrity(key, strict=strict)

    def for_copy(self, key: bytes | None) -> tuple[Report, list[EdgeRow], str | None]:
        return self.database.for_copy(key)

    def metrics(self) -> list[str]:
        return [
            "# HELP lineage_proxy_edge_database_failing 1 while the lineage database refuses writes (summed over workers).",
            "# TYPE lineage_proxy_edge_database_failing gauge",
            f"lineage_proxy_edge_database_failing {1 if self._down_since is not None else 0}",
            "# HELP lineage_proxy_edge_journaled_total Edge writes that went to the local journal.",
            "# TYPE lineage_proxy_edge_journaled_total counter",
            f"lineage_proxy_edge_journaled_total {self.journaled}",
            "# HELP lineage_proxy_edge_replayed_total Edge writes replayed from the journal into the database.",
            "# TYPE lineage_proxy_edge_replayed_total counter",
            f"lineage_proxy_edge_replayed_total {self.replayed}",
            "# HELP lineage_proxy_edge_journal_rejected_total Journaled batches not replayed: their signature or "
            "shape is wrong (kept in the journal's rejected table).",
            "# TYPE lineage_proxy_edge_journal_rejected_total counter",
            f"lineage_proxy_edge_journal_rejected_total {self.rejected}",
        ]

    def close(self) -> None:
        if self._backlog:
            self._replay()  # a last chance; what stays is replayed by the next start
        self.database.close()
        self.journal.close()
