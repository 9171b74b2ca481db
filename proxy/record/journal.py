"""When the lineage database is away, nothing is lost: writes go to a bounded local journal (a SQLite
file) and are replayed into the database, in order and exactly once, when it answers again.

Every batch carries a token (random), and the database records the token of every batch it
applies in the same transaction (postgres.py `applied`). So a replay that crashes between applying an
entry and deleting it, a batch whose commit was lost with the connection and then journaled, or two
workers sharing one journal and replaying the same entry, all count once. While the journal holds rows,
new writes join its end (the order stays the order the calls came), and the backlog is replayed a slice
(`REPLAY_SLICE_S`) at a time, each slice a task of its own on the writer thread, so a new flow's write
waits for one slice at most, never for the whole backlog. During an outage the database is checked at
most every `RETRY_S`, on a thread of its own (a connect, and the locks a write takes, each granted within
`LOCK_WAIT_S`), and tried on the writer thread only once that check has had its answer: a database that
does not answer (a stalled host, a partition), or answers but keeps a lock a write needs (a table
locked by another session, a sidecar stuck inside its write holding the chain's lock), never holds the
writer, nor so a new flow's reply, beyond the one write that found it so (a silent one cut after the
statement timeout, postgres.py); every write, and the replay, waits `LOCK_WAIT_S` at most for a lock, never
the statement timeout: a write that finds one held is journaled then. The chain's advisory lock found
held by another writer (a sibling sidecar's retention purge or large flush) is no outage for
`CHAIN_BUSY_S`: the writes are journaled, not logged as failing. Only when the journal cannot take a batch
either (full, or its disk refuses) does `upsert` raise: the aggregator then keeps the counts in memory
and `require_record` zones fail closed. A journal that refuses writes (a full disk: even deleting a
replayed batch needs room) never stops the database path: writes go to the database directly while it
answers, the backlog waiting (a batch replayed but not deleted counts once: its token).

Each journaled row names the sidecar that journaled it (`lineage.sidecar`; journal format 2), and is replayed as
that sidecar's, whoever replays it: a sidecar renamed while its journal holds a backlog, or a journal carried to
another host, still files those calls under the name they were served by. A row journaled by a release before
(format 1) names none, and is replayed as the replaying sidecar's (it was that sidecar's: a journal is one
sidecar's own, and such a release named no other).

A value the database refuses (a NUL character, a number out of range) never takes its batch down: the
batch is written row by row, each row under a token of its own, and only the refused rows are set aside
(the journal's `rejected` table).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg

from proxy.config import sqlite_file
from proxy.errors import StartupError
from proxy.record import integrity
from proxy.record.integrity import Report
from proxy.record.postgres import ChainBusy, PostgresStore, blocked, one_line, redact
from proxy.record.store import (
    OPEN_TIMEOUT_S,
    EdgeKey,
    EdgeRow,
    EdgeWrite,
    PartlyWritten,
    SchemaTooNew,
    StoreBusy,
    Unblocker,
    busy,
    file_identity,
    flat,
    foreign_tables,
    is_busy,
    opened_whole,
    require_directory,
    still_named,
    wal,
    writable,
)

log = logging.getLogger("lineage_proxy.edges")

JOURNAL_TABLES = frozenset({"entries", "meta", "rejected"})
RETRY_S = 1.0  # how often a failing database is tried again (by the next write or the aggregator's tick)
# how long a write waits for that check (not at all once a check has taken longer: a silent database)
PROBE_WAIT_S = 1.0
CLOSE_REPLAY_S = 5.0  # at shutdown, how long the backlog may replay (the rest waits for the next start)
# how long one replay pass may hold the writer thread (the aggregator asks for the next one as soon as the
# writes queued meanwhile are done: edges.py), so a new flow's write waits for one slice of a backlog at most
REPLAY_SLICE_S = 0.1
# how long a write, a check or a replay waits for a lock another session holds (the chain's advisory lock, a
# table lock): a database that does not grant it is "not answering", the write journaled (a new flow's reply
# waits for its write: this long at most for a lock, not the statement timeout)
LOCK_WAIT_S = 0.5
# how long the chain's advisory lock may be found held by another writer, every write and check in a row,
# before the database counts as not answering (a sidecar stuck inside its write): until then the writes are
# journaled, and the database tried again every RETRY_S, with no outage said (a sibling sidecar's long write,
# its retention purge of a large store or a large flush, holds the lock seconds)
CHAIN_BUSY_S = 10.0
DEFAULT_MAX_ROWS = 1_000_000  # edge writes the journal holds at most (lineage.journal_max_rows)
# what says the database is away, or will not take writes now: the batch is journaled
DATABASE_ERRORS: tuple[type[Exception], ...] = (psycopg.Error, SchemaTooNew, integrity.UnsignedHead, StartupError)
# what says the database refuses one of the values (a NUL character, a number out of range, a lone
# surrogate): never any better on a retry, and only that row's fault
VALUE_ERRORS: tuple[type[Exception], ...] = (psycopg.DataError, UnicodeEncodeError)

# what a journal's rows hold: 2, the sidecar that journaled them too (a 12th item); 1 (or no `format` in `meta`): the
# release before's 11-item rows, replayed as the replaying sidecar's. A journal of a format after FORMAT (a later
# release's) is refused at the start, never replayed as a guess
FORMAT = 2

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


def _key_mark(key: bytes) -> str:
    """What names a key in the journal's `meta` (`signed_with`) without giving it away: its HMAC of a constant."""
    return hmac.new(key, b"journal key", hashlib.sha256).hexdigest()[:32]


class ForeignJournal(sqlite3.DatabaseError):
    """The journal holds another database's writes (two proxies of two databases given one file: the default
    `./lineage-journal.db` in one working directory): neither taken nor replayed here, where they would be counted
    in the wrong database."""


class JournalFull(Exception):
    """The journal holds `max_rows` already: the batch stays with the caller."""


def _dumps(rows: list[Any]) -> bytes:
    """Rows as JSON; a string no UTF-8 can hold (a lone surrogate) escaped as JSON writes it."""
    try:
        return orjson.dumps(rows)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(rows).encode()


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # what `_dumps` escaped (raises ValueError when it is not JSON either)


class Journal:
    """Batches not yet in the database, oldest first. Safe for several workers sharing the file (WAL).
    The edge writes it holds are counted as batches come and go, so a write never scans the journal to
    enforce `max_rows`; the count is read from the file again only when another process has written to it
    since (`PRAGMA data_version` changes for other connections' commits only)."""

    def __init__(
        self, path: str | Path, max_rows: int = DEFAULT_MAX_ROWS, *, key: bytes | None = None,
        retired: tuple[bytes, ...] = (), database: str = "",
    ) -> None:  # fmt: skip
        """`key`: the chain's HMAC key (lineage.integrity_key_file). Each batch is signed with it, and one
        whose signature does not match (edited, added by hand, or written without the key) is never
        replayed into the database, where it would be chained and signed: it is set aside in `rejected`.
        `retired`: the keys `key` replaced (lineage.integrity_retired_key_files): the batches journaled before the
        rotation, signed with one of them, are signed again with `key` as the journal is first opened with it
        (`_signing`), so they are replayed, and one signed with a retired key later (whoever kept it) is set aside,
        at later opens too.
        `database`: which database its writes are for (`database_identity`): a journal holding writes for
        another one is refused at the start (StartupError) and, claimed by the other while this one runs, neither
        written nor replayed (ForeignJournal); one that holds none is claimed by whoever writes to it."""
        self.path = sqlite_file(path) if isinstance(path, str) else str(path)  # a `file:` URI's file (SqliteNameError)
        self.database = database
        self.max_rows = max_rows
        self._key = key
        require_directory(self.path, "lineage journal")
        unblocker = Unblocker(self.path)  # a FIFO swapped in after the check, where SQLite opens (`opened_whole`)
        try:
            target, uri = writable(self.path)
            self._db = sqlite3.connect(target, uri=uri, check_same_thread=False, timeout=10, isolation_level=None)
            began = time.monotonic()
            foreign = foreign_tables(self._db, JOURNAL_TABLES)
            if foreign:  # before WAL mode is set: that too would change another program's file
                self._db.close()
                raise StartupError(f"lineage journal {self.path}: not a lineage journal: it holds other tables "
                                   f"({foreign}) and none of a journal's; point lineage.journal at a new file")  # fmt: skip
            wal(self._db, began=began)  # (the read before it and the switch wait OPEN_TIMEOUT_S together)
            self._db.execute("PRAGMA synchronous=NORMAL")  # survives kill -9, like the SQLite store
            try:
                self._open(key, retired)
            except ForeignJournal as exc:
                self._db.close()
                raise StartupError(f"{exc}; give each database's proxies a journal of their own (lineage.journal): "
                                   "its writes are replayed by a proxy of that database") from None  # fmt: skip
        except BaseException as exc:
            opened_whole(unblocker, "lineage journal", self.path, getattr(self, "_db", None))
            if isinstance(exc, sqlite3.OperationalError) and not isinstance(exc, StoreBusy) and is_busy(exc):
                from proxy.record.stores import shown_path  # (it imports the store module)

                # said as the store's is (`busy`), where it was `database is locked` alone
                said = busy(self.path, exc, OPEN_TIMEOUT_S, reader=False)
                raise StartupError(f"cannot open the lineage journal {shown_path(self.path)}: {said}") from None
            raise
        opened_whole(unblocker, "lineage journal", self.path, self._db)
        self._held = 0  # edge writes in the file, as of `_version`
        self._version: int | None = None
        self._count()
        self._where = os.path.abspath(self.path)  # as opened: the same file whatever the working directory is later
        self._file = file_identity(self._where)  # (device, inode): `_still_named`

    def _open(self, key: bytes | None, retired: tuple[bytes, ...]) -> None:
        """Its schema, and the batches signed again with `key` and claimed for its database, under the write lock:
        workers opening one journal together see one schema."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            if "mac" not in {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}:
                # a journal from before signatures (or one whose column was dropped, which looks the same): its
                # batches are unsigned, so with a key they are set aside at replay, never signed as they stand
                self._db.execute("ALTER TABLE entries ADD COLUMN mac TEXT")
            self._format()
            self._claim()
            if key is not None:
                self._signing(key, retired)

    def _format(self) -> None:
        """In the opening write transaction: StartupError for a journal of a later release's format (its rows may say
        what this one cannot read); otherwise marked FORMAT, what this release journals (it reads format 1 too)."""
        found = self._db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        try:
            written = int(found[0]) if found is not None else 1
        except (TypeError, ValueError):
            written = FORMAT + 1  # not a number: not written by this release
        if written > FORMAT:
            raise StartupError(f"lineage journal {self.path}: written in format {str(found[0])[:20]!r} by a later "
                               f"release (this one reads format {FORMAT} and before); replay it with that release, "
                               "or point lineage.journal at a new file")  # fmt: skip
        if written < FORMAT:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('format', ?)", (str(FORMAT),))

    def _signing(self, key: bytes, retired: tuple[bytes, ...]) -> None:
        """In the opening write transaction: the journal marked as signed with `key` from now on (`signed_with`), and
        its backlog signed with a `retired` key signed again with `key`, once: at the first open with `key` after a
        key it replaces. Re-signed at every open (the retired keys stay configured until a purge has cut their
        chain entries), a batch added with a retired key after the rotation, by a writer still on the old key or
        whoever kept it, was replayed at the writer's next restart. A mark of a key that is neither (a newer key's:
        this writer was not restarted with it; or an edited one) is left, and nothing is signed again.
        Only the marked key's backlog is signed again: rotated twice, a batch signed with the first key after the
        first rotation, set aside by every writer on the second, stays aside at the second rotation. A journal with
        no mark (a new one, or one from a release before it) has each retired key's signed again."""
        found = self._db.execute("SELECT value FROM meta WHERE key = 'signed_with'").fetchone()
        mark = _key_mark(key)
        if found is not None and found[0] == mark:
            return
        signed = retired if found is None else tuple(old for old in retired if _key_mark(old) == found[0])
        if found is not None and not signed:
            return
        if signed:
            self._resign(key, signed)
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('signed_with', ?)", (mark,))

    def _resign(self, key: bytes, retired: tuple[bytes, ...]) -> None:
        """The batches signed with a `retired` key signed again with `key`, in the caller's write transaction: a
        backlog journaled before the rotation is replayed, but a batch added with a retired key once a writer
        has opened the journal with the new key is not (chained, it would be signed with the new key)."""
        after = 0
        while page := self._db.execute("SELECT id, token, rows, mac FROM entries WHERE id > ? ORDER BY id LIMIT 100",
                                        (after,)).fetchall():  # fmt: skip
            for id_, token, text, mac in page:
                if not (isinstance(token, str) and isinstance(text, str | bytes) and isinstance(mac, str)):
                    continue  # `oldest` says why it is not replayed
                data = text.encode() if isinstance(text, str) else bytes(text)
                if any(hmac.compare_digest(mac, _mac(old, token, data)) for old in retired):
                    self._db.execute("UPDATE entries SET mac = ? WHERE id = ?", (_mac(key, token, data), id_))
            after = page[-1][0]

    def _claim(self) -> None:
        """In a write transaction: the journal's writes are for this proxy's database (none held: claimed for it);
        ForeignJournal when they are another's. A journal from before it said (no `database`) is taken as this one's."""
        if not self.database:
            return
        other = self._other_database()
        if other is not None and self._db.execute("SELECT 1 FROM entries LIMIT 1").fetchone() is not None:
            raise self._foreign(other)
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('database', ?)", (self.database,))

    def _other_database(self) -> str | None:
        """The database another proxy claimed the journal for; None when it is this one's or no one's (or this
        journal was opened for no database)."""
        if not self.database:
            return None
        found = self._db.execute("SELECT value FROM meta WHERE key = 'database'").fetchone()
        return str(found[0]) if found is not None and found[0] != self.database else None

    def _foreign(self, other: str) -> ForeignJournal:
        return ForeignJournal(f"lineage journal {self.path} holds edge writes for the database {other}, not for "
                              f"{self.database}")  # fmt: skip

    def _count(self) -> int:
        """The edge writes held: the running count, read again when another connection has committed."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:  # read before the sum: a commit in between only makes it recount
            self._held = int(self._db.execute("SELECT coalesce(sum(n), 0) FROM entries").fetchone()[0])
            self._version = version
        return self._held

    def _still_named(self) -> None:
        """`still_named`: a batch journaled into a file no path names is replayed only by this process, and lost at
        its next start, or its `kill -9`. Refused instead, as a full journal is (the aggregator keeps the counts in
        memory and says so; `require_record` zones fail closed while the database is away too)."""
        still_named(self._where, self._file, f"lineage journal {self.path}")

    def append(self, token: str, rows: list[tuple[Any, ...]]) -> None:
        self._still_named()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")  # the write lock first: no other process appends meanwhile
            self._claim()
            held = self._count()
            if held + len(rows) > self.max_rows:
                raise JournalFull(f"the journal {self.path} holds {held} edge writes (journal_max_rows "
                                  f"{self.max_rows})")  # fmt: skip
            text = _dumps(rows)
            mac = _mac(self._key, token, text) if self._key is not None else None
            self._db.execute("INSERT INTO entries (token, n, rows, mac) VALUES (?, ?, ?, ?)",
                             (token, len(rows), text, mac))  # fmt: skip
        self._held = held + len(rows)  # committed

    def oldest(
        self, limit: int = 100, after: int | None = None
    ) -> list[tuple[int, str, list[EdgeWrite] | str, str | None]]:
        """The oldest batches (after the id `after`): (id, token, edge writes, the sidecar that journaled them),
        or in place of the writes why the batch may not be replayed (its signature does not match, it is not a
        batch of edge writes, or its rows name two sidecars). The sidecar is None for a batch journaled by a
        release before rows named it (format 1): it is replayed as the replaying sidecar's.
        ForeignJournal when another database's proxy has claimed the journal since."""
        other = self._other_database()
        if other is not None:
            raise self._foreign(other)
        found = self._db.execute("SELECT id, token, rows, mac FROM entries WHERE ? IS NULL OR id > ? ORDER BY id "
                                 "LIMIT ?", (after, after, limit)).fetchall()  # fmt: skip
        batches: list[tuple[int, str, list[EdgeWrite] | str, str | None]] = []
        for id_, token, text, mac in found:
            if not isinstance(token, str) or not isinstance(text, str | bytes):  # edited by hand
                batches.append((id_, str(token)[:60], "its token or rows are not text", None))
                continue
            data = text.encode() if isinstance(text, str) else bytes(text)
            if self._key is not None and not (
                isinstance(mac, str) and hmac.compare_digest(mac, _mac(self._key, token, data))
            ):
                batches.append((id_, token, "its signature does not match: edited, or not written with this key", None))
                continue
            try:
                rows = _loads(data)
            except ValueError as exc:
                batches.append((id_, token, f"not JSON ({exc})", None))
                continue
            if not isinstance(rows, list) or not all(integrity.is_change(row) for row in rows):
                batches.append((id_, token, "not a batch of edge writes", None))
                continue
            # one sidecar journals a batch (`JournaledStore.upsert`): its rows name it, or none (format 1)
            sidecars = {row[11] if len(row) > 11 else None for row in rows}
            if len(sidecars) > 1:
                batches.append((id_, token, "its rows name more than one sidecar, or some none: not one batch", None))
                continue
            batches.append((id_, token, [_write(row) for row in rows], sidecars.pop() if sidecars else None))
        return batches

    def reject(self, entry_id: int, why: str) -> bool:
        """Set a batch aside, kept for whoever looks into it, never replayed. False when another process sharing
        the journal did first."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO rejected (token, n, rows, mac, at, why) SELECT token, n, rows, mac, ?, ? "
                             "FROM entries WHERE id = ?", (time.time(), why, entry_id))  # fmt: skip
            removed = self._delete(entry_id)
        self._held -= removed  # committed
        return removed > 0

    def set_aside(self, entry_id: int | None, token: str, rows: list[tuple[Any, ...]], why: str) -> bool:
        """Keep `rows` (some of a batch: those the database refuses the values of) in `rejected`, and
        delete the journaled batch they came from (`entry_id`; None: a write that was never journaled). False
        when another process sharing the journal set that batch aside first (its rows are kept once)."""
        self._still_named()
        text = _dumps(rows)
        mac = _mac(self._key, token, text) if self._key is not None else None
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            removed = self._delete(entry_id) if entry_id is not None else 0
            kept = entry_id is None or removed > 0  # (a batch holds one edge write at least)
            if kept:
                self._db.execute("INSERT INTO rejected (token, n, rows, mac, at, why) VALUES (?, ?, ?, ?, ?, ?)",
                                 (token, len(rows), text, mac, time.time(), why))  # fmt: skip
        self._held -= removed
        return kept

    def remove(self, entry_id: int) -> None:
        self._held -= self._delete(entry_id)  # the DELETE commits on its own, or raises

    def _delete(self, entry_id: int) -> int:
        """Delete a batch; the edge writes it held (0 when another process replayed and removed it first:
        this one recounts then)."""
        found = self._db.execute("SELECT n FROM entries WHERE id = ?", (entry_id,)).fetchone()
        deleted = self._db.execute("DELETE FROM entries WHERE id = ?", (entry_id,)).rowcount
        return int(found[0]) if deleted and found is not None else 0

    def held(self) -> int:
        """Edge writes waiting (from every process sharing the file)."""
        return self._count()

    def close(self) -> None:
        self._db.close()


def _write(row: list[Any]) -> EdgeWrite:
    """A journaled row (`flat`'s) as an edge write, keyed by its rule (a row journaled by a release before
    edges were keyed by rule holds one too, or none: None, as ''; one journaled before reasons were kept
    has none). Its sidecar (a 12th item) is the batch's: `oldest` returns it."""
    return (EdgeKey._make((*row[:6], row[9] or "")), row[6], row[7], row[8], row[10] if len(row) > 10 else None)


class _Probe:
    """Whether the database answers, found out on a daemon thread of its own (`PostgresStore.ping`)."""

    def __init__(self, ping: Callable[[], None]) -> None:
        self.done = threading.Event()
        self.error: Exception | None = None
        self.took = math.inf
        self._ping = ping
        threading.Thread(target=self._run, name="lineage-db-probe", daemon=True).start()

    def _run(self) -> None:
        began = time.monotonic()
        try:
            self._ping()
        except Exception as exc:  # whatever it is, the database does not take writes now
            self.error = exc
        self.took = time.monotonic() - began
        self.done.set()


class JournaledStore:
    """The PostgreSQL store with the journal in front of its outages (an `EdgeStore`)."""

    def __init__(self, database: PostgresStore, journal: Journal) -> None:
        self.database = database
        self.journal = journal
        self._backlog = journal.held() > 0  # left by a previous run (a crash during an outage)
        self._down_since: float | None = None
        # monotonic: since when every write (or check) found the chain's advisory lock held by another writer
        self._busy_since: float | None = None
        self._next_try = 0.0  # monotonic: when the database may be tried again
        self._probe: _Probe | None = None  # during an outage: the check in flight
        self._probe_wait = PROBE_WAIT_S
        self._journal_failing: float | None = None  # since when the journal refuses writes (monotonic)
        self._unremoved: set[int] = set()  # journaled batches applied, whose delete the journal refused
        self.journaled = 0  # edge writes that went to the journal
        self.replayed = 0  # edge writes replayed from it into the database
        self.rejected = 0  # batches (or rows of one) set aside: signature, shape, or values the database refuses
        if database.unreachable is not None:  # away at the start: an outage from the first write on
            self._failed(database.unreachable)

    def upsert(self, rows: Iterable[EdgeWrite]) -> None:
        """Write to the database, or journal when it is away or a backlog is still waiting (a journal that
        refuses writes leaves the backlog waiting, and the database takes new writes directly). Raises
        only when neither can take the rows. A write never replays the backlog (it joins its end); an
        empty call replays one slice of it (`replay`)."""
        writes = list(rows)
        if not writes:
            self.replay()
            return
        # random: the chain shows the tokens applied, and one told from them (a process's serial number) could be
        # claimed in `applied` before its write by whoever can write the database, without the key: that write
        # would be skipped as applied, no record and no error
        token = uuid.uuid4().hex
        direct = not self._backlog or self._journal_failing is not None
        if direct and self._written(writes, token):
            return
        try:
            self.journal.append(token, [flat(row, self.database.sidecar) for row in writes])
        except (JournalFull, sqlite3.Error) as exc:
            self._journal_refused(exc)
            if not direct and self._written(writes, token):  # behind a backlog, the database takes it directly
                return
            if isinstance(exc, JournalFull):
                self._journal_part(token, writes, exc)
            raise  # neither takes it: the aggregator keeps the rows
        self._journal_ok()
        self.journaled += len(writes)
        self._backlog = True

    def _journal_part(self, token: str, writes: list[EdgeWrite], full: JournalFull) -> None:
        """A batch larger than the room the journal has left (`max_rows` less what it holds): the writes that fit
        are journaled, and PartlyWritten gives the rest back to the aggregator. Refused whole, a flush of more flows
        than `journal_max_rows` was never journaled however empty the journal was: its counts lived in memory only
        (lost to a kill -9) for the whole outage. Returns when none fit (the caller raises `full`)."""
        try:
            room = self.journal.max_rows - self.journal.held()
            if not 0 < room < len(writes):
                return
            self.journal.append(token, [flat(row, self.database.sidecar) for row in writes[:room]])
        except (JournalFull, sqlite3.Error):  # another process took the room meanwhile, or the file refuses
            return
        self.journaled += room
        self._backlog = True
        raise PartlyWritten(f"{full}: {room} of a batch's {len(writes)} edge writes journaled, {len(writes) - room} "
                            "kept in memory", writes[room:]) from full  # fmt: skip

    def _written(self, writes: list[EdgeWrite], token: str) -> bool:
        """Whether the database took `writes` now (tried only when it may be: `_answering`)."""
        if not self._answering():
            return False
        try:
            self._write(writes, token, None)  # it flattens them for its statement itself
        except DATABASE_ERRORS as exc:
            self._failed(exc)  # journaled (signed) until the database takes them
            return False
        self._recovered()
        return True

    def replay(self) -> bool:
        """One slice of the backlog (REPLAY_SLICE_S at most, oldest first) when the database may be tried
        now; whether more waits that may be replayed at once. The aggregator calls it on the writer
        thread at each tick, and again while it says so, each call a task of its own: a write queued
        meanwhile waits for one slice at most, never for the whole backlog."""
        if self._backlog and time.monotonic() >= self._next_try and self._answering():
            self._replay(until=time.monotonic() + REPLAY_SLICE_S)
        return self._backlog and self._down_since is None and time.monotonic() >= self._next_try

    def _away(self) -> bool:
        """Whether the database takes no direct writes now: an outage, or another writer holding the chain's
        lock (`_failed`)."""
        return self._down_since is not None or self._busy_since is not None

    def _answering(self) -> bool:
        """Whether the database may be tried on this thread (the writer's) now: always but during an
        outage, where only once a check on a thread of its own has had its answer. A check starts at most
        every RETRY_S and is waited for PROBE_WAIT_S, not at all once one took longer (the database does
        not answer: its check holds only its own thread)."""
        if not self._away():
            return True
        probe = self._probe
        if probe is None:
            if time.monotonic() < self._next_try:
                return False
            probe = self._probe = _Probe(self._check)
            probe.done.wait(self._probe_wait)
        if not probe.done.is_set():
            return False
        self._probe = None
        self._probe_wait = PROBE_WAIT_S if probe.took < PROBE_WAIT_S else 0.0
        if probe.error is not None:
            self._failed(probe.error)
            return False
        return True

    def _check(self) -> None:
        """The check during an outage (on its thread): the database answers, and grants the locks a write
        takes within LOCK_WAIT_S (a lock held elsewhere makes it wait as a silent one would)."""
        self.database.ping(LOCK_WAIT_S)

    def _write(self, writes: list[EdgeWrite], token: str, entry_id: int | None, sidecar: str | None = None) -> int:
        """Apply `writes` under `token`; the edge writes applied (0: the token was applied before). A batch
        holding a value the database refuses is written row by row, each under `token/i` (so a replay
        counts each once), and only the refused rows are set aside. Raises what says the database is
        away (DATABASE_ERRORS), or the journal's sqlite3.Error while setting rows of `entry_id` aside.
        Every write waits LOCK_WAIT_S at most for a lock another session holds (a `LOCK TABLE`, the chain's
        advisory lock held by a sidecar stuck inside its write), not the statement timeout: a new flow's
        reply waits for its write, which is journaled then, as the writes after it are until the check passes.
        `sidecar`: the one that journaled a replayed batch (None: this one's)."""
        try:
            return len(writes) if self.database.apply(writes, token, lock_wait_s=LOCK_WAIT_S, sidecar=sidecar) else 0
        except VALUE_ERRORS as exc:
            refused: list[tuple[EdgeWrite, BaseException]] = [(writes[0], exc)] if len(writes) == 1 else []
        applied = 0
        if not refused:
            for index, row in enumerate(writes):
                try:
                    applied += self.database.apply([row], f"{token}/{index}", lock_wait_s=LOCK_WAIT_S, sidecar=sidecar)
                except VALUE_ERRORS as exc:
                    refused.append((row, exc))
        self._refuse(entry_id, token, len(writes), refused, self.database.sidecar if sidecar is None else sidecar)
        return applied

    def _refuse(
        self, entry_id: int | None, token: str, total: int, refused: list[tuple[EdgeWrite, BaseException]],
        sidecar: str,
    ) -> None:  # fmt: skip
        why = f"the database refuses its values: {one_line(refused[0][1])}"
        keys = ", ".join(ascii(tuple(row[0])) for row, _ in refused[:3]) + (", ..." if len(refused) > 3 else "")
        log.error("lineage database %s: %d of the %d edge writes of batch %s are not written, %s (%s); they are "
                  "kept in the journal %s's `rejected` table", redact(self.database.url), len(refused), total,
                  token, why, keys, self.journal.path)  # fmt: skip
        try:
            if self.journal.set_aside(entry_id, token, [flat(row, sidecar) for row, _ in refused], why):
                self.rejected += 1
        except sqlite3.Error as exc:
            if entry_id is not None:
                raise  # the batch stays journaled: its rows are applied once (their tokens), the rest refused again
            log.error("lineage journal %s: cannot keep the refused writes of batch %s (%s): they are lost",
                      self.journal.path, token, exc)  # fmt: skip

    def _replay(self, until: float = math.inf) -> None:
        """Every journaled batch, oldest first, each applied (or found applied) then deleted; until the
        monotonic `until`, the rest waiting (one batch at least: a first page slower to read than a slice, 100
        large batches, stopped every pass before it and the backlog never moved). A journal that cannot delete
        (its disk full) leaves the batches where they are: the pass goes on applying them, and each next pass
        tries one delete (the oldest such batch's) and, still refused, resumes after the newest batch applied
        already, never reading those again (tens of thousands of them would fill every slice), so it reaches
        those never applied (cut off by a slice's end, or journaled since by another worker: a later batch has
        a higher id); once a delete succeeds, a pass sweeps from the oldest again, deleting as it goes (a
        batch applied twice counts once: its token)."""
        refused: sqlite3.Error | None = None  # the journal's first refusal in this pass
        reached = False
        stopped = False  # at `until`, batches left
        after: int | None = None  # where the pass starts (None: the oldest batch)
        try:
            if self._unremoved:  # one delete tried first: the oldest batch a pass before could not delete
                oldest = min(self._unremoved)
                try:
                    self.journal.remove(oldest)
                except sqlite3.Error as exc:  # still refused: resume after what is applied already
                    refused = exc
                    after = max(self._unremoved)
                else:
                    self._unremoved.discard(oldest)  # room again: a full sweep, deleting as it goes
            visited = False  # a batch of this pass: one at least, however long reading the page took
            for entry_id, token, rows, sidecar in self._journaled(after):
                if visited and time.monotonic() > until:
                    stopped = True
                    break
                visited = True
                if entry_id not in self._unremoved:
                    try:
                        if isinstance(rows, str):
                            self._set_aside(entry_id, token, rows)
                            continue
                        reached = True
                        self.replayed += self._write(rows, token, entry_id, sidecar)
                    except sqlite3.Error as exc:  # setting it (or its refused rows) aside: all of it next time
                        refused = refused or exc
                        continue
                elif refused is not None:
                    continue
                if refused is None:
                    try:
                        self.journal.remove(entry_id)
                    except sqlite3.Error as exc:
                        refused = exc  # the pass goes on: batches after it may never have been applied
                    else:
                        self._unremoved.discard(entry_id)
                        continue
                self._unremoved.add(entry_id)
        except sqlite3.Error as exc:  # reading it
            refused = refused or exc
        except DATABASE_ERRORS as exc:
            self._failed(exc)
            return
        if reached:
            self._recovered()
        if refused is not None:
            self._journal_refused(refused)
            self._next_try = time.monotonic() + RETRY_S
            return
        if stopped:
            return  # the next slice goes on from the oldest left
        self._backlog = False
        self._unremoved.clear()
        self._journal_ok()
        self._recovered()

    def _journaled(self, after: int | None = None) -> Iterator[tuple[int, str, list[EdgeWrite] | str, str | None]]:
        """The journal's batches (after the id `after`), oldest first, read a page at a time."""
        while page := self.journal.oldest(after=after):
            yield from page
            after = page[-1][0]

    def _set_aside(self, entry_id: int, token: str, why: str) -> None:
        log.error("lineage journal %s: batch %s is not replayed: %s. It is kept in the journal's `rejected` table",
                  self.journal.path, token, why)  # fmt: skip
        if self.journal.reject(entry_id, why):
            self.rejected += 1

    def _failed(self, error: Exception) -> None:
        """The database did not take a write (or a check): tried again RETRY_S later, the writes journaled
        meanwhile. An outage (logged, `lineage_proxy_edge_database_failing` 1) but while only the chain's
        advisory lock is found held by another writer, for CHAIN_BUSY_S at most: a sibling's long write."""
        now = time.monotonic()
        self._next_try = now + RETRY_S
        if blocked(error):  # silent, or a lock held elsewhere: never wait on its checks
            self._probe_wait = 0.0
        if self._down_since is None and isinstance(error, ChainBusy):
            if self._busy_since is None:
                self._busy_since = now
            if now - self._busy_since < CHAIN_BUSY_S:
                log.debug("lineage database %s: another writer holds the chain's lock (for %.1fs now); the write is "
                          "journaled and tried again in %gs", redact(self.database.url), now - self._busy_since,
                          RETRY_S)  # fmt: skip
                return
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.error("lineage database %s: writes are failing (%s); new flows and counts go to the journal %s "
                      "and are replayed when it answers (logged once per outage)",
                      redact(self.database.url), one_line(error), self.journal.path)  # fmt: skip

    def _recovered(self) -> None:
        self._probe_wait = PROBE_WAIT_S
        self._busy_since = None
        if self._down_since is not None:
            log.warning("lineage database %s: writes succeed again after %.0fs; the journal is replayed",
                        redact(self.database.url), time.monotonic() - self._down_since)  # fmt: skip
            self._down_since = None

    def _journal_refused(self, error: Exception) -> None:
        """The journal refused a write (full, or its file or disk refuses): from now until one succeeds,
        writes go to the database directly whenever it answers."""
        if self._journal_failing is not None:
            return
        self._journal_failing = time.monotonic()
        if not isinstance(error, JournalFull):  # a full journal is said by the aggregator, as the batch stays
            log.error("lineage journal %s: cannot be written (%s); until it can, writes go to the database directly "
                      "whenever it answers, and what the journal holds waits (logged once)",
                      self.journal.path, one_line(error))  # fmt: skip

    def _journal_ok(self) -> None:
        if self._journal_failing is not None:
            log.warning("lineage journal %s: takes writes again after %.0fs", self.journal.path,
                        time.monotonic() - self._journal_failing)  # fmt: skip
            self._journal_failing = None

    def prepare_purge(self, retention_days: float, now: float | None = None) -> integrity.Replay | None:
        try:
            return self.database.prepare_purge(retention_days, now)
        except DATABASE_ERRORS:
            return None  # the purge reads it again itself, or waits for the next one

    def purge(self, retention_days: float, now: float | None = None, replay: integrity.Replay | None = None) -> int:
        if self._away():
            return 0  # a database that does not answer (or is locked) would hold the writer thread for nothing
        try:
            return self.database.purge(retention_days, now, replay)
        except DATABASE_ERRORS as exc:
            self._failed(exc)
            return 0  # the next purge (hourly) tries again; nothing is lost by waiting

    def rows(self) -> list[EdgeRow]:
        return self.database.rows()

    def integrity(
        self, key: bytes | None = None, *, strict: bool = True, retired: tuple[bytes, ...] = ()
    ) -> integrity.Report:
        return self.database.integrity(key, strict=strict, retired=retired)

    def for_copy(
        self, key: bytes | None, retired: tuple[bytes, ...] = ()
    ) -> tuple[Report, list[EdgeRow], str | None, tuple[str, ...]]:
        return self.database.for_copy(key, retired)

    @property
    def head(self) -> tuple[int, str] | None:
        """The database's chain head as its writer last read or wrote it (what the journal holds is not chained yet)."""
        return self.database.head

    def metrics(self) -> list[str]:
        return [
            "# HELP lineage_proxy_edge_database_failing 1 while the lineage database refuses writes (in any worker, not a sum).",
            "# TYPE lineage_proxy_edge_database_failing gauge",
            f"lineage_proxy_edge_database_failing {1 if self._down_since is not None else 0}",
            "# HELP lineage_proxy_edge_journal_failing 1 while the local journal refuses writes (in any worker, not a sum).",
            "# TYPE lineage_proxy_edge_journal_failing gauge",
            f"lineage_proxy_edge_journal_failing {1 if self._journal_failing is not None else 0}",
            "# HELP lineage_proxy_edge_journaled_total Edge writes that went to the local journal.",
            "# TYPE lineage_proxy_edge_journaled_total counter",
            f"lineage_proxy_edge_journaled_total {self.journaled}",
            "# HELP lineage_proxy_edge_replayed_total Edge writes replayed from the journal into the database.",
            "# TYPE lineage_proxy_edge_replayed_total counter",
            f"lineage_proxy_edge_replayed_total {self.replayed}",
            "# HELP lineage_proxy_edge_journal_rejected_total Journaled batches not replayed (their signature or "
            "shape is wrong), and writes whose values the database refuses (kept in the journal's rejected table).",
            "# TYPE lineage_proxy_edge_journal_rejected_total counter",
            f"lineage_proxy_edge_journal_rejected_total {self.rejected}",
        ]

    def interrupt(self) -> None:
        """A shutdown that cannot wait: the database round trip waiting now is cut and no other is made,
        so every write still queued goes to the journal at once."""
        self.database.interrupt()

    def close(self) -> None:
        """A last, bounded replay of a backlog when the database answers (what stays is replayed by the
        next start); both connections closed whatever happens."""
        try:
            if self._backlog:
                # a check now (or the one in flight), waited for in any case
                if self._away():
                    if self._probe is not None:
                        self._probe.done.wait(PROBE_WAIT_S)
                    self._next_try, self._probe_wait = 0.0, PROBE_WAIT_S
                if self._answering():
                    self._replay(until=time.monotonic() + CLOSE_REPLAY_S)
        finally:
            try:
                self.database.close()
            finally:
                self.journal.close()
