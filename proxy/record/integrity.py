"""A tamper-evident lineage record: every write to the edge store is an entry in a hash chain.

Each entry holds what one write changed (the edge rows and count increments of a new flow or of a count
flush), the hash of the entry before it, and its own hash over both: `sha256(prev + body)`, or
`HMAC-SHA256(key, prev + body)` when `lineage.integrity_key_file` names a key kept outside the store.
A retention purge writes a `snapshot` entry holding every edge that remains, so the chain can be
shortened without losing what it proves.

`verify` walks the chain and replays it: a link whose hash does not match, an edge row whose count,
times, rule or reason differ from what the chain says, a row stored twice, or a chain whose oldest
entry is not a snapshot (every chain starts with one: a new store's, or a purge's) is named. What it
cannot see, and why the head is printed for an auditor to keep: someone who deletes the newest entries
*and* the matching edge counts leaves a consistent, shorter record (a head recorded before then is no
longer in the chain: `verify --expect-head` says so); and without an HMAC key, someone with write
access can rebuild the whole chain. Keep the key out of the store's reach and record the head elsewhere
(a ticket, a log pipeline).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = ""  # the `prev` of the first entry
EDGES = "edges"  # an upsert: rows whose counts add
SNAPSHOT = "snapshot"  # the complete edge table: state is replaced

# one edge change in an entry: caller, purpose, input labels, checkpoint, output labels, decision,
# first_seen, last_seen, count (an increment in `edges`, the total in `snapshot`), rule, reason
Change = tuple[str, str, str, str, str, str, float, float, int, str | None, str | None]


def body(kind: str, changes: Iterable[Sequence[Any]]) -> str:
    """The canonical text an entry hashes: stable whatever the writer (sorted keys, no spaces)."""
    return orjson.dumps({"kind": kind, "rows": [list(change) for change in changes]}).decode()


def link(prev: str, text: str, key: bytes | None) -> str:
    data = prev.encode() + b"\n" + text.encode()
    if key is not None:
        return "hmac-sha256:" + hmac.new(key, data, hashlib.sha256).hexdigest()
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    at: float
    body: str
    prev: str
    hash: str


@dataclass(frozen=True, slots=True)
class Report:
    """What `verify --integrity` says: intact or not, and the first broken link when not."""

    entries: int
    head: str  # the newest entry's hash: what an auditor records
    keyed: bool  # the chain uses an HMAC key
    problem: str | None = None  # the first broken link or mismatch, None when intact
    needs_key: bool = False  # not walked: the chain is keyed and no key was given (a usage error, not tampering)
    hashes: frozenset[str] = frozenset()  # every kept entry's hash, and the anchor: the heads still in the chain

    @property
    def intact(self) -> bool:
        return self.problem is None


class _Malformed(ValueError):
    pass


def verify(entries: Sequence[Entry], anchor: str, rows: Iterable[Sequence[Any]], key: bytes | None) -> Report:
    """Walk `entries` (oldest first) from `anchor` (the `prev` of the first one kept), check every link,
    replay the changes and compare with the edge `rows` as stored (key fields, first, last, count, rule,
    reason)."""
    head = anchor
    keyed = bool(entries) and entries[-1].hash.startswith("hmac-")
    hashes = frozenset({anchor, *(entry.hash for entry in entries)} - {GENESIS})

    def broken(problem: str) -> Report:
        return Report(len(entries), head, keyed, problem, hashes=hashes)

    if not entries and anchor != GENESIS:
        return broken("the chain is empty, though the store's anchor says a purge kept a snapshot (entries were "
                      "removed)")  # fmt: skip
    if key is not None and entries and not keyed:
        return broken("a key was given but the newest entry is not signed with one (the chain was rebuilt without "
                      "the key, or never keyed)")  # fmt: skip
    state: dict[tuple[str, ...], list[Any]] = {}
    signed = False
    for entry in entries:
        if signed and not entry.hash.startswith("hmac-"):
            return broken(f"entry {entry.seq}: unsigned after signed entries (an entry was replaced without the key)")
        signed = signed or entry.hash.startswith("hmac-")
        if entry.prev != head:
            return broken(f"entry {entry.seq}: it does not follow the entry before it (an entry was removed or "
                          "reordered)")  # fmt: skip
        if entry.hash.startswith("hmac-") and key is None:
            return Report(len(entries), head, True, "the chain is keyed: give --key-file to verify it",
                          needs_key=True, hashes=hashes)  # fmt: skip
        expected = link(entry.prev, entry.body, key if entry.hash.startswith("hmac-") else None)
        if not hmac.compare_digest(expected, entry.hash):
            return broken(f"entry {entry.seq}: its hash does not match its content (the entry was edited, or the "
                          "key is not the one it was written with)")  # fmt: skip
        try:
            kind, changes = _read(entry.body)
            if entry is entries[0] and kind != SNAPSHOT:
                return broken(f"entry {entry.seq}: the oldest entry kept is not a snapshot (every chain starts with "
                              "one; older entries were removed)")  # fmt: skip
            if kind == SNAPSHOT:
                state = {}
            for change in changes:
                _add(state, change)
        except _Malformed as exc:
            return broken(f"entry {entry.seq}: its content is not a chain entry ({exc})")
        head = entry.hash
    stored: dict[tuple[str, ...], list[Any]] = {}
    for row in rows:
        edge = tuple(row[:6])
        if edge in stored:
            return broken(f"edge {_name(edge)} is in the store twice (a row was inserted)")
        stored[edge] = [row[6], row[7], row[8], row[9], row[10] if len(row) > 10 else None]
    for edge, found in sorted(stored.items()):
        replayed = state.pop(edge, None)
        if replayed is None:
            return broken(f"edge {_name(edge)} is in the store but in no chain entry (a row was inserted)")
        if found[:3] != replayed[:3]:
            return broken(f"edge {_name(edge)}: the store says count {found[2]}, first {found[0]}, last "
                          f"{found[1]}; the chain says count {replayed[2]}, first {replayed[0]}, last {replayed[1]} "
                          "(the row was edited)")  # fmt: skip
        if found[3:] != replayed[3:]:
            return broken(f"edge {_name(edge)}: the store says rule {found[3]!r}, reason {found[4]!r}; the chain "
                          f"says rule {replayed[3]!r}, reason {replayed[4]!r} (the row was edited)")  # fmt: skip
    if state:
        edge = sorted(state)[0]
        return broken(f"edge {_name(edge)} is in the chain but not in the store (a row was deleted)")
    return Report(len(entries), head, keyed, hashes=hashes)


def _read(text: str) -> tuple[str, list[Sequence[Any]]]:
    """An entry's kind and its changes, each checked for shape: a signed entry is only as good as what it
    says, and a malformed one is named, not a traceback."""
    try:
        record = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _Malformed(f"not JSON: {exc}") from None
    if not isinstance(record, dict) or record.get("kind") not in (EDGES, SNAPSHOT):
        raise _Malformed("no kind, or one that is neither edges nor snapshot")
    changes = record.get("rows")
    if not isinstance(changes, list):
        raise _Malformed("no rows")
    for change in changes:
        if (
            not isinstance(change, list)
            or len(change) not in (10, 11)  # 10: written before reasons were kept
            or not all(isinstance(value, str) for value in change[:6])
            or not all(type(value) in (int, float) for value in change[6:8])
            or type(change[8]) is not int
            or not all(value is None or isinstance(value, str) for value in change[9:])
        ):
            raise _Malformed(f"a row that is not an edge change: {orjson.dumps(change).decode()[:200]}")
    return record["kind"], changes


def _add(state: dict[tuple[str, ...], list[Any]], row: Sequence[Any]) -> None:
    """One change replayed as the store's upsert applies it: counts add, times widen, a rule or reason
    that is given replaces the one before (`coalesce`)."""
    edge, first, last, count = tuple(row[:6]), row[6], row[7], row[8]
    rule, reason = row[9], row[10] if len(row) > 10 else None
    found = state.get(edge)
    if found is None:
        state[edge] = [first, last, count, rule, reason]
        return
    found[0] = min(found[0], first)
    found[1] = max(found[1], last)
    found[2] += count
    if rule is not None:
        found[3] = rule
    if reason is not None:
        found[4] = reason


def _name(edge: tuple[str, ...]) -> str:
    caller, purpose, labels, checkpoint, _, decision = edge
    return f"(caller {caller}, purpose {purpose or '-'}, labels {labels or '-'}, checkpoint {checkpoint or '-'}, {decision})"
