"""The fleet's lineage store: edges of every sidecar in one PostgreSQL database.

Same semantics as the SQLite store (store.py): one upsert per edge adding counts, a hash chain entry
in the same transaction as every write (`integrity.py`), retention purge with a snapshot, a schema
created on first start and versioned in `meta`. Many sidecars, each with `--workers N`, write one
database: every write transaction takes one advisory lock first, so chain entries from different hosts
append in turn and two upserts never deadlock on each other's rows.

A sync connection, not async nor pooled: the store is only ever called from the edge aggregator's
single writer thread (edges.py), which is already off the event loop, so one connection per process
serialises exactly like the writer does; a pool or an async driver would add a hop for nothing. It
reconnects on the next write after any failure. Measured on loopback (PostgreSQL 15 with fsync off,
psycopg 3.3, 200 single-edge writes): 0.77 ms per write, a new flow's cost, against 0.055 ms for
SQLite in WAL mode; a 100-edge count flush 5.2 ms against 0.6 ms. Counts are batched once a second, so
only new flows pay it per call.

Writes may carry a token (`upsert(rows, token=...)`): it is recorded in `applied` in the same
transaction, and a write whose token is already there does nothing. The journal (journal.py) uses it
so a batch replayed after a crash, or whose commit was lost with the connection, counts exactly once.

No round trip waits longer than the statement timeout for an answer: a server that has stopped
answering (a stalled host, a partition) cannot fire its own statement_timeout, so a watchdog thread
shuts the connection's socket down at the bound and psycopg raises, as for any lost connection
(`_Connection`; TCP keepalives do not see a stopped process whose kernel still acknowledges).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import conninfo, sql
from psycopg.abc import PQGen

from proxy.config.loader import store_userinfo, userinfo_hint
from proxy.errors import StartupError
from proxy.logs import escaped
from proxy.record import integrity
from proxy.record.integrity import Replay, Report
from proxy.record.store import (
    READ_ORDER,
    TAMPERED_START,
    UNVERIFIED_PURGE,
    EdgeRow,
    EdgeWrite,
    SchemaTooNew,
    StoreUnclear,
    StoreWaited,
    dropped_column,
    flat,
)

log = logging.getLogger("lineage_proxy.edges")

# 3: the sidecar that recorded an edge is part of its key (`lineage.sidecar`); 2: the rule is (1: neither); a store
# made before is re-keyed when a writer opens it
SCHEMA_VERSION = 3
# every write transaction takes this lock first (pg_advisory_xact_lock): the chain's writers in turn
LOCK_ID = 0x6C696E65616765  # "lineage"
# the tables a write changes (ROW EXCLUSIVE): a check that a write can go ahead takes their locks too
WRITTEN_TABLES = "applied, edges, chain"
DEFAULT_CONNECT_TIMEOUT_S = 5
# a database that hangs (a stalled server, a lock held elsewhere) fails the statement instead of holding
# the writer thread for ever: the aggregator keeps the counts (or the journal takes them) and retries.
# The server cancels a statement after it (statement_timeout); a round trip that gets no answer at all
# (a stalled server) is cut by the client after it too (`_Watchdog`)
DEFAULT_STATEMENT_TIMEOUT_S = 30.0
# the only encoding whose text holds every name and reason a call brings (any script); SQL_ASCII hands
# text back as bytes, LATIN1 and the like refuse most scripts
ENCODING = "UTF8"

SCHEMA = """
CREATE TABLE IF NOT EXISTS edges (
    caller        text NOT NULL,
    purpose       text NOT NULL,
    input_labels  text NOT NULL,
    checkpoint    text NOT NULL,
    output_labels text NOT NULL,
    decision      text NOT NULL,
    first_seen    double precision NOT NULL,
    last_seen     double precision NOT NULL,
    count         bigint NOT NULL,
    rule          text NOT NULL DEFAULT '',
    reason        text,
    sidecar       text NOT NULL DEFAULT '',
    PRIMARY KEY (caller, purpose, input_labels, checkpoint, output_labels, decision, rule, sidecar)
);
CREATE INDEX IF NOT EXISTS edges_last_seen ON edges (last_seen);
CREATE TABLE IF NOT EXISTS chain (
    seq  bigserial PRIMARY KEY,
    at   double precision NOT NULL,
    body text NOT NULL,
    prev text NOT NULL,
    hash text NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS applied (token text PRIMARY KEY, at double precision NOT NULL);
"""
# a writer whose clock is off the database's by more than this is warned at its start (`_clock_against`)
CLOCK_SKEW_S = 60.0
# a writer whose clock is behind the database's by more than this stamps what it writes (first and last seen, a write
# token's time, a chain entry's) by the database's clock instead (`PostgresStore._behind`): every purge cuts by that
# clock, so what it recorded would be purged as expired by the fleet's next purge once it lags by the retention
CLOCK_BEHIND_S = 1.0
# the privileges a writer takes, table by table: a write (an upsert, its chain entry and token, `meta` at the start)
# and a retention purge (edges, chain entries and tokens deleted; the anchor set). Each names the columns its
# statements name (one granted on some columns only must cover those: an `INSERT (caller, ...)` grant without
# `sidecar` passed as "may insert" and then failed every write); DELETE is the table's ('')
_EDGE_COLUMNS: Final = ("caller", "purpose", "input_labels", "checkpoint", "output_labels", "decision", "first_seen",
                        "last_seen", "count", "rule", "reason", "sidecar")  # fmt: skip
_WRITES: Final = (
    *(("edges", p, c) for p in ("SELECT", "INSERT") for c in _EDGE_COLUMNS),
    *(("edges", "UPDATE", c) for c in ("count", "first_seen", "last_seen", "reason")),  # UPSERT's DO UPDATE SET
    ("edges", "DELETE", ""),
    *(("chain", "SELECT", c) for c in ("seq", "at", "body", "prev", "hash")),
    *(("chain", "INSERT", c) for c in ("at", "body", "prev", "hash")),  # its seq is the sequence's
    ("chain", "DELETE", ""),
    *(("meta", p, c) for p in ("SELECT", "INSERT") for c in ("key", "value")),
    ("meta", "UPDATE", "value"),
    *(("applied", p, c) for p in ("SELECT", "INSERT") for c in ("token", "at")),
    ("applied", "DELETE", ""),
)
# what this role lacks of `_WRITES` in the writer's schema (the first on its search path), and USAGE on the chain's
# sequence (or UPDATE: nextval takes either), as (privilege, object, the columns it lacks it on when it has it on some)
# rows (DELETE is the table's alone); a column the table does not have yet (a store a writer of this release has not re-keyed: the owner's start
# adds it, and a table's grant covers it then) is not asked about; every catalog and function pg_catalog's by name
_MISSING = """
SELECT w.privilege, c.relname::pg_catalog.text, CASE WHEN w.privilege OPERATOR(pg_catalog.=) 'DELETE' THEN NULL
        WHEN pg_catalog.has_any_column_privilege(c.oid, w.privilege)
        THEN pg_catalog.string_agg(a.attname::pg_catalog.text, ', ' ORDER BY a.attnum) END
    FROM ROWS FROM (pg_catalog.unnest(%(tables)s::pg_catalog.text[]), pg_catalog.unnest(%(privileges)s::pg_catalog.text[]),
        pg_catalog.unnest(%(columns)s::pg_catalog.text[])) AS w(relname, privilege, attname)
    JOIN pg_catalog.pg_class c ON c.relname OPERATOR(pg_catalog.=) w.relname::pg_catalog.name
        AND c.relnamespace OPERATOR(pg_catalog.=) pg_catalog.to_regnamespace(pg_catalog.current_schema())
    LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid
        AND a.attname OPERATOR(pg_catalog.=) w.attname::pg_catalog.name AND a.attnum OPERATOR(pg_catalog.>) 0
        AND NOT a.attisdropped
    WHERE CASE WHEN w.attname OPERATOR(pg_catalog.=) '' THEN NOT pg_catalog.has_table_privilege(c.oid, w.privilege)
        WHEN a.attnum IS NULL THEN false
        ELSE NOT pg_catalog.has_column_privilege(c.oid, a.attnum, w.privilege) END
    GROUP BY w.privilege, c.relname, c.oid
UNION ALL
SELECT 'USAGE', 'sequence ' OPERATOR(pg_catalog.||) s.relname::pg_catalog.text, NULL FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_class s ON s.oid OPERATOR(pg_catalog.=) d.objid
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.refobjid AND c.relname OPERATOR(pg_catalog.=) 'chain'
        AND c.relnamespace OPERATOR(pg_catalog.=) pg_catalog.to_regnamespace(pg_catalog.current_schema())
    WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
        AND CASE WHEN s.relkind OPERATOR(pg_catalog.=) 'S'
            THEN NOT pg_catalog.has_sequence_privilege(s.oid, 'USAGE, UPDATE')  -- either: what nextval takes
            ELSE false END  -- a condition the planner may test first: a toast table is no sequence
"""
# what SCHEMA makes, by name
FORGET_TOKENS = "DELETE FROM applied WHERE at < %s AND token NOT LIKE 'copy:%%'"  # a copy's is kept for ever
_MADE = ("edges", "edges_last_seen", "chain", "meta", "applied")
_FLOW = "caller, purpose, input_labels, checkpoint, output_labels, decision"
# an edge: its flow, the rule that decided it ('' for none), and the sidecar that recorded it ('' before they were named)
_KEY = f"{_FLOW}, rule, sidecar"
_COLUMNS = f"{_FLOW}, first_seen, last_seen, count, rule"
_ROW = f"{_COLUMNS}, reason, sidecar"  # an edge as stored (`EdgeRow.stored`), as the chain's changes say it
# the columns `verify --integrity` reads, table by table: every PostgreSQL store's edges were made with `reason` (a
# sidecar column not made yet reads as '', `_sidecar`)
_VERIFIED_COLUMNS = (("chain", ("seq", "at", "body", "prev", "hash")), ("meta", ("key", "value")),
                     ("edges", (*_COLUMNS.split(", "), "reason")))  # fmt: skip

UPSERT = f"""
INSERT INTO edges ({_ROW}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT ({_KEY}) DO UPDATE SET
    count = edges.count + excluded.count,
    first_seen = least(edges.first_seen, excluded.first_seen),
    last_seen = greatest(edges.last_seen, excluded.last_seen),
    reason = coalesce(excluded.reason, edges.reason)
"""
# the edges as the verdict reads them ({sidecar}: the column, or '' in a store not keyed by sidecar yet, `_sidecar`),
# and as a reader lists them
_EDGES = f"SELECT {_COLUMNS}, reason, {{sidecar}} FROM edges"
_ROWS = f"{_EDGES} ORDER BY {READ_ORDER}"
# every connection's settings: times read back as written (`extra_float_digits`), and no row security policy applied
# to a read or write, which fails instead (`row_security`; no effect on a superuser, who bypasses them)
_SESSION = ("SELECT pg_catalog.set_config('extra_float_digits', '3', false), "
            "pg_catalog.set_config('row_security', 'off', false)")  # fmt: skip
# a reader's search path with pg_catalog first, as a writer's pinned to its schema has it: a path that names pg_catalog
# later (the database's `SET search_path = public, pg_catalog`, which its owner sets) took an operator of public's
# (a LIKE answering false) for pg_catalog's, and the copies a store holds read as none
_READER = ("pg_catalog.set_config('search_path', pg_catalog.concat_ws(', ', 'pg_catalog', CASE WHEN "
           "pg_catalog.current_setting('search_path') OPERATOR(pg_catalog.<>) '' THEN "
           "pg_catalog.current_setting('search_path') END), false)")  # fmt: skip


# what a server says while it cannot take a connection for now, in libpq's (English) words. A server whose
# lc_messages is another language says them otherwise: then its FATAL reads as lasting, and `serve` exits 1
# quoting it, as for a wrong password
_NOT_NOW = (
    "starting up", "shutting down", "in recovery mode", "not yet accepting connections", "too many clients",
    "connection slots are reserved",
)  # fmt: skip
# SQLSTATE classes of a lasting "no": 28 authorization, 3D no such database, 42 no rights (or a schema clash)
_LASTING = ("28", "3D", "42")


def refused(exc: psycopg.OperationalError) -> bool:
    """Whether the server answered with a lasting "no" (no such database or role, wrong password, no
    pg_hba entry, no rights): a configuration to fix, not an outage to wait out (08 connection, 53
    resources, 57 shutdown or timeout). libpq gives no SQLSTATE for a failed connection, only the
    server's FATAL message in its text."""
    if exc.sqlstate is not None:
        return exc.sqlstate[:2] in _LASTING
    text = str(exc)
    return "FATAL:" in text and not any(words in text for words in _NOT_NOW)


_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def database_identity(url: str) -> str:
    """The database a URL names, as its journal records it (`Journal.database`): hosts, ports and database name
    as libpq reads them from the URL (never the user or password; the defaults libpq fills from the environment are
    left out). The URL redacted when it cannot be read."""
    try:
        given = conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return redact(url)
    return f"{given.get('host') or ''}:{given.get('port') or ''}/{given.get('dbname') or ''}"


def _userinfo(url: str) -> tuple[int, int] | None:
    """Where a URL's `user[:password]` begins and where its `@` is, as libpq reads it: up to the first `@` before any
    `/`, so a `?` or `#` before it is the password's (`postgresql://lp:12?34@db/lineage`, which `urlsplit` reads as a
    query: until 2026-12-05 logged as written), and on to a later `@` before a `?` (a password holding an `@`
    unescaped, `p@ss`, which libpq ends at the first: hidden whole)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    start = len(scheme) + 3
    authority = rest.partition("/")[0]
    first = authority.find("@")
    if first < 0:
        return None
    query = authority.find("?", first)  # (libpq's hosts end at one)
    return start, start + authority.rfind("@", first, query if query >= 0 else len(authority))


def redact(url: str) -> str:
    """The URL without its passwords (in the user part, or a `password=` / `sslpassword=` parameter), for
    messages and logs. Hosts are left as written: libpq accepts several (`h1:5432,h2:5433`)."""
    # (one libpq reads no userinfo in, `lp:a?b/c#dzq@h`, or one holding an `@` past its first, `ops@:pw?x@h`)
    userinfo = store_userinfo(url) or _userinfo(url)
    shown = ""  # the user part as shown, its `@` too
    if userinfo is not None:
        start, at = userinfo
        user, colon, _ = url[start:at].partition(":")
        shown = f"{user}:***@" if colon else url[start : at + 1]
        url = url[:start] + url[at + 1 :]  # taken apart without it: `urlsplit` ends it at a `?` or `#`
    try:
        parts = urlsplit(url)
    except ValueError:  # no URL to take apart (`postgresql://[::1`, an unclosed IPv6 host): as written, less passwords
        text = url if userinfo is None else url[: userinfo[0]] + shown + url[userinfo[0] :]
        return _SECRET_QUERY.sub(lambda match: match[0].removesuffix(match[1]) + "***", text)
    parts = parts._replace(netloc=shown + parts.netloc)
    if "password" in parts.query.lower():
        query = [
            (k, "***" if k.lower() in _SECRET_PARAMETERS else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


def scrub(message: str, url: str) -> str:
    """`message` without `url`'s passwords: psycopg's parse errors quote the URL whole (`... in URI:
    "postgresql://u:secret@[::1"`), shown as `redact` shows it, or a password alone (`invalid percent-encoded
    token: "pa%ss"`: a `%` in it not written `%25`). For a URL whose password libpq does not read as one, its `/` ending
    the authority first (`store_userinfo`: `lp:a?b/c#dzq@h/db`), the config's own words instead: libpq's quoted a piece
    of it (`"b/c#dzq@h/db"`; until 2026-12-05, in `edges --store`, with the URL shown whole)."""
    stray = store_userinfo(url)
    if stray is not None:  # libpq's words quote a piece of the text it misreads (`"b/c#dzq@h/db"`): the config's said
        return userinfo_hint(url, *stray)
    if url in message:
        message = message.replace(url, redact(url))
    userinfo = _userinfo(url)
    secrets = [match.group(1) for match in _SECRET_QUERY.finditer(url)]
    if userinfo is not None:
        secrets.append(url[userinfo[0] : userinfo[1]].partition(":")[2])
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


# a URL's `password=` / `sslpassword=` parameters as written, where `urlsplit` may not read them (its user part:
# `_userinfo`)
_SECRET_QUERY = re.compile(r"[?&](?:ssl)?password=([^&#]*)", re.IGNORECASE)


_TIMEOUT = re.compile(r"(?:-c\s*|--)statement[_-]timeout\s*=\s*'?(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\b")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
# the server-side bounds a connection gets, at the statement timeout, unless the URL's `options` set them
_BOUNDS = {
    name: re.compile(r"(?:-c\s*|--)" + name.replace("_", "[_-]") + r"\s*=")
    for name in ("statement_timeout", "idle_in_transaction_session_timeout")
}


def _statement_timeout(options: str) -> float | None:
    """The statement_timeout libpq `options` set, in seconds (None: none, or 0, which turns it off)."""
    found = _TIMEOUT.search(options)
    if found is None:
        return None
    seconds = float(found.group(1)) * _UNITS[found.group(2) or "ms"]
    return seconds if seconds > 0 else None


def open_waits_s(url: str) -> float:
    """The longest a writer's open of the store at `url` waits at its bounds (`PostgresStore`): its connection (the
    URL's connect_timeout, else DEFAULT_CONNECT_TIMEOUT_S, as psycopg bounds each host of a list in turn: 2 s at
    least, and 0 or less, libpq's "no bound", is psycopg's own default, 130 s), then the schema's transaction, which
    waits for the chain's lock (the URL's statement_timeout, else DEFAULT_STATEMENT_TIMEOUT_S). What a `--workers`
    worker's start grace follows (`stores.open_waits_s`)."""
    given = conninfo.conninfo_to_dict(url)
    try:  # psycopg's rule, which `_Connection.connect` waits by (counted as 5 s, 0 let a start wait 130 s per host)
        connect = float(conninfo.timeout_from_conninfo({"connect_timeout": DEFAULT_CONNECT_TIMEOUT_S, **given}))
    except psycopg.ProgrammingError:  # not a number: psycopg refuses it before connecting (counted all the same)
        connect = DEFAULT_CONNECT_TIMEOUT_S
    statement = _statement_timeout(str(given.get("options") or "")) or DEFAULT_STATEMENT_TIMEOUT_S
    return _attempts(given) * connect + statement


def _attempts(given: dict[str, Any]) -> int:
    """How many connections psycopg tries in turn, each within its connect timeout: one for each host of the URL's
    list (or hostaddr: counted as one, a list of addresses was tried at each), all of them twice with
    target_session_attrs=prefer-standby. A host name that resolves to several addresses is tried at each: not
    counted (that would take a DNS lookup)."""
    hosts = max(len(str(given.get(key) or "").split(",")) for key in ("host", "hostaddr"))
    return hosts * (2 if given.get("target_session_attrs") == "prefer-standby" else 1)


def _milliseconds(seconds: float) -> int:
    """A wait as a whole number of milliseconds, at least 1 (0 would turn a PostgreSQL timeout off)."""
    return max(1, round(seconds * 1000))


def blocked(error: BaseException) -> bool:
    """Whether `error` says the database did not take a statement in time: no answer at all (NoAnswer, a
    connect timeout), its statement timeout, or a lock it waited for that another session holds. Such a
    database is no better on the next write: the writes after it are journaled without waiting."""
    silent = isinstance(error, NoAnswer | psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable)
    return silent or "timeout expired" in str(error)


def one_line(error: BaseException | str) -> str:
    """An error's text on one line, its lines joined by "; ": libpq puts its hints (and each host's failure)
    on lines of their own, which the text log, escaping control characters, would show as `\\n`."""
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip())


def _path(conn: psycopg.Connection[Any] | psycopg.Cursor[Any], schema: str) -> str:
    """A search_path naming `schema` alone (quoted as an identifier: any name, any case)."""
    return sql.Identifier(schema).as_string(conn)


def _one_schema(path: str) -> bool:
    """Whether a search_path setting names one schema alone (not `"$user"`): its list split at the commas outside
    double quotes, as PostgreSQL splits it."""
    names: list[str] = []
    quoted, name = False, ""
    for char in path:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            names.append(name.strip())
            name = ""
            continue
        name += char
    names.append(name.strip())
    return len(names) == 1 and names[0] not in ("", "$user", '"$user"')


_DEFAULT_PATH: Final = ("$user", "public")  # PostgreSQL's search_path when nothing sets one


def _search_path(setconfig: list[str] | None) -> list[str] | None:
    """The schema names a role's or database's settings (`pg_db_role_setting.setconfig`, `search_path=...` among
    them) put on the search path, as PostgreSQL reads the list: split at the commas outside double quotes, a quoted
    name as written (`""` a quote), an unquoted one in lower case; `$user` stands for the role. None: none set."""
    for entry in setconfig or ():
        key, _, value = entry.partition("=")
        if key.strip().lower() != "search_path":
            continue
        names: list[str] = []
        name, quoted, was_quoted, at = "", False, False, 0
        while at <= len(value):
            char = value[at] if at < len(value) else ","
            if quoted:
                if char == '"' and value[at + 1 : at + 2] == '"':
                    name += '"'
                    at += 1
                elif char == '"':
                    quoted = False
                else:
                    name += char
            elif char == '"':
                quoted = was_quoted = True
            elif char == ",":
                name = name if was_quoted else name.strip().lower()
                if name:
                    names.append(name)
                name, was_quoted = "", False
            elif not char.isspace() or name:
                name += char
            at += 1
        return names
    return None


class _Refused(Exception):
    """A purge found the table other than its delete should leave it: the transaction rolls back."""


class NotUtf8(StartupError, RuntimeError):
    """The database's encoding is not UTF8: nothing is written to it, nor read (a StartupError for
    `serve`, a RuntimeError for the read commands)."""


class Policed(StoreUnclear, psycopg.ProgrammingError):
    """A read a row security policy on a lineage table would filter (`row_security` is off on every connection, so
    it fails): the rows it would show are not the table's. A psycopg error, so every reader's `read_errors()` takes
    it; `verify --integrity` names it as it names a policy there when it starts."""


class SchemaUnclear(StoreUnclear, psycopg.ProgrammingError):
    """A read command's search path finds lineage tables in more than one schema (`PostgresStore._schema`): a
    psycopg error, so every reader's `read_errors()` takes it."""


class NoAnswer(StoreWaited, psycopg.OperationalError):
    """A round trip cut after its bound: the database did not answer at all (stalled, or out of reach)."""


class LockWaited(StoreWaited, psycopg.errors.LockNotAvailable):
    """A reader's lock on a lineage table not granted within its lock wait (`reader_lock_wait_s`): another session
    holds one that keeps readers out. The database answered: it is not away, and a reader says so (`LockWaited`'s
    message names the holder), where the watchdog's cut at the bound said "no answer from the database"."""


def reader_lock_wait_s(bound: float) -> float:
    """How long a reader waits for a lock another session holds: its bound (the statement timeout) less a quarter of
    it, a second at most, so the database answers that the lock was not granted (its `lock_timeout`) before the
    watchdog cuts the round trip at the bound as one that got no answer."""
    return bound - min(1.0, bound / 4)


# the sessions holding (or queued for, ahead of a reader) the lock that keeps readers out of a lineage table: ACCESS
# EXCLUSIVE, the only mode ACCESS SHARE waits for (pg_catalog's, by name, as every catalog read here); and the prepared
# transactions holding it (PREPARE TRANSACTION: no session's, its pid NULL), by their gid, found through the lock each
# holds on its own transaction id (its virtualtransaction the relation lock's). Until 2026-12-07 the pid's `<>` left
# those out (NULL), and the message named no holder
_LOCK_HOLDERS: Final = """
SELECT l.relation::pg_catalog.regclass::pg_catalog.text, l.pid, l.granted, p.gid FROM pg_catalog.pg_locks l
LEFT JOIN pg_catalog.pg_locks x ON l.pid IS NULL AND x.pid IS NULL
  AND x.locktype OPERATOR(pg_catalog.=) 'transactionid'
  AND x.virtualtransaction OPERATOR(pg_catalog.=) l.virtualtransaction
LEFT JOIN pg_catalog.pg_prepared_xacts p ON p.transaction OPERATOR(pg_catalog.=) x.transactionid
WHERE l.locktype OPERATOR(pg_catalog.=) 'relation' AND l.mode OPERATOR(pg_catalog.=) 'AccessExclusiveLock'
  AND (l.pid IS NULL OR l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid())
  AND l.relation OPERATOR(pg_catalog.=) ANY (ARRAY[pg_catalog.to_regclass('edges'), pg_catalog.to_regclass('chain'),
      pg_catalog.to_regclass('meta'), pg_catalog.to_regclass('applied')]::pg_catalog.oid[])
ORDER BY l.granted DESC, 1, 2
"""


def _holder(table: str, pid: int | None, granted: bool, gid: str | None) -> str:
    """One holder of (or one queued for) the lock that keeps readers out, in words: a session by its process, a
    prepared transaction by its gid (which no process holds: it ends only as COMMIT PREPARED or ROLLBACK PREPARED)."""
    verb = "holds" if granted else "waits for"
    if pid is not None:
        return f"process {pid} {verb} it on table {escaped(table)}"
    if gid is not None:
        return (f"the prepared transaction {escaped(repr(gid))} {verb} it on table {escaped(table)} until COMMIT "
                "PREPARED or ROLLBACK PREPARED ends it")  # fmt: skip
    return f"a prepared transaction {verb} it on table {escaped(table)}"


class ChainBusy(psycopg.errors.LockNotAvailable):
    """The chain's advisory lock was not granted within the lock wait: another writer holds it (a sibling
    sidecar's long write, a retention purge or a large flush; or one stuck inside its write). Only that
    lock: one of the tables' (a `LOCK TABLE`, a `VACUUM FULL`) is the plain LockNotAvailable."""


# what a reader locks before its snapshot: the tables it reads, and no other (a `VACUUM FULL applied` held `edges` and
# `verify` up to the statement timeout, which read none of it, and they failed, "no answer from the database"); a
# copy's then without `applied` (a role may not read it); none when each try fails (a table dropped: the verdict
# names it)
_COPY_LOCKS: Final = ("edges, chain, meta, applied", "edges, chain, meta")
_VERIFY_LOCKS: Final = ("edges, chain, meta",)
_LIST_LOCKS: Final = ("edges",)


def _lock_read(conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any], locks: tuple[str, ...]) -> None:
    """A reader's transaction locks the lineage tables it reads (ACCESS SHARE: writers go on) as its first statement,
    before its snapshot is taken (a LOCK takes none): TRUNCATE is not MVCC-safe, so a table truncated after the
    snapshot, and filled again, read empty to it (`applied` truncated by its owner once a copy's read had begun
    hid the copies the store holds, and the rows put back after left no trace); with the lock it waits for the read.
    A table missing, or one the role may not read, is left out (a savepoint each try: neither takes a snapshot)."""
    for tables in locks:
        try:
            with conn.transaction():
                cur.execute(f"LOCK TABLE {tables} IN ACCESS SHARE MODE")
            return
        except (psycopg.errors.UndefinedTable, psycopg.errors.InsufficientPrivilege):
            continue


def _lock_chain(cur: psycopg.Cursor[Any]) -> float:
    """The chain's advisory lock, for the transaction (ChainBusy when the lock wait runs out first); the database's
    clock once it is granted (epoch seconds), read in the same round trip."""
    try:  # never a function put first on the search path
        cur.execute("SELECT pg_catalog.pg_advisory_xact_lock(%s), "
                    "extract(epoch FROM pg_catalog.clock_timestamp())::pg_catalog.float8", (LOCK_ID,))  # fmt: skip
    except psycopg.errors.LockNotAvailable as exc:
        raise ChainBusy(f"another writer holds the chain's lock ({one_line(exc)})") from exc
    found = cur.fetchone()
    return float(found[1]) if found is not None and found[1] is not None else math.nan


def _sidecar(cur: psycopg.Cursor[Any]) -> str:
    """What a reader selects for an edge's sidecar: its column, or '' in a store a writer of this release has not
    opened yet (schema version 2 or 1, read-only: left as it is)."""
    cur.execute("SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid OPERATOR(pg_catalog.=) "
                "pg_catalog.to_regclass('edges') AND attname OPERATOR(pg_catalog.=) 'sidecar' AND NOT attisdropped")  # fmt: skip
    return "sidecar" if cur.fetchone() is not None else "''::text"


def _columns(cur: psycopg.Cursor[Any], table: str) -> set[str]:
    """The columns of the lineage table `table` (the one the search path finds, as every read does)."""
    cur.execute("SELECT attname::pg_catalog.text FROM pg_catalog.pg_attribute WHERE attrelid OPERATOR(pg_catalog.=) "
                "pg_catalog.to_regclass(%s) AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped", (table,))  # fmt: skip
    return {str(row[0]) for row in cur.fetchall()}


def _stamped(params: list[tuple[Any, ...]], behind: float) -> list[tuple[Any, ...]]:
    """Edge writes (`flat`) whose first and last seen, this host's clock's, are moved `behind` seconds later: to the
    database's clock, which every sidecar's purge cuts by, when this host's runs behind it. The chain entry signs the
    rows as written, so `verify` replays exactly what the table holds."""
    return [(*p[:6], p[6] + behind, p[7] + behind, *p[8:]) for p in params]


RV = TypeVar("RV")


class _Connection(psycopg.Connection[Any]):
    """A connection whose every round trip (a statement, a commit) is cut after `bound` seconds without an
    answer: the watchdog shuts its socket down, so psycopg raises as for a lost connection (NoAnswer).
    A round trip only sets a number as it starts and ends: no lock, no wake-up of the watchdog."""

    bound = DEFAULT_STATEMENT_TIMEOUT_S
    owner: object = None
    deadline = math.inf  # monotonic, while a round trip waits
    cut: str | None = None  # why the socket was shut down
    _socket = -1  # a duplicate of libpq's socket: a number never reused while this connection holds it
    # what closes it, once: at `close`, or when the connection is collected
    _closes: weakref.finalize[[int], _Connection] | None = None

    def watched(self, owner: object, bound: float) -> None:
        self.owner, self.bound = owner, bound
        self._socket = os.dup(self.pgconn.socket)
        self._closes = weakref.finalize(self, os.close, self._socket)
        _WATCHDOG.watch(self)

    def wait(self, gen: PQGen[RV], *args: Any, **kwargs: Any) -> RV:
        self.deadline = time.monotonic() + self.bound
        try:
            return super().wait(gen, *args, **kwargs)
        except psycopg.OperationalError as exc:
            if self.cut is not None:
                raise NoAnswer(self.cut) from exc
            raise
        finally:
            self.deadline = math.inf

    def close(self) -> None:
        try:
            super().close()
        finally:
            _WATCHDOG.release(self)

    def shut(self, why: str) -> None:
        """Cut the connection (the watchdog's lock held: the socket is still ours)."""
        self.cut = why
        with suppress(OSError):
            sock = socket.socket(fileno=self._socket)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.detach()


class _Watchdog:
    """One thread for the process, started on first use: it cuts every watched connection whose round
    trip outlasts its bound. It sleeps until the nearest deadline, or a bound from now when none waits:
    a round trip that starts meanwhile ends its bound later, so it is never missed (nor woken for)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._watched: weakref.WeakSet[_Connection] = weakref.WeakSet()  # one never closed is still collected
        self._thread: threading.Thread | None = None

    def watch(self, conn: _Connection) -> None:
        with self._cond:
            self._watched.add(conn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lineage-db-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def release(self, conn: _Connection) -> None:
        with self._cond:  # never while the thread may shut it down
            self._watched.discard(conn)
            if conn._closes is not None:
                conn._closes()

    def interrupt(self, owner: object) -> None:
        """Cut every connection of `owner` now: the round trip waiting, and the next one."""
        with self._cond:
            for conn in list(self._watched):
                if conn.owner is owner:
                    conn.shut("cut off: the lineage store is shutting down")

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                wake = math.inf
                for conn in list(self._watched):
                    deadline = conn.deadline
                    if deadline <= now:
                        if conn.cut is None:
                            conn.shut(f"no answer from the database in {conn.bound:g}s")
                    else:
                        wake = min(wake, deadline, now + conn.bound)
                self._cond.wait(None if wake == math.inf else wake - now)


_WATCHDOG = _Watchdog()


class PostgresStore:
    """One connection, used from one thread at a time (the aggregator's writer thread), reopened on the
    next call after a failure. `password`: from `lineage.password_file`, as a function that reads the file
    again for each new connection (a secret rotated in place is used on the next reconnect); else the
    URL's, else libpq's own `PGPASSWORD` / `~/.pgpass`. `key`: the HMAC key chain entries written from
    now on are signed with."""

    def __init__(
        self,
        url: str,
        *,
        readonly: bool = False,
        key: bytes | None = None,
        retired: tuple[bytes, ...] = (),
        password: str | Callable[[], str | None] | None = None,
        statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
        wait_for_server: bool = False,
        adopt_head: str | None = None,
        sidecar: str = "",
    ) -> None:
        """`sidecar`: the writer's `lineage.sidecar`, recorded with every edge it writes. `wait_for_server` (a writer with a journal in front): a server that cannot be reached now (no
        answer at all) does not fail the constructor; the schema is made by the first write that reaches
        it (`unreachable` says why until then). A server that answers with an error still raises.
        `statement_timeout_s`: the server's statement_timeout (unless the URL sets `options`) and the
        longest any round trip waits for an answer."""
        self.url = url
        self.sidecar = sidecar
        self._readonly = readonly
        self._key = key
        self._retired = retired  # the keys `key` replaced, oldest first: a purge's replay checks entries with them
        self._keys = (key, *retired) if key is not None else ()  # those an entry this writer signs on may have
        self._head_ok: str | None = None  # the newest entry last seen signed with one of them (or signed here)
        # how far this host's clock was behind the database's when the write transaction under way took the chain's
        # lock (0.0: not by more than CLOCK_BEHIND_S); what it writes is stamped that much later (`_stamped`)
        self._behind = 0.0
        # the chain's newest entry (its number and hash) as this writer last read or wrote it, once committed: the
        # head logged and exported as lineage_proxy_record_chain_entries (`EdgeAggregator`); None until then
        self.head: tuple[int, str] | None = None
        self._appended: tuple[int, str] | None = None  # the last entry `_append` wrote, committed or not
        self._adopt_head = adopt_head  # an unsigned newest entry to sign on top of, by hand (`verify --adopt-head`)
        self._interrupted = False
        params: dict[str, Any] = {"application_name": "lineage-proxy", "client_encoding": ENCODING}
        given = conninfo.conninfo_to_dict(url)
        if "connect_timeout" not in given:
            params["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT_S
        # the URL's own `?options=-c statement_timeout=...` wins, the bound too; a bound its options do not set (they
        # set a search_path) is the proxy's. A transaction left idle as long (its writer frozen, or cut off by a
        # partition, between two statements: the server sees a silent client) is ended, and with it the chain's lock
        # every sidecar's write waits for
        options = str(given.get("options") or "")
        statement_timeout_s = _statement_timeout(options) or statement_timeout_s
        bound = _milliseconds(statement_timeout_s)
        own = [f"-c {name}={bound}" for name, set_there in _BOUNDS.items() if not set_there.search(options)]
        if own:
            params["options"] = " ".join([options, *own]).strip()
        self._bound = statement_timeout_s
        self._lock_wait = reader_lock_wait_s(statement_timeout_s)  # a reader's (`_open`)
        self._params = params
        self._password = password
        self._conn: _Connection | None = None
        # the schema a writer resolved at its start, which every connection it opens from then on names alone on its
        # search_path (None: not resolved yet, or the URL's search_path names one schema alone, the operator's own)
        self._writes_in: str | None = None
        self.unreachable: psycopg.Error | None = None  # why the schema is not made yet
        if readonly:
            try:
                with self._transaction() as cur:
                    cur.execute("SELECT pg_catalog.to_regclass('edges'), pg_catalog.to_regclass('meta')")
                    edges, meta = cur.fetchone() or (None, None)
                    if edges is None:
                        raise FileNotFoundError(f"{redact(url)}: no lineage tables in this database")
                    # a meta table whose columns were dropped by hand: `verify --integrity` names them (NOT intact),
                    # where reading its version here made the store one that cannot be opened (exit 2)
                    self._check_version(cur, meta is not None and {"key", "value"} <= _columns(cur, "meta"))
            except psycopg.errors.InsufficientPrivilege:
                if not self._policed():  # no policy: the role may not read meta (exit 2, as before)
                    raise
                # a policy on meta: the version is not read, and `verify --integrity` names the policy (NOT intact)
            return
        try:
            self._prepare()
        except (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction) as exc:
            # read-only: a standby a failover has not promoted yet, or `default_transaction_read_only` for maintenance
            if not wait_for_server or (isinstance(exc, psycopg.OperationalError) and refused(exc)):
                raise
            self.unreachable = exc

    def _prepare(self, lock_wait_s: float | None = None) -> None:
        """The schema, made or checked, and the chain's first entry in a new store (`lock_wait_s`: as for
        `apply`)."""
        with self._transaction(lock_wait_s=lock_wait_s) as cur:
            schema = self._resolve(cur)
            try:
                if not self._made(cur):  # once: `CREATE ... IF NOT EXISTS` needs CREATE on the schema (an index, the
                    cur.execute(SCHEMA)  # table's ownership) even when all is there, which a writer is not given
            except psycopg.errors.WrongObjectType as exc:  # a view (or another kind) where a lineage table goes
                raise StartupError(f"lineage database {redact(self.url)}: a lineage table's name is taken by something "
                                   f"else: {one_line(exc)}; look into it") from None  # fmt: skip
            odd = self._oddities(cur)  # before anything is changed (a trigger or rule would act on it)
            if odd:
                raise StartupError(f"lineage database {redact(self.url)}: its tables have {odd}; only lineage-proxy "
                                   "writes them (they can change what is written, and what a purge signs): look into "
                                   "them, then drop them")  # fmt: skip
            self._may_write(cur)
            self._clock_against(cur)
            version = self._check_version(cur, True)
            self._rekey(cur)
            if version is not None and version < SCHEMA_VERSION:
                cur.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            cur.execute("SELECT 1 FROM chain LIMIT 1")
            if cur.fetchone() is None:  # no PostgreSQL store was ever written without its chain
                if self._held(cur):  # edges, a purge's anchor, or the origin a writer records with the first entry
                    log.error(TAMPERED_START, redact(self.url))  # never signed over: `verify` names it
                else:  # a new store: the chain starts here, with nothing (never a read of a table just checked empty)
                    self._append(cur, integrity.body(integrity.SNAPSHOT, []))
            cur.execute(
                "INSERT INTO meta (key, value) VALUES ('origin', %s) ON CONFLICT DO NOTHING", (uuid.uuid4().hex,)
            )
            cur.execute("SELECT hash FROM chain ORDER BY seq DESC LIMIT 1")
            last = cur.fetchone()
            if last is not None and self._key is not None and self._adopt_head == last[0]:
                text = integrity.body(integrity.EDGES, [])  # adopted by hand: a signed entry that adds nothing
                cur.execute("INSERT INTO chain (at, body, prev, hash) VALUES (%s, %s, %s, %s)",
                            (time.time() + self._behind, text, last[0], integrity.link(last[0], text, self._key)))  # fmt: skip
            else:
                try:
                    integrity.signed_head(last[0] if last else None, self._key, f"lineage database {redact(self.url)}",
                                          held=last is None and self._held(cur))  # fmt: skip
                    newest = self._signer_known(cur, last)
                except integrity.UnsignedHead as exc:
                    raise StartupError(str(exc)) from None
                if integrity.signed_before(newest, self._key, self._retired):  # the rotation: the newest entry
                    self._append(cur, integrity.body(integrity.EDGES, []))  # signed with the new key from now on
            if schema is not None:  # this session too, from the commit on (a rollback undoes it)
                cur.execute("SELECT pg_catalog.set_config('search_path', %s, false)", (_path(cur, schema),))
            cur.execute("SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1")
            newest = cur.fetchone()
        self.head = (int(newest[0]), str(newest[1])) if newest is not None else None  # committed
        self._writes_in = schema
        self.unreachable = None

    def _resolve(self, cur: psycopg.Cursor[Any]) -> str | None:
        """The schema this writer writes: the first on its search path (`current_schema()`), which its unqualified
        table names resolve to and SCHEMA makes the tables in. Refused (StartupError) when another schema on that
        path holds a lineage store (a `chain` table, or `edges` and `meta`) while this one would be written: a schema
        put before the store's, as one named as the writers' role is by the default `"$user", public`, was written
        in its stead (a new chain there, valid, while the store stopped growing and still verified intact). Refused
        too when this one holds no store and a schema off the path does (its `edges`, `chain` and `meta`): a new one
        would start beside it, the fleet's writers split between two stores (a URL that named the store's schema
        for its owner, not for this writer). A search_path the URL sets (`options`, or PGOPTIONS) is checked so too
        when it names several schemas or `"$user"` (a schema made later before the resolved one took the writes of a
        writer not pinned: a new store, or the edges in one schema and their chain entries in another). None when it
        names one schema alone: the operator's choice, honoured as given.
        Read from pg_catalog by name, as `_oddities` is."""
        cur.execute("""
            SELECT pg_catalog.current_schema()::pg_catalog.text, pg_catalog.current_setting('search_path'),
                (SELECT source FROM pg_catalog.pg_settings WHERE name OPERATOR(pg_catalog.=) 'search_path'),
                ARRAY(SELECT n.nspname::pg_catalog.text OPERATOR(pg_catalog.||) '.'
                             OPERATOR(pg_catalog.||) c.relname::pg_catalog.text
                      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n
                          ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                      WHERE c.relname OPERATOR(pg_catalog.=) ANY (ARRAY['edges', 'chain', 'meta']::pg_catalog.name[])
                        AND n.nspname OPERATOR(pg_catalog.=) ANY (pg_catalog.current_schemas(false))),
                ARRAY(SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_namespace n
                      WHERE NOT n.nspname OPERATOR(pg_catalog.=) ANY (pg_catalog.current_schemas(false))
                        AND (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c
                             WHERE c.relnamespace OPERATOR(pg_catalog.=) n.oid AND c.relkind OPERATOR(pg_catalog.=) 'r'
                               AND c.relname OPERATOR(pg_catalog.=) ANY (ARRAY['edges', 'chain', 'meta']::pg_catalog.name[])
                            ) OPERATOR(pg_catalog.=) 3
                      ORDER BY 1)
        """)  # fmt: skip
        found = cur.fetchone()
        if found is None or found[0] is None:  # no schema to write (CREATE says so)
            return None
        first, path, tables = str(found[0]), str(found[1]), [str(name) for name in found[3]]
        if found[2] == "client" and _one_schema(path):  # the URL's (or PGOPTIONS') one schema: the operator's choice
            return None
        held: dict[str, set[str]] = {}  # schema -> its lineage tables
        for name in tables:
            where, _, table = name.rpartition(".")
            held.setdefault(where, set()).add(table)
        stores = sorted(where for where, names in held.items() if "chain" in names or {"edges", "meta"} <= names)
        others = [where for where in stores if where != first]
        away = [str(name) for name in found[4]]  # stores off the search path (all three tables: never an app's one)
        if not others and away and first not in stores:
            shown = ", ".join(f"schema {escaped(where)}" for where in away)
            raise StartupError(
                f"lineage database {redact(self.url)}: not started: this writer would start a new store in schema "
                f"{escaped(first)}, the first on its search_path ({escaped(path)}), while {shown}, not on that path, "
                "holds one: the fleet's sidecars would write two stores, each intact. Name the store's schema alone on "
                f"the search path, in the URL's query: options=-csearch_path%3D{escaped(away[0])} (or name schema "
                f"{escaped(first)} so, to start a store of its own there)"
            )
        if not others:
            return first
        named = ", ".join(f"schema {escaped(where)}" for where in others)
        if first in held:
            what = (f"it holds lineage tables, and {named}, also on that path, holds a lineage store too: which one is "
                    "the store is not certain (writing the wrong one leaves the other to stop growing, still verifying "
                    "intact)")  # fmt: skip
        else:
            what = (f"a new store would start there, while the store, in {named}, would stop growing and still verify "
                    "intact")  # fmt: skip
        raise StartupError(
            f"lineage database {redact(self.url)}: not started: this writer's search_path ({escaped(path)}) puts schema "
            f"{escaped(first)} first (as the default puts a schema named as the writers' role, once someone makes it): "
            f"{what}. Name the store's schema alone on the search path, in the URL's query: "
            f"options=-csearch_path%3D{escaped(others[0])} (and drop schema {escaped(first)}'s lineage tables, or the "
            "schema, if nobody meant them)"
        )

    def _clock_against(self, cur: psycopg.Cursor[Any]) -> None:
        """A WARNING when this host's clock is off the database's by more than CLOCK_SKEW_S. One behind has what it
        writes stamped by the database's clock instead (`_behind`: every purge cuts by that clock, so a clock behind by
        more than `retention_days` had what it recorded purged as expired by the next purge of any sidecar, signed as a
        purge); one ahead stamps its own time, so what it records is kept that much past the retention."""
        before = time.time()
        cur.execute("SELECT extract(epoch FROM pg_catalog.clock_timestamp())::pg_catalog.float8")
        after = time.time()
        found = cur.fetchone()
        if found is None or found[0] is None:
            return
        off = (before + after) / 2 - float(found[0])
        if abs(off) <= CLOCK_SKEW_S:
            return
        log.warning("lineage database %s: this host's clock is %.0f s %s the database's: %s; set its clock right "
                    "(NTP)", redact(self.url), abs(off), "behind" if off < 0 else "ahead of",
                    "the edges this sidecar writes are stamped by the database's clock instead (first and last seen), "
                    "which every sidecar's retention purge cuts by" if off < 0 else
                    "the edges this sidecar writes carry its time (first and last seen), so they are kept that much "
                    "longer than retention_days")  # fmt: skip

    def _may_write(self, cur: psycopg.Cursor[Any]) -> None:
        """Refused (StartupError) when this role lacks a privilege its writes or its purges take (`_WRITES`), before
        anything is written: one without the chain's sequence started ready and journaled every write for as long as
        it ran (as an outage that never ends); one that may not delete never purged. Column privileges count: a
        privilege granted on some of a table's columns must cover every column the writes name (`_WRITES`)."""
        cur.execute(_MISSING, {"tables": [t for t, _, _ in _WRITES], "privileges": [p for _, p, _ in _WRITES],
                               "columns": [c for _, _, c in _WRITES]})  # fmt: skip
        order: dict[tuple[str, str], int] = {}
        for t, p, _ in _WRITES:
            order.setdefault((p, t), len(order))  # as _WRITES lists them, the sequence last
        found = sorted(cur.fetchall(), key=lambda row: order.get((row[0], row[1]), len(order)))
        missing = [f"{escaped(str(what))} on {escaped(str(where))}"
                   + (f" (its columns {escaped(str(columns))})" if columns else "") for what, where, columns in found]  # fmt: skip
        if not missing:
            return
        cur.execute("SELECT pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)")
        role = str((cur.fetchone() or ("",))[0])
        raise StartupError(f"lineage database {redact(self.url)}: role {escaped(role)} may not write the lineage "
                           f"tables as a writer must: it lacks {', '.join(missing)}; grant them (as the tables' owner): "
                           f"GRANT SELECT, INSERT, UPDATE, DELETE ON edges, chain, meta, applied TO {escaped(role)}; "
                           f"GRANT USAGE ON SEQUENCE chain_seq_seq TO {escaped(role)}")  # fmt: skip

    @staticmethod
    def _made(cur: psycopg.Cursor[Any]) -> bool:
        """Whether every lineage table and index is in the schema SCHEMA makes them in (the first on the search
        path), so a writer granted only `SELECT, INSERT, UPDATE, DELETE` (and the chain's sequence) can start."""
        cur.execute("SELECT count(*) FROM pg_class WHERE relnamespace = to_regnamespace(current_schema()) "
                    "AND relname = ANY(%s)", (list(_MADE),))  # fmt: skip
        found = cur.fetchone()
        return found is not None and found[0] == len(_MADE)

    # -- connection

    def _conninfo(self) -> str:
        """The connection string, with the password as the password file holds it now."""
        password = self._password() if callable(self._password) else self._password
        extra = {"password": password} if password is not None else {}
        return conninfo.make_conninfo(self.url, **self._params, **extra)

    def _open(self) -> _Connection:
        """A new connection, its round trips watched; refused (NotUtf8) when the database is not UTF8."""
        if self._interrupted:
            raise psycopg.OperationalError("the lineage store is shutting down")
        conn = _Connection.connect(self._conninfo(), autocommit=True)
        conn.watched(self, self._bound)
        encoding = conn.info.parameter_status("server_encoding")  # reported at the start: no round trip
        if encoding != ENCODING:
            conn.close()
            raise NotUtf8(f"lineage database {redact(self.url)}: its encoding is {encoding}, not UTF8, so names "
                          "and reasons in other scripts cannot be stored (SQL_ASCII reads them back as bytes); "
                          "create the database with `createdb -E UTF8 -T template0 NAME` (or CREATE DATABASE "
                          "... ENCODING 'UTF8' TEMPLATE template0) and point lineage.store at it")  # fmt: skip
        # times read back as written, whatever the database's (or the URL's) `extra_float_digits`: 0 or less rounds
        # them to 15 digits, rows the chain (which holds them whole) names as edited, so no purge would run again
        # a writer's schema, once resolved, alone on the search path: a schema put before it later (one named as the
        # writers' role) never takes its writes, on this connection or the next
        # and row security off (`row_security`): a read a policy would filter fails instead, as a write it would
        # refuse does (a policy already on hid a denial from the readers that check for none: `edges`, the gate
        # without --integrity)
        try:
            if self._readonly:  # pg_catalog's functions and operators before any on the path (`_READER`); the lock
                # wait a reader's lock is granted in, or the database says it was not (`reader_lock_wait_s`)
                conn.execute(f"{_SESSION}, {_READER}, pg_catalog.set_config('lock_timeout', %s, false)",
                             (f"{_milliseconds(self._lock_wait)}ms",))  # fmt: skip
            elif self._writes_in is None:
                conn.execute(_SESSION)
            else:
                conn.execute(f"{_SESSION}, pg_catalog.set_config('search_path', %s, false)",
                             (_path(conn, self._writes_in),))  # fmt: skip
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect(self) -> _Connection:
        if self._interrupted:  # a shutdown cut the database off: what is left goes to the journal at once
            raise psycopg.OperationalError("the lineage store is shutting down")
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop()
            conn = self._open()
            if self._readonly:
                conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            else:  # `BEGIN ISOLATION LEVEL READ COMMITTED`: whatever the database's default (a DBA's repeatable read
                # took a write's snapshot before the chain's lock was granted, so two writers chained on one entry)
                conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
            self._conn = conn
        return self._conn

    def ping(self, lock_wait_s: float | None = None) -> None:
        """Whether a write could go ahead now, on a connection of its own (a journal's check during an
        outage, from a thread of its own): raises as a write would. With `lock_wait_s`, the database must
        also grant, each within that wait, the locks a write takes: the chain's advisory lock, and once
        the schema is made those of the tables it changes. Another session holding one (a `LOCK TABLE`,
        a `VACUUM FULL` or `ALTER TABLE` on them, a sidecar stuck inside its write) fails the check with
        LockNotAvailable, where a write would wait for its statement timeout. The locks go with the
        transaction, at once. The advisory lock held past the wait is ChainBusy (another writer in its write)."""
        with self._open() as conn:
            if lock_wait_s is None:
                conn.execute("SELECT 1")
                return
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(f"SET LOCAL lock_timeout = {_milliseconds(lock_wait_s)}")
                _lock_chain(cur)
                if self.unreachable is None:  # the tables are there (made by this process's first write)
                    cur.execute(f"LOCK TABLE {WRITTEN_TABLES} IN ROW EXCLUSIVE MODE")

    def interrupt(self) -> None:
        """Cut the round trip waiting now, and refuse every later one (a shutdown that cannot wait for a
        database that does not answer): the writes fail at once, so the journal takes them."""
        self._interrupted = True
        _WATCHDOG.interrupt(self)

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass  # the server is gone already: nothing to close politely
            self._conn = None

    @contextmanager
    def _transaction(
        self, *, lock: bool = True, lock_wait_s: float | None = None, long: bool = False, reads: tuple[str, ...] = ()
    ) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction; a writer's holds the chain lock (`lock=False`: a writer's read, in one snapshot
        of the database; `lock_wait_s`: no lock it takes is waited for longer, LockNotAvailable then).
        `long`: one whose own work between statements grows with the store (a purge compares and signs every
        edge kept, a copy every edge copied: tens of seconds at a million edges), which the idle-in-transaction
        bound (the statement timeout, `_conninfo`) would end every time; it has none.
        Any failure drops the connection, so the next call starts on a fresh one (the server may have
        restarted or failed over)."""
        try:
            conn = self._connect()
            with conn.transaction(), conn.cursor() as cur:
                if long:
                    cur.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
                if self._readonly:  # the tables it `reads` locked first (`_lock_read`)
                    _lock_read(conn, cur, reads)
                else:
                    if lock_wait_s is not None:
                        cur.execute(f"SET LOCAL lock_timeout = {_milliseconds(lock_wait_s)}")
                    if lock:
                        behind = _lock_chain(cur) - time.time()  # at least this far: the clock was read before now
                        self._behind = behind if behind > CLOCK_BEHIND_S else 0.0  # NaN (none read) is not
                    else:
                        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield cur
        except psycopg.Error as exc:
            if not isinstance(exc, psycopg.DataError):  # not only a lost one: a session begun read-only stays so
                self._drop()
            if self._readonly and isinstance(exc, psycopg.errors.LockNotAvailable):
                raise LockWaited(self._lock_waited()) from exc
            raise

    def _lock_waited(self) -> str:
        """What a reader says when a lock it waited for was not granted: the wait, and the sessions holding (or queued
        for) the lock that keeps readers out of a lineage table, when a connection of its own can still find them."""
        try:
            with self._open() as conn:
                found = conn.execute(_LOCK_HOLDERS).fetchall()
        except psycopg.Error:
            found = []
        holders = "; ".join(_holder(str(table), pid, granted, gid) for table, pid, granted, gid in found)
        return (f"the database did not grant this read its lock on the lineage tables within {self._lock_wait:g}s: "
                f"another session holds a lock that keeps readers out (ACCESS EXCLUSIVE{': ' + holders if holders else ''}"
                "), as a LOCK TABLE, VACUUM FULL, ALTER TABLE, TRUNCATE or CLUSTER does until its transaction ends. The "
                "database answered (it is not away); nothing was read: read again once the lock is released")  # fmt: skip

    def _check_version(self, cur: psycopg.Cursor[Any], has_meta: bool) -> int | None:
        """The store's schema version (None: a new store, whose version a writer records now)."""
        version = None
        if has_meta:
            cur.execute("SELECT value FROM meta WHERE key = 'schema_version'")
            found = cur.fetchone()
            version = int(found[0]) if found else None
        if version is None and not self._readonly:
            cur.execute("INSERT INTO meta (key, value) VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),))
        elif version is not None and version > SCHEMA_VERSION:
            raise SchemaTooNew(f"{redact(self.url)}: schema version {version} was written by a newer lineage-proxy "
                               f"(this one knows {SCHEMA_VERSION})")  # fmt: skip
        return version

    def _rekey(self, cur: psycopg.Cursor[Any]) -> None:
        """A store made before the sidecar (schema version 2), or the rule (1), keyed an edge keyed by them now, in
        the opening transaction (under the chain lock, so the other writers wait; a writer of the releases before
        then refuses the store: SchemaTooNew). Every row stays as it was, "no rule" as '' for NULL, recorded by
        sidecar '' (before sidecars were named); the chain is left as written: its entries say how they are keyed
        (by flow alone, by flow and rule), and `verify` replays them so."""
        cur.execute("SELECT c.conname, array_agg(a.attname::text) FROM pg_constraint c JOIN pg_attribute a "
                    "ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) "
                    "WHERE c.conrelid = to_regclass('edges') AND c.contype = 'p' GROUP BY c.conname")  # fmt: skip
        found = cur.fetchone()
        if found is not None and "sidecar" in found[1]:
            return
        by_rule = found is not None and "rule" in found[1]
        drop = sql.SQL("DROP CONSTRAINT {}, ").format(sql.Identifier(found[0])) if found else sql.SQL("")
        # the table is changed once, however long that takes: a store of a million edges outlasts the statement
        # timeout, and each start (or write) tried again, holding the table that long, and never re-keyed it. The
        # wait for the table's lock stays bounded (a sidecar still writing, a `LOCK TABLE`)
        cur.execute("SELECT current_setting('statement_timeout'), current_setting('lock_timeout')")
        timeouts = cur.fetchone() or ("0", "0")
        lock_wait = timeouts[1] if timeouts[1] != "0" else f"{_milliseconds(self._bound)}ms"
        cur.execute("SELECT set_config('statement_timeout', '0', true), set_config('lock_timeout', %s, true)",
                    (lock_wait,))  # fmt: skip
        conn = cur.connection
        watched = conn if isinstance(conn, _Connection) else None
        if watched is not None:
            watched.bound = math.inf
        try:
            if not by_rule:
                cur.execute("UPDATE edges SET rule = '' WHERE rule IS NULL")
            # a column with a constant default is added without rewriting the table; the new key's index is built
            cur.execute(sql.SQL("ALTER TABLE edges ALTER COLUMN rule SET DEFAULT '', ALTER COLUMN rule SET NOT NULL, "
                                "ADD COLUMN IF NOT EXISTS sidecar text NOT NULL DEFAULT '', "
                                "{}ADD PRIMARY KEY ({})").format(drop, sql.SQL(_KEY)))  # fmt: skip
        except psycopg.errors.InsufficientPrivilege as exc:
            raise StartupError(f"lineage database {redact(self.url)}: its edges are keyed by "
                               f"{'sidecar' if by_rule else 'rule and sidecar'} from this release on, which changes "
                               f"the table once, and this role may not ({one_line(exc)}): start one proxy once as the "
                               "table's owner") from None  # fmt: skip
        finally:
            if watched is not None:
                watched.bound = self._bound
        cur.execute("SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)",
                    (timeouts[0], timeouts[1]))  # fmt: skip
        log.warning("lineage database %s: its edges are keyed by %s from now on (%s); the edges it held are kept as "
                    "they were, recorded by sidecar '' (before sidecars were named)", redact(self.url),
                    "the sidecar that recorded them" if by_rule else "their rule and the sidecar that recorded them",
                    "each sidecar's calls of a flow are an edge of their own" if by_rule else "each kind of denial of "
                    "a flow, and each sidecar's calls of it, are an edge of their own")  # fmt: skip

    # -- EdgeStore

    def upsert(self, rows: Iterable[EdgeWrite]) -> None:
        """Add the rows' counts and chain them, in one transaction."""
        self.apply(rows, None)

    def apply(
        self, rows: Iterable[EdgeWrite], token: str | None, *, lock_wait_s: float | None = None,
        sidecar: str | None = None,
    ) -> bool:  # fmt: skip
        """`upsert`, and with `token` only when no write with that token was applied before (it is
        recorded in the same transaction); False when one was, and nothing is written. `lock_wait_s`: a
        lock held by another session is waited for that long at most (LockNotAvailable then), not for
        the statement timeout (a journal's replay, or its first write after an outage). `sidecar`: the one that
        recorded `rows` (a journal's replay: the sidecar that journaled them); None, this store's."""
        params = [flat(row, self.sidecar if sidecar is None else sidecar) for row in rows]
        if not params:
            return True
        if self.unreachable is not None:
            self._prepare(lock_wait_s)  # the first write that reaches a server that was away at the start
        conn = self._conn
        idle = conn is not None and not conn.closed and not conn.broken  # made by an earlier write, idle since
        try:
            return self._apply(params, token, lock_wait_s)
        except psycopg.OperationalError as exc:
            # the server closed it meanwhile (a restart since, its idle_session_timeout, `pg_terminate_backend`, a
            # pooler or a firewall): tried once more on a new connection, which tells a database that answers from
            # one that is away. Only with a token: a commit whose answer was lost counts once
            if token is None or not idle or blocked(exc) or self._interrupted:
                raise
            log.debug("lineage database %s: its connection was closed (%s); the write is tried on a new one",
                      redact(self.url), one_line(exc))  # fmt: skip
            return self._apply(params, token, lock_wait_s)

    def _apply(self, params: list[tuple[Any, ...]], token: str | None, lock_wait_s: float | None) -> bool:
        with self._transaction(lock_wait_s=lock_wait_s) as cur:
            if token is not None:
                cur.execute("INSERT INTO applied (token, at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                            (token, time.time() + self._behind))  # fmt: skip
                if cur.rowcount == 0:
                    return False
            if self._behind:
                params = _stamped(params, self._behind)
            cur.executemany(UPSERT, params)
            self._append(cur, integrity.body(integrity.EDGES, params, token))
        self.head = self._appended  # committed
        return True

    def prepare_purge(self, retention_days: float, now: float | None = None) -> Replay | None:
        """The long part of a purge, on a connection of its own (so off the writer thread when the caller
        runs it elsewhere): the chain replayed in one read snapshot. None when nothing has expired; then no
        purge follows, so the write tokens past retention, which a purge forgets, are forgotten here
        (`applied` gains a row a write, and a fleet whose flows all recur never purges)."""
        with self._open() as conn:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cutoff = self._cutoff(cur, retention_days, now)
                cur.execute("SELECT 1 FROM edges WHERE last_seen < %s LIMIT 1", (cutoff,))
                if cur.fetchone() is not None:
                    return self._replay(cur, None)
            conn.execute(FORGET_TOKENS, (cutoff,))
        return None

    def purge(self, retention_days: float, now: float | None = None, replay: Replay | None = None) -> int:
        """Delete edges (and write tokens, but copies') not seen for `retention_days`; the chain is cut
        down to a snapshot of what remains, its `prev` kept as the anchor. Only a record that verifies is
        cut down (a snapshot signs what the table holds); the chain is replayed in one read snapshot
        first, and under the chain lock only what was appended since."""
        if self.unreachable is not None:
            self._prepare()
        if replay is None:
            with self._transaction(lock=False) as cur:
                cutoff = self._cutoff(cur, retention_days, now)
                cur.execute("SELECT 1 FROM edges WHERE last_seen < %s LIMIT 1", (cutoff,))
                replay = None if cur.fetchone() is None else self._replay(cur, None)  # nothing to purge: no replay
        try:
            with self._transaction(long=True) as cur:
                cutoff = self._cutoff(cur, retention_days, now)
                cur.execute(FORGET_TOKENS, (cutoff,))
                if replay is None:
                    return 0
                cur.execute("SELECT min(seq) FROM chain")
                first = (cur.fetchone() or (None,))[0]
                replay = self._replay(cur, replay if first == replay.first_seq else None)  # cut meanwhile: again
                report = self._finish(cur, replay)[0]
                if not report.intact:
                    log.error(UNVERIFIED_PURGE, redact(self.url), report.problem)
                    return 0
                odd = self._oddities(cur)
                if odd:
                    log.error(UNVERIFIED_PURGE, redact(self.url), f"the lineage tables have {odd}")
                    return 0
                keep = replay.kept(cutoff)
                cur.execute("DELETE FROM edges WHERE last_seen < %s", (cutoff,))
                deleted = cur.rowcount
                cur.execute(f"SELECT {_ROW} FROM edges")
                if sorted(cur.fetchall()) != keep:  # the delete did more than delete: nothing signed, nothing purged
                    raise _Refused("the table changed under the purge's delete")
                if deleted:
                    seq, prev = self._append(cur, integrity.body(integrity.SNAPSHOT, keep))
                    cur.execute("DELETE FROM chain WHERE seq < %s", (seq,))
                    cur.execute("INSERT INTO meta (key, value) VALUES ('anchor', %s) "
                                "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (prev,))  # fmt: skip
        except _Refused as exc:  # rolled back
            log.error(UNVERIFIED_PURGE, redact(self.url), exc)
            return 0
        if deleted:
            self.head = self._appended  # committed
        return deleted

    @staticmethod
    def _cutoff(cur: psycopg.Cursor[Any], retention_days: float, now: float | None) -> float:
        """What was last seen before this has expired: `retention_days` before `now`, else before the database's
        clock, the one every sidecar's purge reads (each purges the whole store: one whose own clock ran two days
        ahead deleted what the fleet had seen within two days of a two-day retention, and signed it), or before
        the sidecar's own when that is earlier: a database clock moved ahead (pg_catalog's is read, never a
        `clock_timestamp()` someone put first on the search path) purges no more than the sidecar's would."""
        if now is None:
            own = time.time()
            cur.execute("SELECT extract(epoch FROM pg_catalog.clock_timestamp())::float8")
            found = cur.fetchone()
            now = min(float(found[0]), own) if found is not None else own
        return now - retention_days * 86400

    def absorb(
        self,
        rows: Sequence[EdgeRow],
        origin: str,
        history: Collection[str] = (),
        head: str = "",
        copies: Collection[str] = (),
    ) -> str | None:
        """Add another store's edges (`edges --copy-to`): their counts add to what is here, chained as one
        write (an `edges` entry, as the writers' own). Only onto a record that verifies: the entry signs
        the table it adds to. A history is copied once: the copy records the source's `origin` (or, for a
        store without one, its chain head, in `history` with the source's other entries' hashes), and a
        source whose origin or history was copied before is refused, however it has grown or been purged
        since; so is this store itself (`head`: the source's), and a signed copy onto an unsigned chain,
        which would leave the unkeyed writers' entries after it unverifiable. `copies`: the copies the source
        holds (its own `copy:` tokens): a source holding a copy of this store, or of one copied here before, is
        refused (those calls would count twice), and they are recorded here with the copy, so a copy of this
        store is known as one of theirs too. Returns what was copied before, or None when copied now."""
        # each edge as the sidecar that recorded it (the source's), '' for one recorded before sidecars were named
        params = [flat((row.key, row.first_seen, row.last_seen, row.count, row.reason), row.sidecar) for row in rows]
        if not params:
            return None  # nothing to add, nothing to remember
        # a new store's first entry (an empty snapshot) is the same in every store with the same key, or none,
        # of the same release: never taken for a history
        empty = {
            integrity.link(integrity.GENESIS, integrity.body(integrity.SNAPSHOT, [], version=v), k)
            for k in (None, self._key)
            for v in (integrity.BY_FLOW, integrity.BY_RULE, integrity.VERSION)
        }
        tokens = [f"copy:{origin}", *(f"copy:{h}" for h in history if h not in empty)]
        with self._transaction(long=True) as cur:
            cur.execute("SELECT token FROM applied WHERE token = ANY(%s) LIMIT 1", (tokens,))
            found = cur.fetchone()
            if found is not None:
                return str(found[0]).removeprefix("copy:")
            cur.execute("SELECT 1 FROM meta WHERE key = 'origin' AND %s = 'origin:' || value", (origin,))
            if cur.fetchone() is not None:
                raise RuntimeError("it is the store being copied: its calls would count twice")
            replay = self._replay(cur, None, hashes=True)
            report = self._finish(cur, replay, strict=False)[0]
            if not report.intact:
                raise RuntimeError(f"its own record does not verify, so nothing was added to it: {report.problem}")
            if params and head in report.hashes:  # a store without an origin (an earlier release's), into itself
                raise RuntimeError("it is the store being copied: its calls would count twice")
            cur.execute("SELECT 'copy:origin:' || value FROM meta WHERE key = 'origin'")
            own = {str(found[0]) for found in cur.fetchall()} | {f"copy:{h}" for h in report.hashes}
            cur.execute("SELECT token FROM applied WHERE token = ANY(%s) LIMIT 1", (list(copies),))
            held = cur.fetchone()
            if held is not None or not own.isdisjoint(copies):
                named = "this store" if held is None else str(held[0]).removeprefix("copy:")
                raise RuntimeError(f"the store being copied holds a copy of {named}, whose calls are here already: "
                                   "they would count twice")  # fmt: skip
            if replay.entries and self._key is not None and not replay.head.startswith("hmac-"):
                raise RuntimeError("its chain is not signed: a signed entry would leave its unkeyed writers' entries "
                                   "after it unverifiable (copy without --key-file)")  # fmt: skip
            now = time.time() + self._behind
            cur.execute("INSERT INTO applied (token, at) VALUES (%s, %s)", (tokens[0], now))
            cur.executemany("INSERT INTO applied (token, at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                            [(token, now) for token in copies])  # fmt: skip
            cur.executemany(UPSERT, params)
            self._append(cur, integrity.body(integrity.EDGES, params))
        return None

    def _replay(self, cur: psycopg.Cursor[Any], replay: Replay | None, *, hashes: bool = False) -> Replay:
        """`replay` fed the entries after its position, `integrity.BATCH` at a time; a new one from the
        anchor, checking with the writer's key, when None (`hashes`: keeping every entry's hash)."""
        if replay is None:
            cur.execute("SELECT value FROM meta WHERE key = 'anchor'")
            anchor = cur.fetchone()
            replay = Replay(anchor[0] if anchor else integrity.GENESIS, self._key, hashes=hashes, retired=self._retired)
        while True:
            cur.execute("SELECT seq, at, body, prev, hash FROM chain WHERE seq > %s ORDER BY seq LIMIT %s",
                        (replay.seq, integrity.BATCH))  # fmt: skip
            batch = [integrity.Entry(*row) for row in cur.fetchall()]
            if not replay.feed(batch) or len(batch) < integrity.BATCH:
                return replay

    @staticmethod
    def _finish(
        cur: psycopg.Cursor[Any], replay: Replay, *, strict: bool = True, ordered: bool = False
    ) -> tuple[Report, list[Any]]:
        """The verdict on the edges, and the rows it compared them with, read once (`ordered`: as a reader lists
        them, `_ROWS`): a reader of the verified record (`for_copy`) takes these rows, never a second read, which
        row security turned on by the owner after the verdict's check for it (`_oddities`), with a policy that
        tells the two reads apart (`current_query()`), showed without a denial."""
        cur.execute((_ROWS if ordered else _EDGES).format(sidecar=_sidecar(cur)))
        rows = cur.fetchall()
        return replay.finish(rows, strict=strict), rows

    @staticmethod
    def _held(cur: psycopg.Cursor[Any]) -> bool:
        """Whether the store holds edges, a purge's anchor, or the origin a writer records in the transaction
        that writes the chain's first entry (so an empty chain was emptied, never started again)."""
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM meta WHERE key IN ('anchor', 'origin')) OR EXISTS (SELECT 1 FROM edges)"
        )
        found = cur.fetchone()
        return bool(found and found[0])

    def _append(self, cur: psycopg.Cursor[Any], text: str) -> tuple[int, str]:
        """One chain entry, inside the caller's transaction, which holds the chain lock; never on top of an
        unsigned entry when the writer has a key (`integrity.signed_head`)."""
        cur.execute("SELECT hash FROM chain ORDER BY seq DESC LIMIT 1")
        last = cur.fetchone()
        integrity.signed_head(last[0] if last else None, self._key, f"lineage database {redact(self.url)}",
                              held=last is None and self._held(cur))  # fmt: skip
        self._signer_known(cur, last)
        if last is None:
            cur.execute("SELECT value FROM meta WHERE key = 'anchor'")
            anchor = cur.fetchone()
            prev = anchor[0] if anchor else integrity.GENESIS
        else:
            prev = last[0]
        signed = integrity.link(prev, text, self._key)
        cur.execute("INSERT INTO chain (at, body, prev, hash) VALUES (%s, %s, %s, %s) RETURNING seq",
                    (time.time() + self._behind, text, prev, signed))  # fmt: skip
        found = cur.fetchone()
        self._head_ok = signed  # rolled back with the transaction, if it is: then the next append reads it again
        seq = int(found[0]) if found else 0
        self._appended = (seq, signed)  # the head once the caller's transaction commits
        return seq, prev

    def _signer_known(self, cur: psycopg.Cursor[Any], last: Any) -> Any:
        """`integrity.known_signer` for the newest entry (`last`: its hash row), read whole only when it is
        not the one this writer last saw signed with one of its keys; the row read (prev, body, hash), if it was."""
        if last is None or not self._keys or last[0] == self._head_ok:
            return None
        cur.execute("SELECT prev, body, hash FROM chain ORDER BY seq DESC LIMIT 1")
        newest = cur.fetchone()
        integrity.known_signer(newest, self._keys, f"lineage database {redact(self.url)}")
        self._head_ok = last[0]
        return newest

    def integrity(
        self, key: bytes | None = None, *, strict: bool = True, retired: tuple[bytes, ...] = ()
    ) -> integrity.Report:
        """Walk and replay the chain against the edge table, all read in one snapshot of the database
        (repeatable read), so writers that go on meanwhile cannot make it disagree with itself. `retired`:
        the keys `key` replaced, oldest first."""
        with self._transaction(lock=False, reads=_VERIFY_LOCKS) as cur:
            return self._verify(cur, key, strict=strict, retired=retired)[0]

    def _policed(self) -> str:
        """The oddities `_oddities` finds now, in a transaction of its own ('' when none): after a read that checks
        for none failed for lack of a privilege, whether a row security policy made it fail (`row_security` is off: a
        read it would filter fails). A read that checks (`_verify`) names one before it reads a row, and none can be
        turned on while it reads (`_lock_read`)."""
        with self._transaction(lock=False) as cur:
            return self._oddities(cur)

    @staticmethod
    def _oddities(cur: psycopg.Cursor[Any]) -> str:
        """Triggers, rules or row security on the lineage tables ('' when none): only lineage-proxy writes
        them, and any of these can change what a write does, what a purge's delete leaves, or what a read
        shows. Every catalog, function, type and operator is pg_catalog's by name: a `to_regclass` (or a
        `pg_trigger`, an `=`) put before pg_catalog on the search path could hide a trigger from this check."""
        cur.execute("""
            SELECT x.rel::pg_catalog.regclass::pg_catalog.text, x.what FROM (
                SELECT tgrelid AS rel, 'trigger ' OPERATOR(pg_catalog.||) tgname::pg_catalog.text AS what
                    FROM pg_catalog.pg_trigger WHERE NOT tgisinternal
                UNION ALL SELECT ev_class, 'rule ' OPERATOR(pg_catalog.||) rulename::pg_catalog.text
                    FROM pg_catalog.pg_rewrite
                UNION ALL SELECT oid, 'row security' FROM pg_catalog.pg_class WHERE relrowsecurity OR relforcerowsecurity
                UNION ALL SELECT oid, 'not a plain table (a view, or another kind)' FROM pg_catalog.pg_class
                    WHERE relkind OPERATOR(pg_catalog.<>) 'r'
                UNION ALL SELECT inhparent, 'inherited by ' OPERATOR(pg_catalog.||) inhrelid::pg_catalog.regclass::pg_catalog.text
                    FROM pg_catalog.pg_inherits
            ) x
            WHERE x.rel OPERATOR(pg_catalog.=) ANY (ARRAY[pg_catalog.to_regclass('edges'), pg_catalog.to_regclass('chain'),
                pg_catalog.to_regclass('meta'), pg_catalog.to_regclass('applied')]::pg_catalog.oid[])
        """)
        return ", ".join(escaped(f"{row[0]}: {row[1]}") for row in cur.fetchall())

    def _verify(
        self,
        cur: psycopg.Cursor[Any],
        key: bytes | None,
        *,
        strict: bool = True,
        retired: tuple[bytes, ...] = (),
        ordered: bool = False,
    ) -> tuple[Report, list[Any]]:
        """The chain's verdict and the edge rows it compared (none when it did not get as far: `_finish`)."""
        schema, unclear = self._schema(cur)
        if unclear is not None:
            return Report(0, "", False, unclear, schema=schema), []
        odd = self._oddities(cur)
        if odd:
            return Report(0, "", False, f"the store has {odd}: a lineage store has none (they can change what is "
                          "written or read)", schema=schema), []  # fmt: skip
        cur.execute("SELECT pg_catalog.to_regclass('chain') IS NULL, pg_catalog.to_regclass('meta') IS NULL")
        missing = cur.fetchone()
        if missing and (missing[0] or missing[1]):  # dropped: no PostgreSQL store was written without them
            table = "chain" if missing[0] else "meta"
            return Report(0, "", False, f"this store has no {table} table (it was dropped)", schema=schema), []
        dropped = dropped_column(lambda table: _columns(cur, table), _VERIFIED_COLUMNS)
        if dropped is not None:  # read, "column ... does not exist": a usage error (exit 2), not the verdict
            return Report(0, "", False, dropped, schema=schema), []
        cur.execute("SELECT value FROM meta WHERE key = 'anchor'")
        anchor = cur.fetchone()
        replay = Replay(anchor[0] if anchor else integrity.GENESIS, key, hashes=True, retired=retired)  # the caller's
        report, rows = self._finish(cur, self._replay(cur, replay), strict=strict, ordered=ordered)
        return dataclasses.replace(report, schema=schema, warning=self._writers_elsewhere(cur, schema)), rows

    @staticmethod
    def _writers_elsewhere(cur: psycopg.Cursor[Any], schema: str | None) -> str | None:
        """The roles that may write the store's chain whose search path puts another schema first: the first schema
        on the path that applies to the role (its own setting for this database, its own, the database's, else the
        default `"$user", public`) that exists and it may use, as its connection's `current_schema()` is, is not the
        store's (a schema named as the role, say, which anyone who can create schemas can make): a writer of that
        role whose URL does not name the store's schema refuses to start (one of an earlier release starts a new
        store there, and the store stops growing). None when there is none. pg_catalog's, by name."""
        if schema is None:
            return None
        cur.execute("""
            SELECT r.rolname::pg_catalog.text,
                (SELECT s.setconfig FROM pg_catalog.pg_db_role_setting s
                 WHERE s.setrole OPERATOR(pg_catalog.=) r.oid AND s.setdatabase OPERATOR(pg_catalog.=) d.oid),
                (SELECT s.setconfig FROM pg_catalog.pg_db_role_setting s
                 WHERE s.setrole OPERATOR(pg_catalog.=) r.oid AND s.setdatabase OPERATOR(pg_catalog.=) 0),
                (SELECT s.setconfig FROM pg_catalog.pg_db_role_setting s
                 WHERE s.setrole OPERATOR(pg_catalog.=) 0 AND s.setdatabase OPERATOR(pg_catalog.=) d.oid),
                ARRAY(SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_namespace n
                      WHERE pg_catalog.has_schema_privilege(r.oid, n.oid, 'USAGE'))
            FROM pg_catalog.pg_roles r, pg_catalog.pg_database d
            WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database() AND r.rolcanlogin
              AND pg_catalog.has_table_privilege(r.oid, (pg_catalog.quote_ident(%(schema)s::pg_catalog.text)
                  OPERATOR(pg_catalog.||) '.chain')::pg_catalog.regclass, 'INSERT')
            ORDER BY 1
        """, {"schema": schema})  # fmt: skip
        roles: list[str] = []
        for role, *settings, usable in cur.fetchall():
            path = next((found for found in map(_search_path, settings) if found is not None), _DEFAULT_PATH)
            used = set(usable or ())
            first = next((name for name in (role if name == "$user" else name for name in path) if name in used), None)
            if first is not None and first != schema:
                roles.append(str(role))

        if not roles:
            return None
        named = ("roles " if len(roles) > 1 else "role ") + ", ".join(escaped(role) for role in roles)
        return (f"{named} may write this store, and a schema named as the role is first on its default search "
                f'path ("$user", public), before the store\'s schema {escaped(schema)}: a writer of that role refuses '
                "to start unless its URL names the store's schema (options=-csearch_path%3D"
                f"{escaped(schema)}); one of an earlier release starts a new store there instead, and this one stops "
                "growing. Drop that schema if nobody meant it")  # fmt: skip

    @staticmethod
    def _schema(cur: psycopg.Cursor[Any]) -> tuple[str | None, str | None]:
        """The schema whose lineage tables this connection reads (its search_path decides, as for a writer: the
        first schema on it that holds each), and why that is not certain, if it is not: the tables it reads
        are in more than one schema (`applied` too: an empty one found first hid the copies a store holds from
        `edges --copy-to`, which copied a store back into one it held a copy of), or another schema on the
        search path holds an edges and a chain table too (a copy of the store an auditor's search_path finds
        first, say a schema named as the role, `"$user"`, ahead of `public` by default, would be verified in
        the store's stead, intact and stale). Read from pg_catalog by name, as `_oddities` is."""
        cur.execute("""
            SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text,
                   c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(pg_catalog.quote_ident(c.relname))
            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
            WHERE c.relname OPERATOR(pg_catalog.=) ANY (ARRAY['edges', 'chain', 'meta', 'applied']::pg_catalog.name[])
              AND n.nspname OPERATOR(pg_catalog.=) ANY (pg_catalog.current_schemas(false))
        """)  # fmt: skip
        found = cur.fetchall()
        read = {str(relname): str(schema) for schema, relname, first in found if first}
        applied = read.pop("applied", None)  # said last: a stale copy's tables (none of them) are said as before
        schemas = sorted(set(read.values()))
        if not schemas:
            return None, None
        if len(schemas) > 1:
            where = ", ".join(f"{escaped(name)} in schema {escaped(read[name])}" for name in sorted(read))
            return None, (f"the lineage tables this connection reads are not in one schema ({where}): a table earlier "
                          "on its search_path stands in for the store's. Name the store's schema alone on the search "
                          "path, in the URL: ?options=-csearch_path%3DSCHEMA")  # fmt: skip
        schema = schemas[0]
        held: dict[str, set[str]] = {}  # schema -> the tables verify reads it holds: a store's are edges and chain
        for other, relname, _ in found:
            held.setdefault(str(other), set()).add(str(relname))
        others = sorted(other for other, names in held.items() if other != schema and {"edges", "chain"} <= names)
        if others:
            shown = ", ".join(escaped(other) for other in others)
            return schema, (f"it read the lineage tables of schema {escaped(schema)}, but schema {shown}, also on this "
                            "connection's search_path, holds lineage tables too, so which one is the store is not "
                            "certain (a copy found first would be read, and verified, in the store's stead). Name the store's "
                            "schema alone on the search path, in the URL: ?options=-csearch_path%3DSCHEMA")  # fmt: skip
        if applied is not None and applied != schema:
            where = ", ".join(f"{escaped(name)} in schema {escaped(read[name])}" for name in sorted(read))
            return None, (f"the lineage tables this connection reads are not in one schema (applied in schema "
                          f"{escaped(applied)}, {where}): a table earlier on its search_path stands in for the store's. "
                          "Name the store's schema alone on the search path, in the URL: "
                          "?options=-csearch_path%3DSCHEMA")  # fmt: skip
        # that schema alone on the search path until the transaction ends: a name is looked up in the catalog as it
        # stands, not in the read's snapshot, so an `applied` made meanwhile in a schema named as the role, first on
        # the path, was read (empty) in the store's stead, and a store copied back into one it held a copy of
        cur.execute("SELECT pg_catalog.set_config('search_path', pg_catalog.quote_ident(%s), true)", (schema,))
        return schema, None

    def for_copy(
        self, key: bytes | None, retired: tuple[bytes, ...] = ()
    ) -> tuple[Report, list[EdgeRow], str | None, tuple[str, ...]]:
        """What `edges --copy-to` takes, read in one snapshot: the chain's verdict (`key`, and the `retired`
        keys before it, check the signed entries), the rows it compared (`_finish`), the store's origin, and the
        copies it holds (their `copy:` tokens)."""
        with self._transaction(lock=False, reads=_COPY_LOCKS) as cur:
            report, edges = self._verify(cur, key, retired=retired, ordered=True)
            if not report.intact:
                return report, [], None, ()  # nothing is copied from a record that does not verify
            cur.execute("SELECT value FROM meta WHERE key = 'origin'")
            found = cur.fetchone()
            rows = [EdgeRow.stored(row) for row in edges]
            cur.execute("SELECT token FROM applied WHERE token LIKE 'copy:%%'")
            copies = tuple(str(token[0]) for token in cur.fetchall())
        return report, rows, found[0] if found else None, copies

    def rows(self) -> list[EdgeRow]:
        """Every edge. A reader's (`edges`, `report`) only from the one schema its search path holds a store in, as
        `verify --integrity` reads it (SchemaUnclear otherwise): a stale copy found first is never listed in the
        store's stead. A writer's connection names its schema alone."""
        try:
            with self._transaction(reads=_LIST_LOCKS) as cur:
                if self._readonly:
                    unclear = self._schema(cur)[1]
                    if unclear is not None:
                        raise SchemaUnclear(unclear)
                cur.execute(_ROWS.format(sidecar=_sidecar(cur)))
                found = cur.fetchall()
        except psycopg.errors.InsufficientPrivilege:
            odd = self._policed()
            if not odd:
                raise
            raise Policed(f"the store has {odd}: a policy can hide rows from a read, so none is read through it "
                          "(`verify --integrity` names it)") from None  # fmt: skip
        return [EdgeRow.stored(row) for row in found]

    def close(self) -> None:
        self._drop()
