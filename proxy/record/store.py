"""The embedded lineage store: edges in one SQLite file (WAL), safe for several processes at once.

Writes are upserts that add counts, so any number of proxy workers can share the file. The sink only
writes what it is given; when to write is the aggregator's business (`edges.py`). Every write is also
an entry of a hash chain in the same transaction (`integrity.py`), so edits and deletions show.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, NamedTuple, NoReturn, Protocol, TypeVar

import orjson

from proxy.config import sqlite_file
from proxy.errors import StartupError
from proxy.logs import escaped
from proxy.record import integrity
from proxy.record.integrity import Report

log = logging.getLogger("lineage_proxy.edges")

# the edge table (`{name}`: edges, or the table a store made before the rule, or the sidecar, keyed an edge is copied
# into); the rule is part of the key, '' when no rule fired (an allowed call), and so is the sidecar that recorded the
# edge (`lineage.sidecar`; '' for the edges recorded before sidecars were named)
EDGES_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    caller        TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    input_labels  TEXT NOT NULL,
    checkpoint    TEXT NOT NULL,
    output_labels TEXT NOT NULL,
    decision      TEXT NOT NULL,
    first_seen    REAL NOT NULL,
    last_seen     REAL NOT NULL,
    count         INTEGER NOT NULL,
    rule          TEXT NOT NULL DEFAULT '',
    reason        TEXT,
    sidecar       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (caller, purpose, input_labels, checkpoint, output_labels, decision, rule, sidecar)
) WITHOUT ROWID
"""
_CHAIN_TABLES = """
CREATE INDEX IF NOT EXISTS edges_last_seen ON edges (last_seen);
CREATE TABLE IF NOT EXISTS chain (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    at   REAL NOT NULL,
    body TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
SCHEMA = f"{EDGES_TABLE.format(name='edges')};{_CHAIN_TABLES}"
LINEAGE_TABLES = frozenset({"edges", "chain", "meta"})
# A store keyed by sidecar stops a writer of an earlier release at its start, as any trigger on the lineage tables
# does (its upsert would fail on every write, its counts kept in memory and lost, its purge would call the record
# unverifiable): a trigger that never fires, named so that its message says why. This one, written exactly so, is
# ours; so is the one before it (keyed by rule), which a store not yet keyed by sidecar holds and its re-keying
# drops; any other trigger stops a writer as before.
_FENCE_NAME = "lineage_store_keyed_by_sidecar_needs_lineage_proxy_2026_12_03_or_newer"
_FENCE_ROW = (_FENCE_NAME, f"CREATE TRIGGER {_FENCE_NAME} BEFORE DELETE ON meta WHEN 0 BEGIN SELECT 1; END")
FENCE = _FENCE_ROW[1].replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS", 1)
_RULE_FENCE_NAME = "lineage_store_keyed_by_rule_needs_lineage_proxy_2026_11_30_or_newer"
_RULE_FENCE_ROW = (_RULE_FENCE_NAME, _FENCE_ROW[1].replace(_FENCE_NAME, _RULE_FENCE_NAME))
_FENCES = frozenset({_FENCE_ROW, _RULE_FENCE_ROW})
_COLUMNS = "caller, purpose, input_labels, checkpoint, output_labels, decision, first_seen, last_seen, count, rule"
_ROW = f"{_COLUMNS}, reason, sidecar"  # an edge as stored (`EdgeRow.stored`), as the chain's changes say it
# the columns `verify --integrity` reads, table by table (an edges table of a store not re-keyed yet may lack
# `reason` and `sidecar`: `SqliteStore._stored`)
_VERIFIED_COLUMNS = (("chain", ("seq", "at", "body", "prev", "hash")), ("meta", ("key", "value")),
                     ("edges", tuple(_COLUMNS.split(", "))))  # fmt: skip


def dropped_column(
    columns_of: Callable[[str], set[str]], verified: tuple[tuple[str, tuple[str, ...]], ...] = _VERIFIED_COLUMNS
) -> str | None:
    """Why a store lacks a column `verify --integrity` reads (`verified`, table by table; `columns_of(table)`: the
    ones it has), None when it has them all."""
    for table, needed in verified:
        have = {column.lower() for column in columns_of(table)}
        gone = [column for column in needed if column not in have]
        if gone:
            return (f"this store's {table} table has no {', '.join(gone)} column{'s' if len(gone) > 1 else ''} "
                    "(dropped by hand: every release that chains its writes makes them)")  # fmt: skip
    return None


UPSERT = """
INSERT INTO edges (caller, purpose, input_labels, checkpoint, output_labels, decision,
                   first_seen, last_seen, count, rule, reason, sidecar)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (caller, purpose, input_labels, checkpoint, output_labels, decision, rule, sidecar) DO UPDATE SET
    count = count + excluded.count,
    first_seen = min(first_seen, excluded.first_seen),
    last_seen = max(last_seen, excluded.last_seen),
    reason = coalesce(excluded.reason, reason)
"""


class EdgeKey(NamedTuple):
    """The identity of a lineage edge: the flow (caller, purpose, input labels, checkpoint, output
    labels, decision: CONTRACT.md §5) and the rule that decided it ('' when none did: an allowed call),
    so each kind of denial of one flow is an edge of its own, and an approved kind never hides an
    unapproved one. Label sets are stored sorted, comma-joined."""

    caller: str
    purpose: str
    input_labels: str
    checkpoint: str
    output_labels: str
    decision: str
    rule: str = ""


# One edge's write: key (its rule in it), first_seen, last_seen, count, and the reason the caller was given
# (None: a caller that has none, or a store written before reasons were kept).
EdgeWrite = tuple[EdgeKey, float, float, int, str | None]


def flat(row: EdgeWrite, sidecar: str | None = None) -> tuple[Any, ...]:
    """One edge write as statement parameters (and journal rows, and chain changes): the flow's fields,
    then first, last, count, rule ('' for none: it is part of the key), reason, and the `sidecar` writing it
    (`lineage.sidecar`, a constant of the store's: a store's write, never a call, joins it, and a journal's, which
    is replayed as that sidecar's; None: a row as the release before journaled it, with none)."""
    key = row[0]
    if sidecar is None:
        return (*key[:6], row[1], row[2], row[3], key.rule, row[4])
    return (*key[:6], row[1], row[2], row[3], key.rule, row[4], sidecar)


@dataclass(frozen=True, slots=True)
class EdgeRow:
    key: EdgeKey  # its rule is the edge's ('' when none fired)
    first_seen: float
    last_seen: float
    count: int
    reason: str | None = None  # what the caller was told (a denial's message), when the store has it
    sidecar: str = ""  # the sidecar that recorded it (`lineage.sidecar`); '' for one recorded before they were named

    @property
    def rule(self) -> str | None:
        """The rule that decided the edge (its key's); None when none fired."""
        return self.key.rule or None

    @classmethod
    def stored(cls, row: Sequence[Any]) -> EdgeRow:
        """A row as a store holds it: the flow's fields, first, last, count, rule, reason, sidecar (a rule stored
        as '', or as NULL in a store not re-keyed yet, is none; a store not keyed by sidecar yet has none, '').
        EditedRow when its values are not an edge's."""
        if not (type(row[8]) is int and _shows_time(row[6]) and _shows_time(row[7]) and _texts(row)):
            raise EditedRow(row)
        return cls(EdgeKey._make((*row[:6], row[9] or "")), row[6], row[7], row[8], row[10], row[11])

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
            "sidecar": self.sidecar,
        }


# the times a reader can show (`datetime`'s years 1 to 9999): SQLite keeps any value in any column, `1e300` too
_FIRST_TIME, _LAST_TIME = -62135596800, 253402300799


def _shows_time(value: object) -> bool:
    return (type(value) is float or type(value) is int) and _FIRST_TIME <= value <= _LAST_TIME


def _texts(row: Sequence[Any]) -> bool:
    """Whether a row's key is text (its sidecar too), and its rule and reason text or none (written out: a reader
    checks every row)."""
    return (type(row[0]) is str and type(row[1]) is str and type(row[2]) is str and type(row[3]) is str
            and type(row[4]) is str and type(row[5]) is str and (row[9] is None or type(row[9]) is str)
            and (row[10] is None or type(row[10]) is str) and type(row[11]) is str)  # fmt: skip


class StoreUnclear(Exception):
    """Which tables are the store is not certain (a PostgreSQL search path that finds lineage tables in more than
    one schema), or which file (`StoreReplaced`): a reader stops with this message as it is, never calling the store
    "not a lineage store"."""


class StoreReplaced(StoreUnclear, sqlite3.OperationalError):
    """A SQLite store's file (or one SQLite opens beside it) replaced while a reader opened or read it: what was read
    is not certain to be the store's. A `sqlite3.Error`, so every reader's `read_errors()` takes it; its message
    follows the store's name."""


class UnreadableHere(Exception):
    """A SQLite store this process cannot read where it is (`_unreadable_here`): its message says why and what to do,
    and follows the store's name."""


class StoreWaited(Exception):
    """A read the database did not answer in time (PostgreSQL's NoAnswer), or answered that a lock it waited for was
    not granted (LockWaited; a SQLite store's, StoreBusy): the message says which, and a reader says it as it is, never
    calling the store "not a lineage store"."""


class StoreBusy(StoreWaited, sqlite3.OperationalError):
    """A SQLite store whose lock another process held for the whole of this process's wait (`busy`): a store being
    written, not a damaged one, nor one that is not a lineage store (until 2026-12-07 readers said `not a lineage
    store: database is locked`). A `sqlite3.Error`, so every reader's `read_errors()` takes it, and `serve`'s start
    says it after `cannot open the lineage store ...:`; its message follows the store's name."""


class EditedRow(sqlite3.DataError):
    """A row whose values are not an edge's (a count that is text, a time past any date, a blob for a name): left
    by a hand, never by a writer. Readers stop on it with this message, not a traceback; `verify --integrity`
    tells what was edited. A `sqlite3.Error`, so every reader's `read_errors()` takes it."""

    def __init__(self, row: Sequence[Any]) -> None:
        edge = (*row[:6], row[9] or "", row[11] if type(row[11]) is str else "")
        shown = [f"{what} {escaped(repr(value))[:80]}" for what, value, good in (
            ("first seen", row[6], _shows_time(row[6])), ("last seen", row[7], _shows_time(row[7])),
            ("count", row[8], type(row[8]) is int)) if not good]  # fmt: skip
        if not _texts(row):
            key = (*row[:6], row[9], row[11])
            shown.append(f"key {escaped(repr(key))[:200]}, reason {escaped(repr(row[10]))[:80]}")
        super().__init__(f"edge {integrity.edge_name(edge)}: a row whose values are not an edge's ({', '.join(shown)}): "
                         "edited by hand, not written by lineage-proxy; `verify --integrity` tells what the record "
                         "holds")  # fmt: skip


class EdgeStore(Protocol):
    """Where edges are kept. Called from one writer thread at a time; `upsert` adds counts, so any
    number of writers (workers, sidecars) may share one store."""

    def upsert(self, rows: Iterable[EdgeWrite]) -> None: ...

    def purge(self, retention_days: float, now: float | None = None) -> int: ...

    def rows(self) -> list[EdgeRow]: ...

    def close(self) -> None: ...


_T = TypeVar("_T")
_NOT_UTF8 = "Could not decode to UTF-8"  # how Python's sqlite3 refuses text that is not UTF-8


# why a record that replays intact does not verify when it holds text that is not UTF-8: read with its bytes escaped, a
# byte edited in (0xff) reads as the four characters a signed name held (`\xff`: a checkpoint an upstream named so),
# and no writer writes such text
_EDITED_INTO_BYTES: Final = (
    "the store holds text that is not UTF-8, which no writer writes (shown with its bytes escaped, `\\xff`, it can "
    "read as text the chain signed): a row or entry was edited by hand"
)


_ORIGIN: Final = "SELECT CAST(value AS BLOB) FROM meta WHERE key = 'origin'"  # `for_copy`'s, as bytes


def _bytes_escaped(data: bytes) -> str:
    """SQLite text as a reader shows it: UTF-8, and any byte that is not as its escape (`\\xff`), so a row or chain
    entry edited with bytes is read, shown, and differs from what the chain signed."""
    return data.decode("utf-8", "backslashreplace")


# the order a reader lists the edges in, SQLite's and PostgreSQL's (`in_read_order` in Python): an edge's whole key, so
# no two rows tie (12: the sidecar as selected, '' in a store not keyed by sidecar yet). Until 2026-12-07 it ended at
# the sidecar: rows differing by output labels or decision alone came as the plan gave them, on PostgreSQL in another
# order from one read to the next
READ_ORDER: Final = "checkpoint, purpose, caller, input_labels, rule, 12, output_labels, decision"


def in_read_order(rows: Iterable[EdgeRow]) -> list[EdgeRow]:
    """`rows` in the order a reader lists them (`READ_ORDER`): by checkpoint, purpose, caller, input labels, rule,
    sidecar, output labels and decision, an edge's whole key, so no two rows tie."""
    return sorted(rows, key=lambda r: (r.key.checkpoint, r.key.purpose, r.key.caller, r.key.input_labels, r.key.rule,
                                       r.sidecar, r.key.output_labels, r.key.decision))  # fmt: skip


def split_labels(joined: str) -> list[str]:
    return joined.split(",") if joined else []


class PartlyWritten(Exception):
    """A store took the first of a batch's edge writes but not the rest (a journal with room for some only):
    `unwritten` stays with the caller, as a batch refused whole does, and the others are not written again."""

    def __init__(self, message: str, unwritten: list[EdgeWrite]) -> None:
        super().__init__(message)
        self.unwritten = unwritten


class NotALineageStore(ValueError):
    """A database without the edges table of a lineage store; the message says what it holds instead."""


class SchemaTooNew(RuntimeError):
    """A store's lineage tables were made by a newer lineage-proxy: this one does not write them."""


class StoreLocationError(StartupError):
    """A store file's directory is missing, is not a directory, or this process may not write there (or the file).
    The file is refused rather than its directories made: a typo in `lineage.store` would otherwise build a directory
    tree nobody asked for."""


def require_directory(path: str, what: str) -> None:
    """Raise StoreLocationError unless the directory `path` goes in exists and this process may write in it (SQLite
    makes the file there, and its -wal and -shm files beside it, as it opens it), and may read and write the file
    when it is there; `what` names the file in the message. Said before SQLite says "unable to open database file"
    or "attempt to write a readonly database", which name neither the directory nor the fix. A `path` that is a
    link is its target's: SQLite follows it, and makes the file and its -wal and -shm files beside the target (a
    link in a directory the process may not write in, to one it may, is a store it opens)."""
    target, named = _followed(path)
    _require_writable(Path(target).parent, named, what, _SQLITE_MAKES)
    if os.path.isdir(target):
        raise StoreLocationError(f"cannot open the {what} {named}: it is a directory, not a file (name a file, which "
                                 "SQLite makes: lineage.db in it)")  # fmt: skip
    kind = special_file(target)
    if kind is not None:
        raise StoreLocationError(f"cannot open the {what} {named}: it is {kind}, not a file (name a file, which "
                                 "SQLite makes)")  # fmt: skip
    beside = special_beside(target)
    if beside is not None:
        raise StoreLocationError(f"cannot open the {what} {named}: {beside[0]} beside it is {beside[1]}, not a file "
                                 "SQLite makes (remove it)")  # fmt: skip
    if os.path.exists(target) and not os.access(target, os.R_OK | os.W_OK):
        raise StoreLocationError(f"cannot open the {what} {named}: {_user()} may not read and write the file (give it "
                                 "read and write access, or correct the path)")  # fmt: skip


def special_file(path: str) -> str | None:
    """What `path` names when it is neither a file nor a directory (following a link), in words (`a FIFO`); None for
    a file, a directory or nothing. SQLite opening a FIFO waits for a writer to open it, for ever: a store replaced by
    one hung `verify` (a CI gate) and `serve` instead of failing."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file"


_BESIDE: Final = ("-journal", "-wal", "-shm")  # the files SQLite opens beside a database, named after it


def special_beside(path: str) -> tuple[str, str] | None:
    """A file SQLite opens beside the database `path` (its -journal, -wal or -shm, named after the path and after the
    file a link names) that is no file, and what it is in words (`special_file`); None when each is a file or is not
    there. A `-journal` that is a FIFO hung `verify`, `edges`, `report` and `serve` as the store's own file did:
    SQLite opens it, to see whether it is a journal to roll back, before it reads the store."""
    for name in dict.fromkeys(f"{base}{end}" for base in (path, os.path.realpath(path)) for end in _BESIDE):
        kind = special_file(name)
        if kind is not None:
            return name, kind
    return None


def _opened_by_sqlite(path: str) -> list[str]:
    """The names SQLite opens a database `path` by: its own, and its -journal, -wal and -shm (after the path, and after
    the file a link names)."""
    return list(dict.fromkeys(f"{base}{end}" for base in (path, os.path.realpath(path)) for end in ("", *_BESIDE)))


# how often a reader's `Unblocker` looks for a FIFO where SQLite opens the store's files: the longest an open of one
# swapped in waits
UNBLOCK_S: Final = 0.05


class Unblocker:
    """For as long as a reader's connection is open, a thread that finds a FIFO where SQLite opens the store or a file
    beside it (`_opened_by_sqlite`) and opens it for writing without blocking, then closes it: an open SQLite waits in
    there (for a writer, for ever) returns, and the read fails or is refused (`SqliteStore._unswapped`). The reader's
    check refuses a FIFO found there as it opens the store (`special_file`, `special_beside`); one swapped in after
    the check, before SQLite's open of it, hung `verify` (a CI gate), `edges` and `report`. SQLite opens each file by
    its name (after following links, so no path it is given pins the file checked), and opens its -journal at each
    read, so no check before an open closes that window: this ends the wait instead, within UNBLOCK_S."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._names = _opened_by_sqlite(path)
        self._stop = threading.Event()
        self.unblocked: str | None = None  # the first name a FIFO was found at
        self._thread = threading.Thread(target=self._run, name="lineage-store-unblocker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(UNBLOCK_S):
            for name in self._looked_at():
                if special_file(name) != "a FIFO":
                    continue
                self.unblocked = self.unblocked or name
                try:  # (ENXIO when no open waits on it: nothing to end)
                    os.close(os.open(name, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
                except OSError:
                    pass

    def found(self) -> str | None:
        """The first name a FIFO was found at, by the thread or now: SQLite opens a -wal or -shm read-write, which a
        FIFO does not make wait, and its read fails at once ("disk I/O error"), before the thread looks."""
        return self.unblocked or next((name for name in self._looked_at() if special_file(name) == "a FIFO"), None)

    def _looked_at(self) -> list[str]:
        """The names SQLite opens the store by, as the store's path names it first and as it names it now: a link
        re-pointed after the first look (to the file checked, by another name) has SQLite open the -journal beside
        the name it gives when the reader resolved it."""
        return list(dict.fromkeys([*self._names, *_opened_by_sqlite(self._path)]))

    def halt(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def opened_whole(unblocker: Unblocker, what: str, path: str, db: sqlite3.Connection | None) -> None:
    """A writer's open (`serve`'s of its store or journal) ended, as it went or raised: its `unblocker` stopped, and
    StartupError raised when it found a FIFO where SQLite opens the file or one beside it (its connection closed). The
    check before the open (`require_directory`) refuses one there then; one swapped in after it, before SQLite opened
    it (a -journal, which SQLite opens read-only to see whether it is one to roll back), held `serve` at its start
    for ever, never ready, never saying why."""
    unblocker.stop()
    fifo = unblocker.found()
    if fifo is None:
        return
    if db is not None:
        with contextlib.suppress(sqlite3.Error):
            db.close()
    from proxy.record.stores import shown_path  # (it imports this module)

    where = "by a FIFO" if fifo in (path, os.path.realpath(path)) else f"{shown_path(fifo)} beside it by a FIFO"
    raise StartupError(f"{what} {shown_path(path)}: replaced as it was opened ({where}); SQLite would wait on it for "
                       "ever: remove it (only SQLite makes the files beside a store), then start again") from None  # fmt: skip


SPOOL = "OpenLineage spool"  # how messages name `lineage.openlineage.spool`
_SQLITE_MAKES = ("SQLite makes the file and its -wal and -shm files", "SQLite cannot make the file and its -wal and "
                 "-shm files")  # fmt: skip
_SPOOL_MAKES = ("lineage-proxy makes the spool directory", "lineage-proxy cannot make the spool directory")
_SPOOL_WRITES = ("lineage-proxy writes the spool's files", "lineage-proxy cannot write the spool's files")


def require_spool_directory(path: str, what: str) -> None:
    """Raise StoreLocationError unless this process may keep files in the directory `path`: one there that it may
    write in, or one it can make (in a directory that exists and that it may write in; never a tree of them: a typo
    would build one nobody asked for). As `require_directory` says a store's, at the start, where a spool that
    cannot be written loses what a stop writes there, said only then."""
    target, named = _followed(path.rstrip("/") or path)
    if os.path.isdir(target):
        _require_writable(Path(target), named, what, _SPOOL_WRITES)
    elif os.path.lexists(target):
        raise StoreLocationError(f"cannot open the {what} {named}: it is a file, not a directory (name a directory, "
                                 "which lineage-proxy makes)")  # fmt: skip
    elif target != path.rstrip("/"):  # (`os.makedirs` makes no directory at a link's target)
        raise StoreLocationError(f"cannot open the {what} {named}: the link's target does not exist (create that "
                                 "directory, or correct the path)")  # fmt: skip
    else:
        _require_writable(Path(target).parent, named, what, _SPOOL_MAKES)


def _followed(path: str) -> tuple[str, str]:
    """`path`'s target, when it is a link (SQLite and the spool follow it), and `path` as a message names it."""
    target = os.path.realpath(path) if os.path.islink(path) else path
    return target, path if target == path else f"{path} (a link to {target})"


def _require_writable(directory: Path, named: str, what: str, makes: tuple[str, str]) -> None:
    """Raise StoreLocationError unless `directory` exists and this process may make files in it; `makes`: what is
    made there, as said (`does`, `cannot do`)."""
    does, cannot = makes
    if not directory.is_dir():
        _missing_directory(named, directory, what)
    if _read_only(directory):  # (root too: no permission lets a process write there)
        raise StoreLocationError(f"cannot open the {what} {named}: the directory {_named(directory)} is on a read-only "
                                 f"file system, where {cannot} (mount it read-write, or point the path at a writable "
                                 "volume)")  # fmt: skip
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StoreLocationError(f"cannot open the {what} {named}: {_user()} may not write in the directory "
                                 f"{_named(directory)}, where {does} (give it write access there, or correct the "
                                 "path)")  # fmt: skip


def _missing_directory(path: str, parent: Path, what: str) -> NoReturn:
    above = (parent, *parent.parents)
    existing = next((directory for directory in above if directory.exists()), None)
    if existing is not None and not existing.is_dir():
        raise StoreLocationError(f"cannot open the {what} {path}: {existing} is not a directory")
    missing = next((directory for directory in above if directory.parent == existing), parent)
    raise StoreLocationError(f"cannot open the {what} {path}: the directory {_named(missing)} does not exist "
                             "(create it, or correct the path)")  # fmt: skip


def _named(directory: Path) -> str:
    """A directory as a message names it: a relative one with its absolute path too (it is the cwd's)."""
    return str(directory) if directory.is_absolute() else f"{directory} ({directory.absolute()})"


def _read_only(directory: Path) -> bool:
    """Whether `directory` is on a file system mounted read-only (a container's read-only root file system)."""
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:  # (not said here: the write check that follows says what it can)
        return False


def _user() -> str:
    return f"this user (uid {os.getuid()})"


WRITER_CACHE_KIB = 256
# how long a write waits for the store's write lock while another connection holds it: the workers' writes hold
# it for about a millisecond, a sibling worker's retention purge for as long as it deletes what expired and writes
# its snapshot entry (~0.13 s for 100,000 edges here, 0.5 s when a write made during its read touched an expired
# edge and the snapshot is made again under the lock; its replay of the chain and comparison with the table, which
# took seconds under the lock, are done before, in a read transaction: `SqliteStore.purge`); an open `sqlite3`
# shell's transaction, or a VACUUM, for as long as they last. A new flow's reply waits for its write, so no longer
# than this: then its count waits in memory (edges.py), and `require_record` zones fail closed until a write gets
# through, so a sibling's purge must fit (0.5 s did not: 100k edges, `--workers 2`, hundreds of 503s at every purge)
BUSY_TIMEOUT_S = 3.0
# how long opening a store waits for that lock: workers starting together make or re-key it one at a time
OPEN_TIMEOUT_S = 10.0
# how long a reader (`edges`, `verify`, `report`) waits for a lock that keeps readers out (a store not in WAL mode being
# written), then says the store is busy (StoreBusy)
READ_WAIT_S = 10.0
# once a write has waited that long in vain, the writes after it try the lock without waiting (their counts wait
# in memory, edges.py), and one every LOCKED_RETRY_S waits LOCKED_WAIT_S for it, until one gets it
LOCKED_RETRY_S = 1.0
LOCKED_WAIT_S = 0.05


def wal(db: sqlite3.Connection, wait_s: float = OPEN_TIMEOUT_S, began: float | None = None) -> None:
    """Put a database file in WAL mode. Switching a new file takes a lock SQLite does not wait for (the
    busy timeout does not apply): workers opening one new store together got "database is locked" at
    start, about one run in fifteen with eight. So it is tried again until `wait_s` has passed (a wait of its own,
    before the open's wait for the write lock: a worker's start may wait for both, `workers.START_WAITS_S`), each try
    waiting no longer than what is left. `began` (monotonic): when the open's read before it (`foreign_tables`, which
    waits for a lock that keeps readers out) began, the two waiting `wait_s` together (review revrec17: each waited its
    own, a store not in WAL mode held by a write, then a read, took 20 s to be said busy `for the 10 s`, and its open
    up to 30 s where a start counts 20)."""
    deadline = (time.monotonic() if began is None else began) + wait_s
    (kept,) = db.execute("PRAGMA busy_timeout").fetchone()
    try:
        while True:
            db.execute(f"PRAGMA busy_timeout={max(0, round((deadline - time.monotonic()) * 1000))}")
            try:
                db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(0.01)  # a retry pause, not a synchronisation: another process holds the file's lock
    finally:
        db.execute(f"PRAGMA busy_timeout={int(kept)}")


TAMPERED_START = ("lineage store %s: its chain is empty or missing, though the store holds edges or was purged "
                  "before, or its chain had entries: the chain was removed. Its edges are not signed over, nor a "
                  "chain started again (a keyed proxy stops here); `lineage-proxy verify --integrity` names the gap. "
                  "Keep the file for the inquiry and point lineage.store at a new one")  # fmt: skip
UNVERIFIED_PURGE = ("lineage store %s: retention purge skipped: the record does not verify (%s). A purge cuts "
                    "the chain down to a snapshot of what it replays, which would sign over the break, so it waits "
                    "until the record is looked into")  # fmt: skip
CUT_MEANWHILE = ("lineage store %s: retention purge left to the next one: the chain's oldest entries went after "
                 "it read them (another worker's purge, whose cutoff was earlier; the next purge reads the chain "
                 "again)")  # fmt: skip


# `PRAGMA integrity_check(N)`: the most lines it gives (its default, 100, is filled by lines that name no index)
_EVERY_LINE: Final = 2**31 - 1
# the lines of SQLite's integrity check that say nothing is wrong: its "ok", and what SQLite 3.40 says of every row of a
# store untouched (a WITHOUT ROWID table whose last column is one of its key's has each NOT NULL column outside its key
# called NULL); a NULL really there is an edge's value, which the verdict's own read of the rows names (`EditedRow`)
_HARMLESS_LINES: Final = frozenset(
    {"ok", *(f"NULL value in edges.{name}" for name in ("first_seen", "last_seen", "count"))}
)
_SHOWN_LINES: Final = 5  # the lines of a damaged file's check a verdict quotes, the others counted


def read_only_uri(path: str) -> str:
    """The URI that opens the file `path` names read-only: its name percent-encoded (`Path.as_uri`), since SQLite
    reads a URI's `%XX` as a byte, a `?` as the start of its parameters and a `#` as the end of the name. Written
    as it was, `a%62.db` opened `ab.db`, `run#2/lineage.db` the file `run`, and `x.db?immutable=1&` the file `x.db`
    (immutable: its WAL unread, not read-only): another file's record was listed, judged and verified as this one's."""
    return Path(path).resolve().as_uri() + "?mode=ro"


def _read_at_open(path: str, db: sqlite3.Connection, timeout_s: float) -> sqlite3.Connection:
    """`db`, a reader's of the store `path` opened with no busy wait, once SQLite has read its header (and, in WAL mode,
    opened its -wal and -shm), then waiting `timeout_s` for a lock held elsewhere as its reads do: a store it cannot
    read where it is fails here, at the open (`_unreadable_here`). Any other failure is left to the read, which says it
    as before: the connection is kept. A lock another connection holds (a rollback-journal store being written) is
    not waited for here, but once, by the read (review revrec16: waited here for the whole timeout too, then again by
    the read, `database is locked` said after 20 s, not 10)."""
    try:
        db.execute("PRAGMA schema_version").fetchone()
    except sqlite3.Error as exc:
        if _unreadable_here(path, exc) is not None:
            db.close()
            raise
    db.execute(f"PRAGMA busy_timeout={round(timeout_s * 1000)}")
    return db


def _unreadable_here(path: str, error: BaseException) -> str | None:
    """Why a reader cannot read the SQLite store `path` where it is, from SQLite's `error` at its open: a store in WAL
    mode (the proxy writes one so) in a directory this process may not write in, or on a read-only file system, whose
    -shm file (the index of its -wal that every reader of it maps) is not there for it to open (SQLite makes it as the
    first connection opens the store, and its last removes it), so SQLite says SQLITE_READONLY_DIRECTORY; or a file it
    may not read. None for any other error. Until 2026-12-07 a reader said `not a lineage store: attempt to write a
    readonly database`, or `unable to open database file`."""
    if isinstance(error, StoreReplaced) or not isinstance(error, sqlite3.Error):
        return None
    code = getattr(error, "sqlite_errorcode", None)
    if code not in (sqlite3.SQLITE_READONLY_DIRECTORY, sqlite3.SQLITE_CANTOPEN):
        return None
    if os.path.exists(path) and not os.access(path, os.R_OK):
        return f"cannot read it: {_user()} may not read the file (give it read access, or correct the path)"
    target = os.path.realpath(path)  # SQLite opens the -shm beside the file a link names
    directory = Path(target).parent
    read_only = _read_only(directory)  # (SQLITE_CANTOPEN there: the -shm's open refused, EROFS)
    if code == sqlite3.SQLITE_CANTOPEN and (os.path.exists(f"{target}-shm") or not (
            read_only or not os.access(directory, os.W_OK | os.X_OK))):  # fmt: skip
        return None
    from proxy.record.stores import shown_path  # (it imports this module)

    named = shown_path(_named(directory))  # as the store's name before it: bytes not UTF-8 escaped (review revrec16)
    where = (f"the directory {named} is on a read-only file system" if read_only else
             f"{_user()} may not write in the directory {named}")  # fmt: skip
    return (f"cannot read it here: it is in WAL mode, and SQLite reads such a store with a -shm file beside it, which "
            f"is not there and which it cannot make: {where} (let it write there, or read a copy of the store, with its "
            "-wal if there is one, made in a directory it may write in)")  # fmt: skip


def _unchanging(path: str) -> tuple[int, int, int, int, int] | None:
    """The SQLite file `path` names as (device, inode, size, modification and change times in ns), when no -wal beside
    it holds writes (a -wal of no bytes holds none), so the file alone is the store; None when one does, or it cannot be
    looked at. Its change time (ctime) too, which no one sets: a restore over it that sets its times back (`cp
    --preserve=timestamps`, `rsync --inplace -t`) kept the inode, size and modification time, and another store's rows
    were read as this one's (review revrec17)."""
    target = os.path.realpath(path)  # SQLite opens the -wal beside the file a link names
    try:
        if os.path.lexists(f"{target}-wal") and os.lstat(f"{target}-wal").st_size > 0:
            return None
        found = os.stat(target)
    except OSError:
        return None
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns


def writable(path: str) -> tuple[str, bool]:
    """What `sqlite3.connect` is given to open the file `path` read-write, and whether it is a URI: `path` itself, or
    its URI (`Path.as_uri`) when it begins with `file:`, which a SQLite built with URIs on (Debian's) reads as a URI
    naming another file (`file:x` is `x`; `FILE:x` is the file so named to it)."""
    if not path.startswith("file:"):
        return path, False
    return Path(path).absolute().as_uri(), True


def file_identity(path: str) -> tuple[int, int] | None:
    """The file `path` names (device, inode), None when it names none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def still_named(where: str, opened: tuple[int, int] | None, what: str) -> None:
    """Raise unless `where` still names the file opened there (`opened`, its `file_identity`). SQLite writes on into
    the file it holds open when it was deleted (its directory removed) or moved away, where no path, and so no reader
    and no restart, ever finds it: refused instead, as a write the file refuses."""
    if file_identity(where) != opened:
        raise sqlite3.OperationalError(f"{what}: the file was removed or replaced since this process opened it; "
                                       "restart the proxy to use a file at that path")  # fmt: skip


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite gave up waiting for a lock another connection holds (SQLITE_BUSY: "database is locked")."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (code & 0xFF) == sqlite3.SQLITE_BUSY if isinstance(code, int) else "database is locked" in str(exc)


# the bytes of a SQLite file's locks (os_unix.c: PENDING_BYTE 0x40000000, RESERVED_BYTE after it, then SHARED_SIZE 510
# bytes): a write lock on the pending byte or the shared range keeps readers out, one on the reserved byte alone does
# not (a write transaction begun, its changes in its cache); a write lock on a -shm's bytes is a WAL store's writer's
_PENDING_BYTE: Final = 0x40000000
_SHARED_FIRST: Final = _PENDING_BYTE + 2
_SHARED_LAST: Final = _SHARED_FIRST + 510 - 1


def _keeps_readers_out(start: str, end: str) -> bool:
    """Whether a lock on the bytes `start` to `end` (/proc/locks': `EOF` is the file's end, however far it grows) holds
    the pending byte or any of the shared range, which a reader's read locks take (review revrec17: one on the pending
    byte from before it was taken as none, one past the shared range as one)."""
    if not start.isdigit() or not (end.isdigit() or end == "EOF"):
        return False
    first = int(start)
    last = _SHARED_LAST if end == "EOF" else int(end)  # (past the range: the same answer)
    return first <= _PENDING_BYTE <= last or (first <= _SHARED_LAST and last >= _SHARED_FIRST)


def lock_holders(path: str, writer: bool = False) -> list[int]:
    """The processes other than this one holding a write lock on the SQLite file `path` that keeps readers out, or on
    its -shm (a WAL store's write lock), as Linux lists them (/proc/locks: `1: POSIX ADVISORY WRITE PID MAJ:MIN:INODE
    START END`); none where it lists none (another system, or a holder in another pid namespace). `writer`: those
    keeping a writer out, a read lock on a store with no -shm too (a read transaction in a store not in WAL mode, which
    its switch to WAL mode, or its write, waits for)."""
    files = set()
    for name in (path, f"{os.path.realpath(path)}-shm"):
        with contextlib.suppress(OSError):
            found = os.stat(name)
            files.add((f"{os.major(found.st_dev):02x}:{os.minor(found.st_dev):02x}:{found.st_ino}", name != path))
    reads_too = writer and not any(shm for _, shm in files)
    holders: set[int] = set()
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            listed = locks.read().splitlines()
    except OSError:
        return []
    for line in listed:
        fields = line.split()
        if "->" in fields:  # a lock waited for, not held
            continue
        kinds = ("WRITE", "READ") if reads_too else ("WRITE",)
        if len(fields) < 8 or fields[1] != "POSIX" or fields[3] not in kinds or not fields[4].isdigit():
            continue
        shm = next((beside for key, beside in files if key == fields[5]), None)
        if shm is None:
            continue
        keeps_out = shm or reads_too or _keeps_readers_out(fields[6], fields[7])
        pid = int(fields[4])
        if keeps_out and pid not in (0, os.getpid()):
            holders.add(pid)
    return sorted(holders)


def busy(path: str, error: sqlite3.OperationalError, waited_s: float, reader: bool, then: str = "") -> StoreBusy:
    """StoreBusy for the SQLite store `path`, whose lock another process held for the whole `waited_s` a reader's read
    or a writer's open (`reader`) waited, naming it where Linux does (`lock_holders`); `then`: what to do, when not to
    read or open it again. No `;` in it: `serve`'s start says a store's error up to its first one."""
    holders = lock_holders(path, writer=not reader)
    held_by = f"process{'es' if len(holders) > 1 else ''} {', '.join(map(str, holders))}" if holders else (
        "another process")  # fmt: skip
    who, again = (
        ("this read", "nothing was read: read it again") if reader else ("this open for writing", "open it again")
    )
    then = then or again
    held = ("a write under way in a store not in WAL mode does" if reader else "a transaction under way does (a write's, "
            "or in a store not in WAL mode a read's too)")  # fmt: skip
    return StoreBusy(f"busy: {held_by} held a lock on it for the {waited_s:g} s {who} waits for one, as {held} (a "
                     "sqlite3 shell's open transaction, a VACUUM, a restore), or a connection in exclusive locking mode "
                     f"(SQLite: {error}): {then} once it is released")  # fmt: skip


def foreign_tables(db: sqlite3.Connection, ours: frozenset[str]) -> str:
    """The tables of a database that holds some but none of `ours` ('' otherwise), shown for a message:
    another program's file, which a writer must not add its tables to. An empty file is a new one."""
    tables = sorted(
        row[0]
        for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not row[0].startswith("sqlite_")  # SQLite's own (sqlite_sequence comes with any AUTOINCREMENT)
    )
    if not tables or ours & set(tables):
        return ""
    shown = ", ".join(escaped(name) for name in tables[:5])
    return shown + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")


_EXPIRED = "SELECT 1 FROM edges WHERE last_seen < ? LIMIT 1"


@dataclass(frozen=True, slots=True)
class PreparedPurge:
    """A purge's long part, done in a read transaction (`SqliteStore.prepare_purge`): the chain replayed
    and compared with the table (`replay.problem` when they disagree), the edges expired by `cutoff` as
    stored rows (sorted), and the text of the snapshot entry that signs the rest."""

    replay: integrity.Replay
    cutoff: float
    expired: list[tuple[Any, ...]]
    snapshot: str

    def holds(self, replay: integrity.Replay, since: list[list[Any]]) -> bool:
        """Whether the snapshot and the expired rows still hold once `since` (the changes appended after
        the read, replayed into `replay`) are applied after the snapshot: none of them touched an edge
        that expired, nor left one expired."""
        if not since:
            return True
        gone = {(*row[:6], row[9], row[11]) for row in self.expired}
        for change in since:
            edge = (*change[:6], change[9] or "", change[11] if len(change) > 11 else "")
            if edge in gone or replay.state[edge][1] < self.cutoff:
                return False
        return True


def _expired_rows(replay: integrity.Replay, cutoff: float) -> list[tuple[Any, ...]]:
    """The edges `replay` holds last seen before `cutoff`, as the table stores them (its columns, then
    `reason`, `sidecar`), sorted: what a purge deletes, to compare with what the table had."""
    return sorted((*edge[:6], *values[:3], edge[6], values[3], edge[7]) for edge, values in replay.state.items()
                  if values[1] < cutoff)  # fmt: skip


def _numbered_to(db: sqlite3.Connection) -> int | None:
    """The highest number SQLite ever gave a chain entry (AUTOINCREMENT keeps it in sqlite_sequence, in the
    transaction that writes the entry, and never gives it again): more than the newest entry's, the newest
    entries were removed. None when the file keeps none (its row deleted, or no such table)."""
    try:
        found = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'chain'").fetchone()
    except sqlite3.OperationalError:
        return None
    return found[0] if found is not None and type(found[0]) is int else None


def _changes(entries: Iterable[integrity.Entry]) -> list[list[Any]] | None:
    """The edge changes of `entries` (walked and replayed already: well formed), in order; None unless all
    are upserts keyed by rule without a write token (what this release's SQLite writers append)."""
    changes: list[list[Any]] = []
    for entry in entries:
        record = orjson.loads(entry.body)
        if record["kind"] != integrity.EDGES or record.get("version") != integrity.VERSION or "token" in record:
            return None
        changes.extend(record["rows"])
    return changes


class SqliteStore:
    """One connection, used from one thread at a time (the aggregator's writer thread). `key`: the HMAC
    key that chain entries written from now on are signed with (`lineage.integrity_key_file`); `retired`:
    the keys it replaced, oldest first, with which a purge's replay checks the entries signed before
    (`lineage.integrity_retired_key_files`)."""

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        key: bytes | None = None,
        retired: tuple[bytes, ...] = (),
        adopt_head: str | None = None,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        sidecar: str = "",
    ) -> None:
        """`adopt_head`: with `key`, sign on top of this unsigned newest entry (an unkeyed store adopted by
        hand, `verify --adopt-head`); any other unsigned newest entry stops a keyed writer. `busy_timeout_s`:
        how long a write waits for the write lock another connection holds (`_begin_write`). `sidecar`: the
        writer's `lineage.sidecar`, recorded with every edge it writes."""
        self.path = sqlite_file(path) if isinstance(path, str) else str(path)  # a `file:` URI's file (SqliteNameError)
        self.sidecar = sidecar
        self._key = key
        self._retired = retired
        self._keys = (key, *retired) if key is not None else ()  # those an entry this writer signs on may have
        self._head_ok: str | None = None  # the newest entry last seen signed with one of them (or signed here)
        # the chain's newest entry (its number and hash) as this writer last read or wrote it, once committed: the
        # head logged and exported as lineage_proxy_record_chain_entries (`EdgeAggregator`); None for a reader
        self.head: tuple[int, str] | None = None
        self._appended: tuple[int, str] | None = None  # the last entry `_append` wrote, committed or not
        self._busy_ms = max(0, round(busy_timeout_s * 1000))
        self._locked_retry: float | None = None  # monotonic: while the lock is held elsewhere, when to wait again
        self._file: tuple[int, int] | None = None  # (device, inode) of the file a writer opened (`_still_named`)
        self._where = ""  # its absolute path
        self._unblocker: Unblocker | None = None  # a reader's
        self._unchanging: tuple[int, int, int, int, int] | None = None  # a reader's, of a file read as immutable
        if readonly:
            if not Path(self.path).exists():
                raise FileNotFoundError(self.path)
            self._file = file_identity(self.path)  # the file checked, which every read must still find there
            self._unblocker = Unblocker(self.path)  # before SQLite opens anything
            weakref.finalize(self, self._unblocker.halt)  # a reader never closed: its thread ends as it goes
            try:
                self._db = self._unswapped(self._open_to_read)
            except BaseException as exc:
                self._unblocker.stop()
                said = _unreadable_here(self.path, exc)
                if said is not None:
                    raise UnreadableHere(said) from None
                raise
            return
        require_directory(self.path, "lineage store")
        unblocker = Unblocker(self.path)  # a FIFO swapped in after the check, where SQLite opens (`opened_whole`)
        try:
            target, uri = writable(self.path)
            self._db = sqlite3.connect(target, uri=uri, check_same_thread=False, timeout=10, isolation_level=None)
            began = time.monotonic()
            foreign = foreign_tables(self._db, LINEAGE_TABLES)
            if foreign:  # checked before WAL mode is set: that too would change the file
                self._db.close()
                raise StartupError(f"lineage store {self.path}: not a lineage store: it holds other tables ({foreign}) "
                                   "and none of a lineage store's; point lineage.store at a new file")  # fmt: skip
            wal(self._db, began=began)  # (the read before it and the switch wait OPEN_TIMEOUT_S together)
            # NORMAL in WAL mode: a committed transaction survives a crash of the process (kill -9);
            # only a power loss may roll back the last commits.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA busy_timeout={max(self._busy_ms, round(OPEN_TIMEOUT_S * 1000))}")
            # the writer touches a few hot pages (its edges' rows, the chain's last page): SQLite's default 2 MiB
            # page cache would fill, as the chain grows, with pages it never reads again
            self._db.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
            with self._db:  # made, or brought up to date, under the write lock: workers starting together see one state
                self._db.execute("BEGIN IMMEDIATE")
                tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                # meta came with the chain
                pre_chain = "edges" in tables and "chain" not in tables and "meta" not in tables
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                odd = self._oddities()  # before anything is changed (a trigger would fire on it, or go with its table)
                if odd:
                    raise StartupError(f"lineage store {self.path}: it has {odd}; only lineage-proxy writes its tables "
                                       "(a trigger can change what is written, and what a purge signs): look into them, "
                                       "then drop them")  # fmt: skip
                if "reason" not in self._columns():  # a store made before reasons were kept
                    self._db.execute("ALTER TABLE edges ADD COLUMN reason TEXT")
                if "sidecar" not in self._key_columns():
                    self._rekey()
                self._db.execute(FENCE)
                if self._db.execute("SELECT 1 FROM chain LIMIT 1").fetchone() is None:
                    self._start_chain(pre_chain=pre_chain)
                self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('origin', ?)", (uuid.uuid4().hex,))
                last = self._db.execute("SELECT hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
                adopting = (adopt_head is not None and last is not None and last[0] == adopt_head
                            and self._key is not None)  # fmt: skip
                if adopting:
                    self._append_adopting()
                else:
                    try:
                        integrity.signed_head(last[0] if last else None, self._key, f"lineage store {self.path}",
                                              held=self._held())  # fmt: skip
                        newest = self._signer_known(last)
                    except integrity.UnsignedHead as exc:
                        raise StartupError(str(exc)) from None
                    if integrity.signed_before(newest, self._key, self._retired):  # the rotation: the newest entry
                        self._append(integrity.body(integrity.EDGES, []))  # signed with the new key from now on
        except BaseException as exc:
            opened_whole(unblocker, "lineage store", self.path, getattr(self, "_db", None))
            if isinstance(exc, sqlite3.OperationalError) and not isinstance(exc, StoreBusy) and is_busy(exc):
                raise busy(self.path, exc, OPEN_TIMEOUT_S, reader=False) from None  # (its holder named now)
            raise
        opened_whole(unblocker, "lineage store", self.path, self._db)
        self._db.execute(f"PRAGMA busy_timeout={self._busy_ms}")  # the writes from now on: `_begin_write`
        newest = self._db.execute("SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
        self.head = (int(newest[0]), str(newest[1])) if newest is not None else None
        self._where = os.path.abspath(self.path)  # as opened: the same file whatever the working directory is later
        self._file = file_identity(self._where)

    def _open_to_read(self) -> sqlite3.Connection:
        """A reader's connection. A WAL store with no -wal beside it (its writers gone: the last one folds its -wal into
        the file and removes it) whose -shm this process cannot make, in a directory it may not write in or on a
        read-only file system, is read as a file nobody writes (SQLite's `immutable=1`: no -shm, no lock): the file is
        the whole store then, and every read checks that it was not written meanwhile (`_replaced`). Until 2026-12-07 a
        reader said it could not read it (`_unreadable_here`), which it still says of one with writes in its -wal: SQLite
        reads those only through a -shm, and an immutable read would leave them out."""
        try:
            return _read_at_open(self.path, sqlite3.connect(read_only_uri(self.path), uri=True, check_same_thread=False,
                                                            timeout=0), READ_WAIT_S)  # fmt: skip
        except sqlite3.Error as exc:
            unchanging = _unchanging(self.path)
            if unchanging is None or not os.access(self.path, os.R_OK) or _unreadable_here(self.path, exc) is None:
                raise
        db = _read_at_open(self.path, sqlite3.connect(f"{read_only_uri(self.path)}&immutable=1", uri=True,
                                                      check_same_thread=False, timeout=0), READ_WAIT_S)  # fmt: skip
        self._unchanging = unchanging
        return db

    def _columns(self) -> set[str]:
        return {row[1] for row in self._db.execute("PRAGMA table_info(edges)")}

    def _key_columns(self) -> set[str]:
        return {row[1] for row in self._db.execute("PRAGMA table_info(edges)") if row[5]}

    def _rekey(self) -> None:
        """A store made before the sidecar (or the rule) keyed an edge, keyed by them now (SQLite changes no primary
        key in place: the table is copied), in the opening transaction. Every row stays as it was, "no rule" as ''
        for NULL, recorded by sidecar '' (before sidecars were named); the chain is left as written: its entries say
        how they are keyed (by flow alone, by flow and rule), and `verify` replays them so (integrity.py). The fence
        of a store keyed by rule goes: this one's stops the writers of the releases before."""
        by_rule = "rule" in self._key_columns()
        self._db.execute("DROP TABLE IF EXISTS edges_rekeyed")  # never another's rows mixed in
        self._db.execute(EDGES_TABLE.format(name="edges_rekeyed"))
        try:
            self._db.execute(f"INSERT INTO edges_rekeyed ({_ROW}) SELECT caller, purpose, input_labels, checkpoint, "
                             "output_labels, decision, first_seen, last_seen, count, coalesce(rule, ''), reason, '' "
                             "FROM edges")  # fmt: skip
        except sqlite3.IntegrityError as exc:
            raise StartupError(f"lineage store {self.path}: its edges cannot be keyed by rule and sidecar ({exc}): a "
                               "row holds what lineage-proxy never writes; `lineage-proxy verify --integrity` names "
                               "it") from None  # fmt: skip
        self._db.execute("DROP TABLE edges")
        self._db.execute("ALTER TABLE edges_rekeyed RENAME TO edges")
        self._db.execute("CREATE INDEX IF NOT EXISTS edges_last_seen ON edges (last_seen)")
        self._db.execute(f"DROP TRIGGER IF EXISTS {_RULE_FENCE_NAME}")
        log.warning("lineage store %s: its edges are keyed by %s from now on (%s); the edges it held are kept as they "
                    "were, recorded by sidecar '' (before sidecars were named)", self.path,
                    "the sidecar that recorded them" if by_rule else "their rule and the sidecar that recorded them",
                    "each sidecar's calls of a flow are an edge of their own" if by_rule else "each kind of denial of "
                    "a flow, and each sidecar's calls of it, are an edge of their own")  # fmt: skip

    def upsert(self, rows: Iterable[EdgeWrite]) -> None:
        params = [flat(row, self.sidecar) for row in rows]
        if not params:
            return
        self._still_named()
        with self._db:
            self._begin_write()
            self._db.executemany(UPSERT, params)
            self._append(integrity.body(integrity.EDGES, params))
        self.head = self._appended  # committed

    def _still_named(self) -> None:
        """`still_named`: a write refused (edges.py keeps the counts in memory and says so; `require_record` zones
        fail closed)."""
        still_named(self._where, self._file, f"lineage store {self.path}")

    def _begin_write(self) -> None:
        """BEGIN IMMEDIATE: the write lock, waited for `busy_timeout_s` at most. Once a wait has run out
        (another connection holds the lock: an open `sqlite3` shell's transaction, a VACUUM), the writes
        after it try without waiting, one every LOCKED_RETRY_S waiting LOCKED_WAIT_S, until one gets the
        lock: so the writer thread, and a new flow's reply behind it, waits out one busy timeout, not one
        per write queued while the lock stays held. Raises SQLite's "database is locked" meanwhile."""
        retry = self._locked_retry
        wait = 0.0
        if retry is not None:
            wait = LOCKED_WAIT_S if time.monotonic() >= retry else 0.0
            self._db.execute(f"PRAGMA busy_timeout={round(wait * 1000)}")
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_busy(exc) and (retry is None or wait > 0):  # a wait ran out: the next one in LOCKED_RETRY_S
                self._locked_retry = time.monotonic() + LOCKED_RETRY_S
            raise
        if retry is not None:  # the lock is ours again: the writes after this one wait as before
            self._db.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            self._locked_retry = None

    def _held(self) -> bool:
        """Whether the store holds edges or a purge's anchor, or its chain had entries (so an empty chain was
        emptied)."""
        return self._anchored() or self._has_edges() or self._chained_before()

    def _chained_before(self) -> bool:
        """Whether the store's chain had entries once: its tables are made with the chain's first entry, in one
        transaction, so an empty chain beside the origin a writer records as it opens the store, or beside a
        number SQLite gave an entry (sqlite_sequence), was emptied. Anyone who can write the file can remove
        both too: only a head recorded elsewhere (`verify --expect-head`) proves what a store held."""
        if self._db.execute("SELECT 1 FROM meta WHERE key = 'origin'").fetchone() is not None:
            return True
        try:
            numbered = self._db.execute("SELECT 1 FROM sqlite_sequence WHERE name = 'chain' AND seq > 0").fetchone()
        except sqlite3.OperationalError:  # no AUTOINCREMENT table was ever made in the file
            return False
        return numbered is not None

    def _anchored(self) -> bool:
        return self._db.execute("SELECT 1 FROM meta WHERE key = 'anchor'").fetchone() is not None

    def _has_edges(self) -> bool:
        return self._db.execute("SELECT 1 FROM edges LIMIT 1").fetchone() is not None

    def _append_adopting(self) -> None:
        """A signed entry that adds nothing, on top of the unsigned head the operator adopted."""
        last = self._db.execute("SELECT hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
        text = integrity.body(integrity.EDGES, [])
        self._db.execute("INSERT INTO chain (at, body, prev, hash) VALUES (?, ?, ?, ?)",
                         (time.time(), text, last[0], integrity.link(last[0], text, self._key)))  # fmt: skip
        log.warning("lineage store %s: adopted the unsigned chain up to %s; signed from here on", self.path, last[0])

    def _start_chain(self, *, pre_chain: bool) -> None:
        """The first entry of an empty chain: a snapshot of the edges, which signs them. Only for a new
        store, or, without a key, one written before the chain existed (a chain table dropped looks the
        same, and an unkeyed chain proves nothing against a writer anyway); an emptied or dropped chain
        beside edges, or after a purge's anchor, or once the chain had entries (`_chained_before`: an emptied
        store), is left as it is for `verify` to name, never signed over nor started again."""
        anchored, has_edges, emptied = self._anchored(), self._has_edges(), self._chained_before()
        if has_edges and pre_chain and not anchored and self._key is not None:
            raise StartupError(f"lineage store {self.path}: it has edges and no chain: written before the record was "
                               "chained, or its chain was dropped, which looks the same. A keyed proxy does not sign "
                               "edges it did not write. Move the file aside, or, if it is an old store you trust, start "
                               "once without lineage.integrity_key_file (the chain then starts unkeyed) and adopt it "
                               "with `verify --integrity --key-file KEY --adopt-head HEAD`")  # fmt: skip
        if anchored or emptied or (has_edges and not pre_chain):
            log.error(TAMPERED_START, self.path)
            return
        self._snapshot()

    def prepare_purge(self, retention_days: float, now: float | None = None) -> PreparedPurge | None:
        """The long part of a purge, on a connection of its own (so off the writer thread when the caller
        runs it elsewhere), in one read transaction: the chain replayed and compared with the table, and
        the snapshot it signs written out. None when nothing has expired."""
        cutoff = (time.time() if now is None else now) - retention_days * 86400
        reader = sqlite3.connect(read_only_uri(self.path), uri=True, timeout=10, check_same_thread=False,
                                 isolation_level=None)  # fmt: skip
        try:
            if reader.execute(_EXPIRED, (cutoff,)).fetchone() is None:
                return None
            reader.execute("BEGIN")
            try:
                return self._prepare(cutoff, reader)
            finally:
                reader.execute("COMMIT")
        finally:
            reader.close()

    def _prepare(self, cutoff: float, db: sqlite3.Connection) -> PreparedPurge:
        """`PreparedPurge` from what `db` reads (in one read transaction)."""
        replay = self._verified(db)
        expired = _expired_rows(replay, cutoff)
        snapshot = integrity.body(integrity.SNAPSHOT, replay.kept(cutoff)) if replay.problem is None else ""
        return PreparedPurge(replay, cutoff, expired, snapshot)

    def _verified(self, db: sqlite3.Connection) -> integrity.Replay:
        """The chain replayed from its anchor and compared with the table, both read on `db` in the caller's
        transaction; one that does not verify carries its `problem`."""
        replay = self._replay(None, db=db)
        replay.finish(db.execute(f"SELECT {_ROW} FROM edges"), numbered_to=_numbered_to(db))
        return replay

    def purge(self, retention_days: float, now: float | None = None, prepared: PreparedPurge | None = None) -> int:
        """Delete edges not seen for `retention_days`; the chain is cut down to a snapshot of what
        remains (its `prev` kept as the anchor), so it proves the same and stays small. Only a record
        that verifies when the purge reads it is cut down: otherwise nothing is purged, and the error
        says why. The snapshot signs what the chain holds, never the table: a kept row edited after that
        read stays as it is, for `verify` and the next purge to name.

        What takes time is done first, in a read transaction (`prepared`: already, by `prepare_purge`,
        whose cutoff then counts): the chain replayed and compared with the table, the snapshot written
        out. Under the write lock, which other writers wait for (`BUSY_TIMEOUT_S`, then `require_record`
        zones fail closed), only the entries appended since are replayed; the delete is checked to remove
        exactly the expired edges the chain holds, as it holds them; the snapshot is appended, then those
        entries' changes again, as one entry (the snapshot replaces the state: they would be lost). When
        they touch an edge that expired, the snapshot is made again under the lock from the replay (a
        sort and the snapshot's text: 0.5 s for 100,000 edges). An edit of an expiring row between the
        read and the lock skips the purge. A chain cut meanwhile (a sibling's purge, whose cutoff was
        earlier) leaves the purge to the next one: replaying it again under the lock would read the
        whole chain and table there."""
        if prepared is not None:
            cutoff = prepared.cutoff
        else:
            cutoff = (time.time() if now is None else now) - retention_days * 86400
        if self._db.execute(_EXPIRED, (cutoff,)).fetchone() is None:
            return 0
        if prepared is None:
            with self._reading():
                prepared = self._prepare(cutoff, self._db)
        replay = prepared.replay
        if replay.problem is not None:
            log.error(UNVERIFIED_PURGE, self.path, replay.problem)
            return 0
        with self._db:
            self._begin_write()
            if self._db.execute(_EXPIRED, (cutoff,)).fetchone() is None:
                return 0
            if self._db.execute("SELECT min(seq) FROM chain").fetchone()[0] != replay.first_seq:
                log.info(CUT_MEANWHILE, self.path)
                return 0
            query = "SELECT seq, at, body, prev, hash FROM chain WHERE seq > ? ORDER BY seq"
            tail = [integrity.Entry(*row) for row in self._db.execute(query, (replay.seq,))]
            replay.feed(tail)
            problem = replay.problem or replay.gap
            if problem is None and self._key is not None and not replay.head.startswith("hmac-"):
                problem = ("a key was given but the newest entry is not signed with one (the chain was rebuilt "
                           "without the key, or never keyed)")  # fmt: skip
            if problem is not None:
                log.error(UNVERIFIED_PURGE, self.path, problem)
                return 0
            since = _changes(tail)
            odd = self._oddities()
            if odd:
                log.error(UNVERIFIED_PURGE, self.path, f"the lineage tables have {odd}")
                return 0
            snapshot: str | None = prepared.snapshot
            expired = prepared.expired
            if since is None or not prepared.holds(replay, since):
                snapshot, since = None, []
                expired = _expired_rows(replay, cutoff)
            found = sorted(self._db.execute(f"SELECT {_ROW} FROM edges WHERE last_seen < ?", (cutoff,)))
            deleted = self._db.execute("DELETE FROM edges WHERE last_seen < ?", (cutoff,)).rowcount
            if found != expired or deleted != len(expired):  # the delete did more than delete: nothing purged
                self._db.rollback()
                log.error(UNVERIFIED_PURGE, self.path, "the table changed under the purge's delete")
                return 0
            if snapshot is None:
                snapshot = integrity.body(integrity.SNAPSHOT, replay.kept(cutoff))
            seq, prev = self._append(snapshot)
            if since:
                self._append(integrity.body(integrity.EDGES, since))
            self._db.execute("DELETE FROM chain WHERE seq < ?", (seq,))
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('anchor', ?)", (prev,))
        self.head = self._appended  # committed
        return deleted

    def _oddities(self) -> str:
        """Triggers or views in the store ('' when none): only lineage-proxy writes its tables, and a trigger
        could change what a purge's delete leaves, or what a read shows."""
        found = self._db.execute(  # names in any case: SQLite's are case-insensitive, kept as written (ON "CHAIN")
            "SELECT type, name, sql FROM sqlite_master WHERE (type = 'trigger' AND lower(tbl_name) IN ('edges', "
            "'chain', 'meta')) OR (type <> 'table' AND lower(name) IN ('edges', 'chain', 'meta'))"  # a view for a table
        ).fetchall()
        return ", ".join(f"{kind} {escaped(str(name))}" for kind, name, sql in found if (name, sql) not in _FENCES)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """One read transaction (a snapshot of the file: WAL), however many statements it takes."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def _replay(
        self,
        replay: integrity.Replay | None,
        *,
        hashes: bool = False,
        db: sqlite3.Connection | None = None,
    ) -> integrity.Replay:
        """`replay` fed the entries after its position, `integrity.BATCH` at a time; a new one from the
        anchor when None, verifying with the writer's keys; read on `db` (the store's own connection when
        None)."""
        db = db or self._db
        if replay is None:
            anchor = db.execute("SELECT value FROM meta WHERE key = 'anchor'").fetchone()
            replay = integrity.Replay(anchor[0] if anchor else integrity.GENESIS, self._key, hashes=hashes,
                                      retired=self._retired, numbered=True)  # fmt: skip
        while True:
            batch = [
                integrity.Entry(*row)
                for row in db.execute(
                    "SELECT seq, at, body, prev, hash FROM chain WHERE seq > ? ORDER BY seq LIMIT ?",
                    (replay.seq, integrity.BATCH),
                )
            ]
            if not replay.feed(batch) or len(batch) < integrity.BATCH:
                return replay

    def _snapshot(self) -> tuple[int, str]:
        rows = self._db.execute(f"SELECT {_ROW} FROM edges ORDER BY {_COLUMNS}, sidecar").fetchall()
        return self._append(integrity.body(integrity.SNAPSHOT, rows))

    def _append(self, text: str) -> tuple[int, str]:
        """One chain entry, inside the caller's write transaction (so workers append in turn); never on top
        of an unsigned entry when the writer has a key (`integrity.signed_head`)."""
        last = self._db.execute("SELECT hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
        integrity.signed_head(last[0] if last else None, self._key, f"lineage store {self.path}",
                              held=last is None and self._held())  # fmt: skip
        self._signer_known(last)
        if last is None:
            anchor = self._db.execute("SELECT value FROM meta WHERE key = 'anchor'").fetchone()
            prev = anchor[0] if anchor else integrity.GENESIS
        else:
            prev = last[0]
        signed = integrity.link(prev, text, self._key)
        cursor = self._db.execute("INSERT INTO chain (at, body, prev, hash) VALUES (?, ?, ?, ?)",
                                  (time.time(), text, prev, signed))  # fmt: skip
        self._head_ok = signed  # rolled back with the transaction, if it is: then the next append reads it again
        seq = int(cursor.lastrowid or 0)
        self._appended = (seq, signed)  # the head once the caller's transaction commits
        return seq, prev

    def _signer_known(self, last: Any) -> Any:
        """`integrity.known_signer` for the newest entry (`last`: its hash row), read whole only when it is
        not the one this writer last saw signed with one of its keys; the row read (prev, body, hash), if it was."""
        if last is None or not self._keys or last[0] == self._head_ok:
            return None
        newest = self._db.execute("SELECT prev, body, hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
        integrity.known_signer(newest, self._keys, f"lineage store {self.path}")
        self._head_ok = last[0]
        return newest

    def _unswapped(self, read: Callable[[], _T]) -> _T:
        """`read()`, for a reader raising StoreReplaced, whatever it gave or raised, when the file it reads is no longer
        the one checked as it was opened (`file_identity`), or a FIFO was found where SQLite opens it or a file beside
        it (`Unblocker`): what was read is not certain to be the store's."""
        if self._unblocker is None:
            return read()
        try:
            found = read()
        except sqlite3.Error as exc:
            self._replaced()
            if isinstance(exc, sqlite3.OperationalError) and not isinstance(exc, StoreWaited) and is_busy(exc):
                raise busy(self.path, exc, READ_WAIT_S, reader=True) from None
            raise
        self._replaced()
        return found

    def _replaced(self) -> None:
        from proxy.record.stores import shown_path  # (it imports this module)

        assert self._unblocker is not None
        fifo = self._unblocker.found()
        if fifo is not None:
            what = "by a FIFO" if fifo in (self.path, os.path.realpath(self.path)) else (
                f"{shown_path(fifo)} beside it by a FIFO")  # fmt: skip
        elif file_identity(self.path) != self._file:
            what = "by another file" if os.path.lexists(self.path) else "removed"
        elif self._unchanging is not None and _unchanging(self.path) != self._unchanging:
            raise StoreReplaced("written while it was read: it was read as a file nobody writes (in WAL mode, with no "
                                "-wal beside it and no -shm this process may make there), and it changed meanwhile, or "
                                "a -wal came beside it: what was read is not certain to be this store's, so nothing is "
                                "said of it; read it again")  # fmt: skip
        else:
            return
        raise StoreReplaced(f"replaced while it was read ({what}): what was read is not certain to be this "
                            "store's, so nothing is said of it; read it again once nobody changes it")  # fmt: skip

    def integrity(
        self, key: bytes | None = None, *, strict: bool = True, retired: tuple[bytes, ...] = ()
    ) -> integrity.Report:
        """Walk and replay the chain against the edge table (read-only). `strict`: given a key, the newest
        entry must be signed (with it, or one of the `retired` keys before it, oldest first)."""
        return self._unswapped(lambda: self._integrity(key, strict=strict, retired=retired))

    def _integrity(self, key: bytes | None, *, strict: bool, retired: tuple[bytes, ...]) -> Report:
        unchained = self._unchained()
        if unchained is not None:
            return unchained

        def verify() -> integrity.Report:
            with self._reading():  # one read transaction: writers going on meanwhile cannot make it disagree
                return self._verify(key, strict=strict, retired=retired)[0]

        return self._decoded(verify)

    def _decoded(self, read: Callable[[], _T]) -> _T:
        """`read()`; read again, text that is not UTF-8 read as its bytes escaped (`_bytes_escaped`), when the
        store holds such text: written by hand (`CAST(x'ff' AS TEXT)`), never by a writer (Python's sqlite3
        writes UTF-8), and refused by Python's sqlite3, so one such row made the whole store unreadable (and
        `verify --integrity` a usage error, not the verdict on an edited record)."""
        try:
            return read()
        except sqlite3.OperationalError as exc:
            if self._db.text_factory is _bytes_escaped or not str(exc).startswith(_NOT_UTF8):
                raise
        self._db.text_factory = _bytes_escaped  # this connection's reads from now on (readers' connections)
        return read()

    def _unchained(self) -> Report | None:
        """The verdict on a file that is no lineage store (NotALineageStore) or has no chain; None when it
        has both tables to walk."""
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "edges" not in tables:
            raise NotALineageStore(
                "it has no tables" if not tables else f"no edges table; it has {', '.join(sorted(tables))}"
            )
        if "chain" not in tables:
            # the meta table came with the chain, and edges keyed by their rule long after it: either says a
            # release that chains its writes made this store, so its chain was dropped
            if "meta" in tables:
                return Report(0, "", False, "this store has no chain table (it was dropped: its meta table, "
                              "which came with the chain, is still there)")  # fmt: skip
            if "rule" in self._key_columns():
                return Report(0, "", False, "this store has no chain table (it was dropped: its edges are keyed "
                              "by rule, which only releases that chain their writes do)")  # fmt: skip
            return Report(0, "", False, "this store has no chain (written by a release before it, or its chain "
                          "and meta tables were dropped)")  # fmt: skip
        dropped = self._dropped(tables)
        if dropped is not None:
            return Report(0, "", False, dropped)
        return None

    def _dropped(self, tables: set[str]) -> str | None:
        """Why the store lacks a table or column that every release chaining its writes made with the chain (None
        when it has them all): dropped by hand, which a read names as "no such table" or "no such column", a usage
        error (exit 2) rather than the verdict on an edited record."""
        if "meta" not in tables:
            return ("this store has no meta table (it was dropped: it comes with the chain table, and holds the "
                    "anchor a retention purge leaves)")  # fmt: skip
        return dropped_column(lambda table: {str(row[1]) for row in self._db.execute(f"PRAGMA table_info({table})")})

    def _verify(
        self, key: bytes | None, *, strict: bool = True, retired: tuple[bytes, ...] = ()
    ) -> tuple[Report, list[Any]]:
        """The chain replayed with `key` and the `retired` keys before it (given by the caller: never the
        writer's own) against the edges, and the edge rows it compared them with, read once: a reader of the
        verified record (`for_copy`) takes these rows, never a second read of the table, which SQLite may plan
        through another index (an index rewritten by hand, `writable_schema`, to leave a denial out hid it from
        `report --integrity` and `verify --baseline --integrity` while the verdict, reading the table, said intact)."""
        odd = self._oddities()
        if odd:
            return Report(0, "", False, f"the store has {odd}: a lineage store has none (they can change what is "
                          "written or read)"), []  # fmt: skip
        lie = self._file_disagrees()
        if lie is not None:
            return Report(0, "", False, lie), []
        anchor = self._db.execute("SELECT value FROM meta WHERE key = 'anchor'").fetchone()
        replay = self._replay(integrity.Replay(anchor[0] if anchor else integrity.GENESIS, key, hashes=True,
                                               retired=retired, numbered=True))  # fmt: skip
        rows = self._db.execute(f"SELECT {self._stored()} FROM edges").fetchall()
        report = replay.finish(rows, strict=strict, numbered_to=_numbered_to(self._db))
        if report.intact and self._db.text_factory is _bytes_escaped:
            report = replace(report, problem=_EDITED_INTO_BYTES)
        return report, rows

    def _file_disagrees(self) -> str | None:
        """Why the file is not as SQLite's own structure says it must be (None when it is), in SQLite's own words
        (`PRAGMA integrity_check`, every line of it: its default stops at 100). An index of the lineage tables that
        does not hold what its table holds is named first: one rewritten by hand in sqlite_master (`PRAGMA
        writable_schema`: made partial, leaving denials out, then declared whole), which SQLite reads a query through
        when it covers the columns asked for or their order, so the rows such a read gives are not the table's. Any
        other line but the harmless ones (`_HARMLESS_LINES`) is a page written by hand or damaged ("Page 58 is never
        used": a page no table holds, where rows can be kept out of every read; "Fragmentation of 0 bytes reported as
        127 on page 4"; "Tree 2 page 9 cell 0: ..."): until 2026-12-07 only the lines naming an index were taken, and
        a store so changed was called intact."""
        indexes = dict(self._db.execute(
            "SELECT name, lower(tbl_name) FROM sqlite_master WHERE type = 'index' "
            "AND lower(tbl_name) IN ('edges', 'chain', 'meta')").fetchall())  # fmt: skip
        damaged: list[str] = []
        for (found,) in self._db.execute(f"PRAGMA integrity_check({_EVERY_LINE})"):
            for line in str(found).splitlines():  # (the first is led by "*** in database main ***")
                if not line or line.startswith("*** in database ") or line in _HARMLESS_LINES:
                    continue
                named = next((name for name in indexes if line.endswith(f" index {name}")), None)
                if named is not None:
                    table = str(indexes[named])
                    readers = " (as `edges`, and `report` without --integrity, may read it)" if table == "edges" else ""
                    return (f"the store's index {escaped(str(named))} disagrees with its table {table} (SQLite's "
                            f"integrity check: {escaped(line)}): a read through it shows other rows than the table "
                            f"holds{readers}; no writer makes that, a hand does (an index rewritten in sqlite_master, "
                            "PRAGMA writable_schema)")  # fmt: skip
                damaged.append(line)
        if not damaged:
            return None
        shown = "; ".join(escaped(line) for line in damaged[:_SHOWN_LINES])
        more = len(damaged) - _SHOWN_LINES
        shown += f"; and {more} more line{'s' if more > 1 else ''}" if more > 0 else ""
        return (f"the store's file is not as SQLite's own structure says it must be (SQLite's integrity check: {shown}): "
                "pages a read may skip or misread, or that no table holds, where rows can be kept out of every read; no "
                "writer leaves that: the file was written by hand, or damaged")  # fmt: skip

    def for_copy(
        self, key: bytes | None, retired: tuple[bytes, ...] = ()
    ) -> tuple[Report, list[EdgeRow], str | None, tuple[str, ...]]:
        """What `edges --copy-to` takes, read in one transaction: the chain's verdict with `key` and the
        `retired` keys before it (given, the chain must be signed with them, as for `verify`), then, when it verifies,
        the rows, the store's origin (None: no writer of this release has opened it), and the copies it holds (none:
        only a PostgreSQL store is copied into). `verify --baseline --integrity` judges those rows."""
        return self._unswapped(lambda: self._for_copy(key, retired))

    def _for_copy(
        self, key: bytes | None, retired: tuple[bytes, ...]
    ) -> tuple[Report, list[EdgeRow], str | None, tuple[str, ...]]:
        unchained = self._unchained()
        if unchained is not None:
            return unchained, [], None, ()

        def read() -> tuple[Report, list[EdgeRow], str | None, tuple[str, ...]]:
            with self._reading():
                report, rows = self._verify(key, retired=retired)
                if not report.intact:  # nothing is taken from a record that does not verify (a row edited into
                    return report, [], None, ()  # a blob too, which a read of the rows would raise on)
                meta = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
                # read as bytes, shown escaped as every reader shows text that is not UTF-8: no chain entry signs the
                # origin, so bytes in it never make a record the verdict called intact one that does not verify
                found = self._db.execute(_ORIGIN).fetchone() if meta else None
                origin = _bytes_escaped(found[0]) if found else None
                return report, in_read_order(EdgeRow.stored(row) for row in rows), origin, ()

        return self._decoded(read)

    def rows(self) -> list[EdgeRow]:
        return self._unswapped(lambda: self._decoded(self._rows))

    def _rows(self) -> list[EdgeRow]:
        cursor = self._db.execute(f"SELECT {self._stored()} FROM edges ORDER BY {READ_ORDER}")
        return [EdgeRow.stored(row) for row in cursor]

    def _stored(self) -> str:
        """The columns of an edge as stored (`_ROW`), for a reader: an older file stays as it is, read-only, its
        reason NULL when it kept none, its sidecar '' when it was not keyed by one yet."""
        columns = self._columns()
        reason = "reason" if "reason" in columns else "NULL"
        sidecar = "sidecar" if "sidecar" in columns else "''"
        return f"{_COLUMNS}, {reason}, {sidecar}"

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            if self._unblocker is not None:
                self._unblocker.stop()
