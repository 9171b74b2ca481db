"""A tamper-evident lineage record: every write to the edge store is an entry in a hash chain.

Each entry holds what one write changed (the edge rows and count increments of a new flow or of a count
flush), the hash of the entry before it, and its own hash over both: `sha256(prev + body)`, or
`HMAC-SHA256(key, prev + body)` when `lineage.integrity_key_file` names a key kept outside the store.
A retention purge writes a `snapshot` entry holding every edge that remains, so the chain can be
shortened without losing what it proves.

`verify` walks the chain and replays it: a link whose hash does not match, or an edge row whose count
or times differ from what the chain says, is named. What it cannot see, and why the head is printed
for an auditor to keep: someone who deletes the newest entries *and* the matching edge counts leaves a
consistent, shorter record; and without an HMAC key, someone with write access can rebuild the whole
chain. Keep the key out of the store's reach and record the head elsewhere (a ticket, a log pipeline).
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

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify(entries: Sequence[Entry], anchor: str, rows: Iterable[Sequence[Any]], key: bytes | None) -> Report:
    """Walk `entries` (oldest first) from `anchor` (the `prev` of the first one kept), check every link,
    replay the changes and compare with the edge `rows` as stored (key fields, first, last, count)."""
    head = anchor
    keyed = bool(entries) and entries[-1].hash.startswith("hmac-")
    if key is not None and not keyed:
        return Report(len(entries), entries[-1].hash if entries else anchor, False, "a key was given but the newest "
                      "entry is not signed with one (the chain was rebuilt without the key, or never keyed)")  # fmt: skip
    state: dict[tuple[str, ...], list[Any]] = {}
    signed = False
    for entry in entries:
        if signed and not entry.hash.startswith("hmac-"):
            return Report(len(entries), head, keyed, f"entry {entry.seq}: unsigned after signed entries "
                          "(an entry was replaced without the key)")  # fmt: skip
        signed = signed or entry.hash.startswith("hmac-")
        if entry.prev != head:
            return Report(len(entries), head, keyed, f"entry {entry.seq}: it does not follow the entry before it "
                          "(an entry was removed or reordered)")  # fmt: skip
        if entry.hash.startswith("hmac-") and key is None:
            return Report(len(entries), head, True, "the chain is keyed: give --key-file to verify it")
        expected = link(entry.prev, entry.body, key if entry.hash.startswith("hmac-") else None)
        if not hmac.compare_digest(expected, entry.hash):
            return Report(len(entries), head, keyed, f"entry {entry.seq}: its hash does not match its content "
                          "(the entry was edited, or the key is not the one it was written with)")  # fmt: skip
        record = orjson.loads(entry.body)
        if record["kind"] == SNAPSHOT:
            state = {tuple(row[:6]): list(row[6:]) for row in record["rows"]}
        else:
            for row in record["rows"]:
                _add(state, row)
        head = entry.hash
    stored = {tuple(row[:6]): list(row[6:9]) for row in rows}
    for edge, (first, last, count) in sorted(stored.items()):
        replayed = state.pop(edge, None)
        if replayed is None:
            return Report(len(entries), head, keyed, f"edge {_name(edge)} is in the store but in no chain entry "
                          "(a row was inserted)")  # fmt: skip
        if [first, last, count] != replayed[:3]:
            return Report(len(entries), head, keyed, f"edge {_name(edge)}: the store says count {count}, first "
                          f"{first}, last {last}; the chain says count {replayed[2]}, first {replayed[0]}, "
                          f"last {replayed[1]} (the row was edited)")  # fmt: skip
    if state:
        edge = sorted(state)[0]
        return Report(len(entries), head, keyed, f"edge {_name(edge)} is in the chain but not in the store "
                      "(a row was deleted)")  # fmt: skip
    return Report(len(entries), head, keyed)


def _add(state: dict[tuple[str, ...], list[Any]], row: Sequence[Any]) -> None:
    edge, first, last, count = tuple(row[:6]), row[6], row[7], row[8]
    found = state.get(edge)
    if found is None:
        state[edge] = [first, last, count, row[9], row[10]]
        return
    found[0] = min(found[0], first)
    found[1] = max(found[1], last)
    found[2] += count


def _name(edge: tuple[str, ...]) -> str:
    caller, purpose, labels, checkpoint, _, decision = edge
    return f"(caller {caller}, purpose {purpose or '-'}, labels {labels or '-'}, checkpoint {checkpoint or '-'}, {decision})"
