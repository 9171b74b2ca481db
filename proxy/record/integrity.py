"""A tamper-evident lineage record: every write to the edge store is an entry in a hash chain.

Each entry holds what one write changed (the edge rows and count increments of a new flow or of a count
flush), the hash of the entry before it, and its own hash over both: `sha256(prev + body)`, or
`HMAC-SHA256(key, prev + body)` when `lineage.integrity_key_file` names a key kept outside the store.
A retention purge writes a `snapshot` entry holding every edge that remains, so the chain can be
shortened without losing what it proves.

`verify` walks the chain and replays it: a link whose hash does not match, an edge row whose count,
times or reason differ from what the chain says (its rule is part of its key, so an edited rule is a row
the chain does not hold), a row stored twice, or a chain whose oldest entry is not a snapshot (every
chain starts with one: a new store's, or a purge's) is named. What it cannot see, and why the head is
printed for an auditor to keep: someone who deletes the newest entries *and* the matching edge counts
leaves a consistent, shorter record (a head recorded before then is no longer in the chain: `verify
--expect-head` says so); and without an HMAC key, someone with write access can rebuild the whole
chain. Keep the key out of the store's reach and record the head elsewhere (a ticket, a log pipeline).

An entry says how its changes are keyed (`version`): 3, an edge per flow, rule *and sidecar* (the
`lineage.sidecar` that recorded it: each change carries it last, so who recorded a flow is signed content);
2, per flow and rule, written before sidecars were named, its edges replayed as recorded by sidecar '';
none (1), written by a release that kept one edge per flow, its rule the last one given. The entries of a
store written before the rule keyed an edge are replayed as that release applied them, so its chain still
verifies once the store is re-keyed (its rows as they were), and the entries after them add edges per rule.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.logs import escaped

GENESIS = ""  # the `prev` of the first entry
SIGNED = "hmac-"  # how a signed entry's hash begins (an unsigned one's: "sha256:")
EDGES = "edges"  # an upsert: rows whose counts add
SNAPSHOT = "snapshot"  # the complete edge table: state is replaced

BATCH = 5000  # entries read at a time when a chain is replayed

# how an entry's changes are keyed: 3, by flow, rule and sidecar (this release writes it); 2, by flow and rule
# (written before sidecars were named: sidecar ''); 1 (no `version` in the entry), by flow alone, the rule the last
# one given (written before the rule keyed an edge)
VERSION = 3
BY_RULE = 2
BY_FLOW = 1

# one edge change in an entry: caller, purpose, input labels, checkpoint, output labels, decision,
# first_seen, last_seen, count (an increment in `edges`, the total in `snapshot`), rule ('' or None: no
# rule fired), reason, and (version 3) the sidecar that recorded it
Change = tuple[str, str, str, str, str, str, float, float, int, str | None, str | None, str]


def body(kind: str, changes: Iterable[Sequence[Any]], token: str | None = None, *, version: int = VERSION) -> str:
    """The canonical text an entry hashes: stable whatever the writer (sorted keys, no spaces). `token`:
    the write's once-only token (a journaled batch's), signed with it, so a batch applied twice shows.
    `version`: how the changes are keyed (BY_FLOW: an entry as a release before VERSION wrote it)."""
    record: dict[str, Any] = {"kind": kind, "rows": [list(change) for change in changes]}
    if token is not None:
        record["token"] = token
    if version != BY_FLOW:
        record["version"] = version
    return orjson.dumps(record).decode()


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
    oldest_at: float | None = None  # when the oldest kept entry was written: the store's start, or its last purge
    schema: str | None = None  # the PostgreSQL schema whose tables were read (None: a SQLite file)
    warning: str | None = None  # what is not wrong with the record but may soon be (a writer's search path)

    @property
    def intact(self) -> bool:
        return self.problem is None


class _Malformed(ValueError):
    pass


class UnsignedHead(RuntimeError):
    """A writer would chain where it must not: a keyed one onto an unsigned (or missing) newest entry, or
    an unkeyed one onto a signed chain."""


def signed_head(last: str | None, key: bytes | None, where: str, *, held: bool = False) -> None:
    """Raise UnsignedHead when a writer may not chain onto the newest entry `last` (None: the chain is
    empty; `held`: though the store holds edges or a purge's anchor, or its chain had entries). A chain rebuilt by someone without
    the key fails `verify --key-file` only until a keyed entry goes on top of it, so a keyed writer never
    puts one on an unsigned entry, nor starts a chain over edges it did not write; an unsigned entry after
    signed ones leaves the chain unverifiable for good, so an unkeyed writer never adds one. A store kept
    unkeyed until now is adopted once, by hand (`verify --integrity --key-file K --adopt-head HEAD`)."""
    if key is None:
        if last is not None and str(last).startswith(SIGNED):
            raise UnsignedHead(f"{where}: the chain is signed and this writer has no key: set "
                               "lineage.integrity_key_file as the other writers do (an unsigned entry after signed "
                               "ones would leave the record unverifiable)")  # fmt: skip
    elif last is None and held:
        raise UnsignedHead(f"{where}: its chain is empty or missing, though the store holds edges or was purged "
                           "before, or its chain had entries: the chain was removed. A keyed writer does not start a "
                           "chain over edges it did not write, nor again in a store that was emptied; `lineage-proxy "
                           "verify --integrity` names the gap (keep the store for the inquiry; point lineage.store "
                           "at a new one)")  # fmt: skip
    elif last is not None and not str(last).startswith(SIGNED):
        raise UnsignedHead(f"{where}: the chain's newest entry is unsigned, so nothing is signed on top of it: the "
                           "chain was rebuilt without the key (or the store was unkeyed until now: stop every writer, "
                           "check it with `lineage-proxy verify --integrity` against a head recorded earlier, then "
                           "adopt it with `verify --integrity --key-file KEY --adopt-head HEAD`)")  # fmt: skip


def _signed_entry(newest: Sequence[Any] | None) -> tuple[str, str, str] | None:
    """The newest entry's prev, body and hash (`newest`: a row of them) when it is a signed entry; None for an
    unsigned or malformed one (`signed_head`'s and `verify`'s business) or none."""
    if newest is None:
        return None
    prev, text, found = newest[0], newest[1], newest[2]
    if isinstance(prev, str) and isinstance(text, str) and isinstance(found, str) and found.startswith(SIGNED):
        return prev, text, found
    return None


def known_signer(newest: Sequence[Any] | None, keys: tuple[bytes, ...], where: str) -> None:
    """Raise UnsignedHead when the newest entry (`newest`: its prev, body and hash) is signed with none of
    `keys` (the writer's key, then the keys it replaced): a writer whose key was rotated while it ran, or one
    given the wrong key file, would sign entries no verifier accepts after the others' (or, with the old
    key, after the new one's: `Replay`). Its writes fail instead (its counts kept, a PostgreSQL writer's
    journaled), until it is started with the current key."""
    entry = _signed_entry(newest)
    if entry is None or not keys:
        return
    prev, text, found = entry
    if any(hmac.compare_digest(link(prev, text, key), found) for key in keys):
        return
    raise UnsignedHead(f"{where}: its newest entry is signed with a key this writer does not have (neither "
                       "lineage.integrity_key_file nor one of lineage.integrity_retired_key_files): the key was "
                       "rotated and this writer has the old one (start it with the new key, the old one retired), or "
                       "the new one without the old one retired, or its key file is another's. Nothing is signed on "
                       "top of it: the chain stays verifiable")  # fmt: skip


def signed_before(newest: Sequence[Any] | None, key: bytes | None, retired: tuple[bytes, ...]) -> bool:
    """Whether the newest entry (`newest`: its prev, body and hash) is signed with one of the `retired` keys and
    not with `key`: a writer started with the new key then signs an entry that adds nothing on top, so that from
    then on the newest entry is always signed with the new key (`Replay.finish` names one that is not)."""
    entry = _signed_entry(newest)
    if entry is None or key is None or not retired:
        return False
    prev, text, found = entry
    if hmac.compare_digest(link(prev, text, key), found):
        return False
    return any(hmac.compare_digest(link(prev, text, old), found) for old in retired)


class Replay:
    """A chain walked and replayed so far, oldest entry first, fed in batches (`feed`), so a long chain
    is never held in memory and a writer can replay most of it before it takes the write lock and only
    what was appended since under it. `problem` is the first broken link, once there is one."""

    def __init__(
        self,
        anchor: str,
        key: bytes | None,
        *,
        hashes: bool = False,
        retired: tuple[bytes, ...] = (),
        numbered: bool = False,
    ) -> None:
        """`retired`: the keys the chain was signed with before `key`, oldest first
        (`lineage.integrity_retired_key_files`). An entry may be signed with any of them, but never with a key
        older than one an entry before it was signed with: an entry signed with a retired key after the
        rotation's first entry is named (a writer still holding the old key, or someone who has it).
        `numbered`: the store numbers its entries one after another and never skips a number (SQLite's
        AUTOINCREMENT, its writers appending in turn, a failed write's number rolled back with it), so a gap
        between two kept entries, or a first entry that no purge cut and that is not number 1, says entries
        were removed (`gap`). The numbers are not signed: this names a cut made without renumbering."""
        self.anchor = anchor
        self.key = key
        self.keys = (*retired, key) if key is not None else ()  # oldest first
        self.key_at = 0  # the newest of `keys` an entry so far was signed with
        self.head = anchor
        self.seq = 0  # the last entry replayed
        self.first_seq = 0  # the first: a chain cut since (a purge elsewhere) starts later
        self.first_at: float | None = None
        self.entries = 0
        # an entry so far was signed (or the anchor, the last entry a purge cut): none after it may be unsigned
        self.signed = isinstance(anchor, str) and anchor.startswith(SIGNED)
        # edge key (the flow's six fields, its rule, '' for none, and its sidecar, '' before sidecars were named) ->
        # [first_seen, last_seen, count, reason]
        self.state: dict[tuple[str, ...], list[Any]] = {}
        # while only entries keyed by flow (version 1) have been replayed since the last snapshot: each
        # flow's one edge key; None once an entry keyed by rule has been
        self._by_flow: dict[tuple[str, ...], tuple[str, ...]] | None = {}
        self.problem: str | None = None
        self.tokens: dict[str, int] = {}  # write tokens in the kept entries: the entry that applied each
        self.needs_key = False
        self.numbered = numbered
        self.gap: str | None = None  # the first gap in a `numbered` chain's numbers: named by `finish`
        self.hashes: set[str] | None = set() if hashes else None  # the anchor joins when the first entry is signed
        if not isinstance(anchor, str):  # the meta table edited by hand
            self.problem = f"the store's anchor is not a chain hash ({escaped(repr(anchor))[:60]})"
            self.head = self.anchor = ""

    def feed(self, entries: Iterable[Entry]) -> bool:
        """Walk and replay `entries`, the next ones after those fed before; False at a broken link."""
        if self.problem is not None:
            return False
        for entry in entries:
            problem = self._one(entry)
            if problem is not None:
                self.problem = problem
                return False
        return True

    def _one(self, entry: Entry) -> str | None:
        if not (type(entry.seq) is int and isinstance(entry.body, str) and isinstance(entry.prev, str)
                and isinstance(entry.hash, str)):  # fmt: skip
            return f"entry {escaped(repr(entry.seq))[:40]}: its columns are not a chain entry's (edited by hand)"
        signed = entry.hash.startswith(SIGNED)
        if self.signed and not signed:
            return f"entry {entry.seq}: unsigned after signed entries (an entry was replaced without the key)"
        if entry.prev != self.head:
            return f"entry {entry.seq}: it does not follow the entry before it (an entry was removed or reordered)"
        if signed and self.key is None:
            self.needs_key = True
            return "the chain is keyed: give --key-file to verify it"
        if signed:
            problem = self._signed(entry)
            if problem is not None:
                return problem
        elif not hmac.compare_digest(link(entry.prev, entry.body, None), entry.hash):
            return f"entry {entry.seq}: its hash does not match its content (the entry was edited)"
        try:
            kind, changes, token, version = _read(entry.body)
        except _Malformed as exc:
            return f"entry {entry.seq}: its content is not a chain entry ({exc})"
        if token is not None:
            if token in self.tokens:
                return (f"entry {entry.seq}: its write was applied before, by entry {self.tokens[token]} (a journaled "
                        "batch replayed twice)")  # fmt: skip
            self.tokens[token] = entry.seq
        if self.entries == 0 and kind != SNAPSHOT:
            return (f"entry {entry.seq}: the oldest entry kept is not a snapshot (every chain starts with one; older "
                    "entries were removed)")  # fmt: skip
        if kind == SNAPSHOT:
            self.state = {}
            self._by_flow = {} if version == BY_FLOW else None
        elif version != BY_FLOW:
            self._by_flow = None
        elif changes and self._by_flow is None:
            return (f"entry {entry.seq}: its changes are keyed by flow alone (a release before edges were keyed "
                    "by rule), after entries keyed by rule: no release writes those to a store it re-keyed")  # fmt: skip
        by_flow = self._by_flow
        for change in changes:
            if by_flow is None:
                _add(self.state, change)
            else:
                _add_by_flow(self.state, by_flow, change)
        if self.numbered and self.gap is None:
            self.gap = self._gap(entry.seq)
        self.signed = self.signed or signed
        self.head, self.seq = entry.hash, entry.seq
        if not self.first_seq:
            self.first_seq, self.first_at = entry.seq, entry.at
            if self.hashes is not None and signed and self.anchor != GENESIS:  # an unsigned anchor anyone may set
                self.hashes.add(self.anchor)
        self.entries += 1
        if self.hashes is not None:
            self.hashes.add(entry.hash)
        return None

    def _gap(self, seq: int) -> str | None:
        """Why an entry numbered `seq`, next after those replayed, shows entries removed; None when it does not."""
        if self.entries and seq != self.seq + 1:
            return (f"entry {seq} follows entry {self.seq}: the entries numbered between them were removed (the "
                    f"newest entries cut away, with the counts they added, and entry {seq} written after)")  # fmt: skip
        if not self.entries and self.anchor == GENESIS and seq != 1:
            return (f"the chain's first entry, which no retention purge cut, is numbered {seq}, not 1: the entries "
                    "before it were removed (the store emptied, and its chain started again)")  # fmt: skip
        return None

    def _signed(self, entry: Entry) -> str | None:
        """Whether `entry` is signed with the newest key an entry before it was signed with, or a newer one
        (`key_at` moves to it); why not, when it is not."""
        keys = self.keys
        for at in range(self.key_at, len(keys)):
            if hmac.compare_digest(link(entry.prev, entry.body, keys[at]), entry.hash):
                self.key_at = at
                return None
        if any(hmac.compare_digest(link(entry.prev, entry.body, key), entry.hash) for key in keys[: self.key_at]):
            return (f"entry {entry.seq}: it is signed with a retired key, after entries signed with a newer one (a "
                    "writer still holding the old key, or someone who has it)")  # fmt: skip
        return (
            f"entry {entry.seq}: its hash does not match its content (the entry was edited, or it was signed "
            "with none of the keys given: after a rotation, the keys before it are given too, oldest first)"
        )

    def kept(self, cutoff: float) -> list[tuple[Any, ...]]:
        """The edges the replayed chain holds that were last seen at `cutoff` or later, as stored rows
        (the flow's fields, first, last, count, rule, reason, sidecar), sorted: what a purge's snapshot says,
        built from the chain it verified, never from a read of the table (a trigger, or a row committed
        meanwhile, could put anything there)."""
        return sorted((*edge[:6], *values[:3], edge[6], values[3], edge[7]) for edge, values in self.state.items()
                      if values[1] >= cutoff)  # fmt: skip

    def finish(self, rows: Iterable[Sequence[Any]], *, strict: bool = True, numbered_to: int | None = None) -> Report:
        """The verdict, comparing the replayed state with the edge `rows` as stored (key fields, first,
        last, count, rule, reason, sidecar: a store made before sidecars were named has none, ''). `strict`: a key was given, so the newest entry must be signed with it
        (an unkeyed chain rebuilt by someone without the key is then named). `numbered_to`: the highest
        number the store ever gave an entry, where it keeps one (SQLite's sqlite_sequence): past the newest
        entry kept, the newest entries were cut away."""
        if self.problem is None:
            self.problem = self._compare(rows, strict, numbered_to)
        return Report(self.entries, self.head, self.head.startswith(SIGNED), self.problem, needs_key=self.needs_key,
                      hashes=frozenset(self.hashes or ()), oldest_at=self.first_at)  # fmt: skip

    def _compare(self, rows: Iterable[Sequence[Any]], strict: bool, numbered_to: int | None) -> str | None:
        if self.entries == 0 and self.anchor != GENESIS:
            return "the chain is empty, though the store's anchor says a purge kept a snapshot (entries were removed)"
        if strict and self.key is not None and self.entries and not self.head.startswith(SIGNED):
            return ("a key was given but the newest entry is not signed with one (the chain was rebuilt without the "
                    "key, or never keyed)")  # fmt: skip
        if strict and self.entries and self.head.startswith(SIGNED) and self.key_at < len(self.keys) - 1:
            return (f"entry {self.seq}, the newest, is signed with a retired key: a writer started with the new key "
                    "signs an entry on top as it starts, so entries signed with the new key were removed, or the "
                    "record was signed again with an old key (before any writer has started with the new key, "
                    "verify with the old one)")  # fmt: skip
        if self.gap is not None:
            return self.gap
        if type(numbered_to) is int and self.entries and numbered_to > self.seq:
            cut = (
                f"entry {numbered_to} was"
                if numbered_to == self.seq + 1
                else f"entries {self.seq + 1} to {numbered_to} were"
            )
            return (f"entry {self.seq}, the newest kept, is not the newest written: the store numbered its entries up "
                    f"to {numbered_to} (its sqlite_sequence), so {cut} cut away")  # fmt: skip
        state = dict(self.state)
        stored: dict[tuple[str, ...], list[Any]] = {}
        for row in rows:
            # a store not re-keyed yet (read-only) keeps "no rule" as NULL, one re-keyed as ''
            edge = (*row[:6], "" if row[9] is None else row[9], row[11] if len(row) > 11 else "")
            values = [row[6], row[7], row[8], row[10] if len(row) > 10 else None]
            if not _edge_row(edge, values):
                return f"edge {_name(edge)}: a row whose values are not an edge's ({escaped(repr(values))[:200]})"
            if edge in stored:
                return f"edge {_name(edge)} is in the store twice (a row was inserted)"
            stored[edge] = values
        for edge, found in sorted(stored.items()):
            replayed = state.pop(edge, None)
            if replayed is None:
                return (f"edge {_name(edge)} is in the store but in no chain entry (a row was inserted, or its key or rule "
                        "edited, or the sidecar that recorded it)")  # fmt: skip
            if found[:3] != replayed[:3]:
                return (f"edge {_name(edge)}: the store says count {found[2]}, first {found[0]}, last {found[1]}; the "
                        f"chain says count {replayed[2]}, first {replayed[0]}, last {replayed[1]} (the row was "
                        "edited)")  # fmt: skip
            if found[3] != replayed[3]:
                return (f"edge {_name(edge)}: the store says reason {escaped(repr(found[3]))}; the chain says reason "
                        f"{escaped(repr(replayed[3]))} (the row was edited)")  # fmt: skip
        if state:
            return f"edge {_name(sorted(state)[0])} is in the chain but not in the store (a row was deleted)"
        if self.entries == 0:
            return ("the chain is empty, though every lineage store's chain starts with a snapshot entry, written "
                    "with its tables: its entries were removed (the store emptied)")  # fmt: skip
        return None


def _edge_row(edge: tuple[Any, ...], values: list[Any]) -> bool:
    """Whether a stored row has an edge's types (a column SQLite let someone fill with a blob, say)."""
    return (
        len(edge) == 8
        and all(isinstance(part, str) for part in edge)
        and all(type(value) in (int, float) for value in values[:2])
        and type(values[2]) is int
        and (values[3] is None or isinstance(values[3], str))
    )


def _read(text: str) -> tuple[str, list[Sequence[Any]], str | None, int]:
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
        if not is_change(change):
            raise _Malformed(f"a row that is not an edge change: {escaped(orjson.dumps(change).decode()[:200])}")
    token = record.get("token")
    if token is not None and not isinstance(token, str):
        raise _Malformed("a write token that is not text")
    version = record.get("version", BY_FLOW)
    if type(version) is not int or version not in (BY_FLOW, BY_RULE, VERSION):
        raise _Malformed(f"version {escaped(repr(version))[:40]}, which this release does not read (written by a newer "
                         "one?)")  # fmt: skip
    if version != VERSION and any(len(change) > 11 for change in changes):  # a sidecar only from version 3 on
        raise _Malformed(f"a row with a sidecar in an entry of version {version}, written before sidecars were named")
    return record["kind"], changes, token, version


def is_change(change: Any) -> bool:
    """Whether `change` has an edge change's shape: six key strings, first and last seen, a count, a rule,
    a reason (10 items: written before reasons were kept) and a sidecar (11: written before sidecars were named)."""
    return (
        isinstance(change, list)
        and len(change) in (10, 11, 12)
        and (len(change) < 12 or isinstance(change[11], str))
        and all(isinstance(value, str) for value in change[:6])
        and all(type(value) in (int, float) for value in change[6:8])
        and type(change[8]) is int
        and all(value is None or isinstance(value, str) for value in change[9:])
    )


def _add(state: dict[tuple[str, ...], list[Any]], row: Sequence[Any], edge: tuple[str, ...] | None = None) -> None:
    """One change replayed as the store's upsert applies it: the edge is the flow, its rule and its sidecar
    ('' in an entry written before sidecars were named; `edge`, when given, instead); counts add, times widen,
    a reason that is given replaces the one before (`coalesce`)."""
    if edge is None:
        edge = (*row[:6], row[9] or "", row[11] if len(row) > 11 else "")
    first, last, count, reason = row[6], row[7], row[8], row[10] if len(row) > 10 else None
    found = state.get(edge)
    if found is None:
        state[edge] = [first, last, count, reason]
        return
    found[0] = min(found[0], first)
    found[1] = max(found[1], last)
    found[2] += count
    if reason is not None:
        found[3] = reason


def _add_by_flow(
    state: dict[tuple[str, ...], list[Any]], by_flow: dict[tuple[str, ...], tuple[str, ...]], row: Sequence[Any]
) -> None:
    """A change keyed by flow alone (version 1), replayed as that release's upsert applied it: the flow's
    one edge takes the rule given (`coalesce`: none given keeps the one before), with everything it held
    (recorded by sidecar '': before sidecars were named)."""
    flow, rule = tuple(row[:6]), row[9]
    edge = by_flow.get(flow)
    if edge is None:
        edge = by_flow[flow] = (*flow, rule or "", "")
    elif rule is not None and rule != edge[6]:
        state[(*flow, rule, "")] = state.pop(edge)
        edge = by_flow[flow] = (*flow, rule, "")
    _add(state, row, edge)


def edge_name(edge: tuple[Any, ...]) -> str:
    """An edge's key in words, each part escaped, for a message (`_name`)."""
    return _name(edge)


def _name(edge: tuple[str, ...]) -> str:
    """An edge's key (its flow, rule and, when it has one, sidecar) in words."""
    caller, purpose, labels, checkpoint, _, decision, rule = (escaped(str(part)) for part in edge[:7])
    how = f"{decision} by {rule}" if rule else decision
    sidecar = f", recorded by {escaped(str(edge[7]))}" if len(edge) > 7 and edge[7] else ""
    return (f"(caller {caller}, purpose {purpose or '-'}, labels {labels or '-'}, checkpoint {checkpoint or '-'}, "
            f"{how}{sidecar})")  # fmt: skip
