"""Which edge store a `lineage.store` / `--store` value names: the one place that tells a PostgreSQL URL
from a SQLite path, so `serve`, `edges`, `verify` and `report` all accept both."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from typing import Protocol

from proxy.config import Lineage, OpenLineage, SqliteNameError, read_secret, sqlite_file
from proxy.errors import StartupError
from proxy.record import integrity
from proxy.record.integrity import Report
from proxy.record.store import (
    OPEN_TIMEOUT_S,
    SPOOL,
    EdgeRow,
    EdgeStore,
    SqliteStore,
    StoreLocationError,
    StoreReplaced,
    UnreadableHere,
    require_directory,
    require_spool_directory,
    special_beside,
    special_file,
)

DEFAULT_JOURNAL = "./lineage-journal.db"  # lineage.journal when the store is PostgreSQL and none is set

log = logging.getLogger("lineage_proxy.edges")


class ReadableStore(EdgeStore, Protocol):
    """What the read commands need: the edges and the chain that proves them."""

    def integrity(
        self, key: bytes | None = None, *, strict: bool = True, retired: tuple[bytes, ...] = ()
    ) -> integrity.Report: ...

    def for_copy(
        self, key: bytes | None, retired: tuple[bytes, ...] = ()
    ) -> tuple[Report, list[EdgeRow], str | None, tuple[str, ...]]: ...


def is_database(store: str) -> bool:
    return store.startswith(("postgresql://", "postgres://"))


def open_waits_s(store: str | None) -> float:
    """The longest a writer's `open_store` of `store` waits at its bounds, one wait after the other: a SQLite file's
    read of its tables and switch to WAL (OPEN_TIMEOUT_S together, `store.wal`), then its write lock (OPEN_TIMEOUT_S);
    a PostgreSQL store's connection and the chain's lock (`postgres.open_waits_s`: its URL's own bounds when it sets
    them), then its journal's open, a SQLite file's. None (no store) is counted as a SQLite file, so a start without
    one keeps the grace it had. A `--workers` worker's start grace follows it (`workers.start_grace_s`)."""
    sqlite = 2 * OPEN_TIMEOUT_S
    if not store or not is_database(store):
        return sqlite
    from proxy.record.postgres import open_waits_s as database_waits  # psycopg only when used

    return database_waits(store) + sqlite


def unopenable(lineage: Lineage) -> list[str]:
    """Why `serve` could not open the files its lineage record is written to (a SQLite `store`; a PostgreSQL one's
    `journal`; the OpenLineage spool), each at its key: a directory missing or not writable, a file it may not
    write. `check` says them, as `serve` would refuse its start so; a database itself is not asked (`check` connects
    to nothing)."""
    problems: list[str] = []
    store = lineage.store
    if store is not None:
        key, path, what = ("lineage.journal", lineage.journal, "lineage journal") if is_database(store) else (
            "lineage.store", store, "lineage store")  # fmt: skip
        try:  # the file a `file:` URI names, as the writer opens it
            _said(problems, key, require_directory, sqlite_file(path), what)
        except SqliteNameError:  # (said by the config's check, at its key: a config so written never gets here)
            pass
    spool = spool_unopenable(lineage.openlineage)
    if spool is not None:
        problems.append(spool)
    return problems


def spool_unopenable(openlineage: OpenLineage | None) -> str | None:
    """Why the OpenLineage spool could not be kept where `openlineage` says, at its key (`require_spool_directory`)."""
    if openlineage is None:
        return None
    problems: list[str] = []
    _said(problems, "lineage.openlineage.spool", require_spool_directory, openlineage.spool, SPOOL)
    return problems[0] if problems else None


def _said(problems: list[str], key: str, require: Callable[[str, str], None], path: str, what: str) -> None:
    try:
        require(path, what)
    except StoreLocationError as exc:
        problems.append(f"{key}: {exc}")


def open_store(
    store: str,
    *,
    key: bytes | None = None,
    retired: tuple[bytes, ...] = (),
    readonly: bool = False,
    password: str | Callable[[], str | None] | None = None,
    journal: str | None = None,
    journal_max_rows: int | None = None,
    sidecar: str = "",
) -> ReadableStore:
    """Open the store `store` names. A writable PostgreSQL store gets the local journal in front of its
    outages (`journal`, default DEFAULT_JOURNAL). `key` signs the chain's entries; `retired`, the keys it
    replaced (oldest first), check those signed before. `sidecar`: a writer's `lineage.sidecar`, recorded with every
    edge it writes. FileNotFoundError when a read-only store is not there."""
    if not is_database(store):
        return SqliteStore(store, readonly=readonly, key=key, retired=retired, sidecar=sidecar)
    from proxy.record.journal import DEFAULT_MAX_ROWS, Journal, JournaledStore  # psycopg only when used
    from proxy.record.postgres import PostgresStore, database_identity

    # a writer whose database is away at the start journals until it answers, as during any outage
    database = PostgresStore(store, readonly=readonly, key=key, retired=retired, password=password,
                             wait_for_server=not readonly, sidecar=sidecar)  # fmt: skip
    if readonly:
        return database
    path = journal or DEFAULT_JOURNAL
    try:
        journal_file = Journal(path, journal_max_rows or DEFAULT_MAX_ROWS, key=key, retired=retired,
                               database=database_identity(store))  # fmt: skip
    except sqlite3.Error as exc:  # named here: `serve` would say the database could not be opened, in SQLite's words
        database.close()
        raise StartupError(f"cannot open the lineage journal {path}: {exc}") from None
    return JournaledStore(database, journal_file)


class PasswordFile:
    """`lineage.password_file`, read again for each new connection to the database: a password rotated
    in the file (a Kubernetes secret) is used from the next reconnect on. A file that cannot be read then
    (being replaced) leaves the last password read in use, and says so once."""

    def __init__(self, path: str, password: str) -> None:
        self.path = path
        self._password = password  # read at the start, when it had to be readable
        self._problem: str | None = None

    def __call__(self) -> str:
        try:
            self._password = read_secret(self.path).decode()
        except (OSError, UnicodeDecodeError) as exc:
            problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if problem != self._problem:
                log.warning("lineage.password_file: cannot read %r (%s); the password read before is used",
                            self.path, problem)  # fmt: skip
            self._problem = problem
        else:
            self._problem = None
        return self._password


class StoreUnreadable(Exception):
    """A read command's store cannot be opened; the message names it and says why, for the user."""


def read_errors() -> tuple[type[Exception], ...]:
    """What reading a store may raise: SQLite's errors, and psycopg's when it is installed."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency; an SQLite-only install still reads
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


def shown(store: str) -> str:
    """The store as messages show it: a URL without its password; a name's bytes that are not UTF-8 escaped
    (`shown_path`)."""
    if not is_database(store):
        return shown_path(store)
    from proxy.record.postgres import redact

    return shown_path(redact(store))


def shown_path(path: str) -> str:
    """A path (or URL) as text any output takes: the bytes of a name that are not UTF-8 (`café.db` in Latin-1, which
    Python reads from the command line as lone surrogates, which no UTF-8 holds) escaped, `caf\\xe9.db`, as the
    readers show such bytes in a store's rows. Written as it was, it failed each reader as it wrote its output."""
    if path.isascii():
        return path
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no byte stands for (a YAML `\\ud800`): as Python's escape
        raw = path.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def _scrubbed(error: Exception, store: str) -> str:
    """The error's message without the store's password, which a database URL's parse error quotes."""
    if not is_database(store):
        return str(error)
    from proxy.record.postgres import scrub

    return scrub(str(error), store)


def open_reader(store: str) -> ReadableStore:
    """A read-only store for `edges`, `verify` and `report`: StoreUnreadable when it cannot be opened."""
    if not is_database(store):
        try:
            file = sqlite_file(store)  # a `file:` URI's file, as the writer opens it (SqliteStore)
        except SqliteNameError as exc:
            raise StoreUnreadable(shown_path(str(exc))) from None
        if os.path.isdir(file):
            raise StoreUnreadable(f"{shown(store)}: is a directory, not a lineage store")
        if not os.path.exists(file):
            raise StoreUnreadable(f"{shown(store)}: no lineage store there (is lineage.store set to this path?)")
        kind = special_file(file)
        if kind is not None:  # SQLite would wait on a FIFO for ever
            raise StoreUnreadable(f"{shown(store)}: is {kind}, not a lineage store")
        beside = special_beside(file)
        if beside is not None:  # its -journal too
            raise StoreUnreadable(f"{shown(store)}: {shown_path(beside[0])} beside it is {beside[1]}, not a file "
                                  "SQLite makes (remove it)")  # fmt: skip
    open_errors: tuple[type[Exception], ...] = (*read_errors(), ValueError, RuntimeError)
    try:
        return open_store(store, readonly=True)
    except FileNotFoundError:
        raise StoreUnreadable(f"{shown(store)}: no lineage store there (is lineage.store set to this path?)") from None
    except (StoreReplaced, UnreadableHere) as exc:  # (a file swapped in as SQLite opened it; a store it cannot read)
        raise StoreUnreadable(f"{shown(store)}: {exc}") from None
    except open_errors as exc:
        raise StoreUnreadable(f"{shown(store)}: cannot open it as a lineage store: {_scrubbed(exc, store)}") from None
