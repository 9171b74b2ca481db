"""`lineage-proxy edges`: answer "which checkpoints saw data labelled X, for which purposes, by whom?"."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

import orjson

from proxy.baseline import checkpoint_pattern
from proxy.cli import stdout_json, stdout_text
from proxy.config import read_key, read_retired_keys
from proxy.labels import normalize
from proxy.logs import escaped
from proxy.record.integrity import Report
from proxy.record.store import EdgeRow, EditedRow, StoreUnclear, StoreWaited, split_labels
from proxy.record.stores import StoreUnreadable, is_database, open_reader, read_errors, shown


def select(rows: list[EdgeRow], args: argparse.Namespace) -> list[EdgeRow]:
    wanted = {normalize(label) for label in args.label or ()}  # as the wire and the record normalise them
    purpose = normalize(args.purpose) if args.purpose is not None else None  # `--purpose ""`: calls that named none
    out = []
    for row in rows:
        key = row.key
        if wanted and not wanted <= set(split_labels(key.input_labels)) | set(split_labels(key.output_labels)):
            continue
        if purpose is not None and key.purpose != purpose:
            continue
        if args.checkpoint and key.checkpoint != checkpoint_pattern(args.checkpoint):
            continue
        if getattr(args, "caller", None) and key.caller != args.caller:
            continue
        if getattr(args, "decision", None) and key.decision != args.decision:
            continue
        rule = getattr(args, "rule", None)
        if rule is not None and key.rule != ("" if rule == "-" else rule):
            continue
        sidecar = getattr(args, "sidecar", None)
        if sidecar is not None and row.sidecar != ("" if sidecar == "-" else sidecar):
            continue
        out.append(row)
    return out


def _time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


# what a cell of the table shows at most: a name a caller chose (a checkpoint an upstream names as the model asked
# for) may be a megabyte, and its column's width pads every row; `--json` has every name whole
CELL_MAX = 200


def _cell(text: str) -> str:
    text = escaped(text)  # a name never breaks a line
    return stdout_text(text if len(text) <= CELL_MAX else text[: CELL_MAX - 3] + "...")  # (its width as written)


def render_table(rows: list[EdgeRow]) -> str:
    header = ("checkpoint", "purpose", "caller", "input labels", "output labels", "decision", "rule", "recorded by",
              "count", "last seen (UTC)")  # fmt: skip
    table: list[tuple[str, ...]] = [header, *(
        (
            r.key.checkpoint or "-",
            r.key.purpose or "-",
            r.key.caller,
            r.key.input_labels or "-",
            r.key.output_labels or "-",
            r.key.decision,
            r.rule or "-",
            r.sidecar or "-",  # '': recorded before sidecars were named
            str(r.count),
            _time(r.last_seen),
        )
        for r in rows
    )]  # fmt: skip
    table = [tuple(map(_cell, line)) for line in table]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table)


def run_edges(args: argparse.Namespace) -> int:
    try:
        store = open_reader(args.store)
    except StoreUnreadable as exc:
        print(f"lineage-proxy edges: {exc}", file=sys.stderr)
        return 1
    key = None
    if args.key_file:
        found = read_key(args.key_file, existing=True)  # it signs the copy: a key the proxy would take, no shorter
        if isinstance(found, str):
            print(f"lineage-proxy edges: {found}", file=sys.stderr)
            return 1
        key = found
    retired = read_retired_keys(getattr(args, "retired_key_file", None) or ())
    if isinstance(retired, str):
        print(f"lineage-proxy edges: {retired}", file=sys.stderr)
        return 1
    try:
        if args.copy_to:  # the rows, the chain's verdict, the store's origin and its copies, read in one transaction
            chain, every, origin, copies = store.for_copy(None if args.unkeyed_source else key, retired)
        else:
            every = store.rows()
    except read_errors() as exc:  # not SQLite at all, or SQLite without the edges table (or an edited row)
        what = "" if isinstance(exc, EditedRow | StoreUnclear | StoreWaited) else "not a lineage store: "
        print(f"lineage-proxy edges: {shown(args.store)}: {what}{exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.copy_to:
        return copy_to(every, chain, origin, args, key, retired, copies)
    rows = select(every, args)
    if args.json:
        for row in rows:
            sys.stdout.write(stdout_json(orjson.dumps(row.as_dict())) + "\n")
        return 0
    if not rows:
        print("no edges match")
        return 0
    print(render_table(rows))
    return 0


def copy_to(
    rows: list[EdgeRow],
    chain: Report,
    origin: str | None,
    args: argparse.Namespace,
    key: bytes | None = None,
    retired: tuple[bytes, ...] = (),
    copies: tuple[str, ...] = (),
) -> int:
    """`edges --store A --copy-to B`: every edge of A added to the PostgreSQL store B in one transaction,
    chained there as one write (signed with `--key-file`, which also checks A's signed entries; B's newest entry
    must be signed with it or one of the `retired` keys). Both records must verify first (an altered history
    is not moved, nor signed over), and a history is copied once: B remembers A's origin (a store from before
    origins: its chain head), and refuses A again however it has grown or been purged since."""
    target = args.copy_to
    if not is_database(target):
        print(f"lineage-proxy edges: --copy-to {target}: expected a PostgreSQL URL (postgresql://...)", file=sys.stderr)
        return 1
    if not chain.intact:
        hint = ""
        if chain.needs_key:
            hint = " (drop --unkeyed-source: the source is keyed)" if args.unkeyed_source else ""
        elif key is not None and not args.unkeyed_source and not chain.keyed:
            hint = (
                " (if the source never had a key, add --unkeyed-source; but a chain rebuilt without the key "
                "looks the same: first check it against a head recorded earlier, `verify --expect-head`)"
            )
        print(f"lineage-proxy edges: {shown(args.store)}: its chain does not verify, nothing copied: {chain.problem}{hint}",
              file=sys.stderr)  # fmt: skip
        return 1
    from proxy.errors import StartupError
    from proxy.record.postgres import PostgresStore, scrub

    errors: tuple[type[Exception], ...] = (*read_errors(), RuntimeError, StartupError)
    try:
        database = PostgresStore(target, key=key, retired=retired)  # on top of an entry signed before the rotation too
        try:
            before = database.absorb(rows, f"origin:{origin}" if origin else chain.head or shown(args.store),
                                     chain.hashes, chain.head, copies)  # fmt: skip
        finally:
            database.close()
    except errors as exc:
        print(f"lineage-proxy edges: {shown(target)}: cannot copy into it: {scrub(str(exc), target)}", file=sys.stderr)
        return 1
    calls = sum(row.count for row in rows)
    if before is not None:
        print(f"{shown(args.store)} was copied into {shown(target)} before ({before}): nothing added, since its "
              "calls would count twice")  # fmt: skip
        return 0
    print(f"copied {len(rows)} edges ({calls} calls) from {shown(args.store)} into {shown(target)}")
    return 0
