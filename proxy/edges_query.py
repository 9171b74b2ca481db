"""`lineage-proxy edges`: answer "which checkpoints saw data labelled X, for which purposes, by whom?"."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import sys

import orjson

from proxy.record.store import EdgeRow, SqliteStore, split_labels


def select(rows: list[EdgeRow], args: argparse.Namespace) -> list[EdgeRow]:
    wanted = set(args.label or ())
    out = []
    for row in rows:
        key = row.key
        if wanted and not wanted <= set(split_labels(key.input_labels)) | set(split_labels(key.output_labels)):
            continue
        if args.purpose and key.purpose != args.purpose:
            continue
        if args.checkpoint and key.checkpoint != args.checkpoint:
            continue
        if getattr(args, "caller", None) and key.caller != args.caller:
            continue
        if getattr(args, "decision", None) and key.decision != args.decision:
            continue
        out.append(row)
    return out


def _time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def render_table(rows: list[EdgeRow]) -> str:
    header = ("checkpoint", "purpose", "caller", "input labels", "output labels", "decision", "count", "last seen")
    table = [header] + [
        (
            r.key.checkpoint or "-",
            r.key.purpose or "-",
            r.key.caller,
            r.key.input_labels or "-",
            r.key.output_labels or "-",
            r.key.decision,
            str(r.count),
            _time(r.last_seen),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table)


def run_edges(args: argparse.Namespace) -> int:
    if os.path.isdir(args.store):
        print(f"lineage-proxy: {args.store}: is a directory, not a lineage store", file=sys.stderr)
        return 1
    try:
        store = SqliteStore(args.store, readonly=True)
    except FileNotFoundError:
        print(f"lineage-proxy: {args.store}: no lineage store there (is lineage.store set to this path?)",
              file=sys.stderr)  # fmt: skip
        return 1
    except sqlite3.Error as exc:
        print(f"lineage-proxy: {args.store}: cannot open it as a lineage store: {exc}", file=sys.stderr)
        return 1
    try:
        rows = select(store.rows(), args)
    except sqlite3.Error as exc:  # not SQLite at all, or SQLite without the edges table
        print(f"lineage-proxy: {args.store}: not a lineage store: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.json:
        for row in rows:
            sys.stdout.write(orjson.dumps(row.as_dict()).decode() + "\n")
        return 0
    if not rows:
        print("no edges match")
        return 0
    print(render_table(rows))
    return 0
