"""`lineage-proxy verify`: the recorded flows against the approved baseline, as a CI gate and a timer job.

Every recorded edge that no baseline entry covers is printed with why (new caller, new purpose for a
caller, a label reaching a checkpoint it never reached, a route now served by another checkpoint, a new
kind of denial); approved entries no edge matched in the window are listed too, since an approval
nobody uses is one to retire. Exit 0: every flow approved; 1: some are not; 2: usage or file error.
`--write-baseline` starts a baseline from what was recorded, for people to review and edit.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import yaml

from proxy.baseline import (
    DENIALS,
    Approval,
    Baseline,
    BaselineError,
    Finding,
    Flow,
    is_pattern,
    load_baseline,
    parse_baseline,
)
from proxy.cli import stdout_json
from proxy.config import SqliteNameError, read_key, read_retired_keys, read_secret, sqlite_file
from proxy.logs import escaped
from proxy.record.integrity import Report
from proxy.record.store import (
    EdgeRow,
    EditedRow,
    NotALineageStore,
    StoreReplaced,
    StoreUnclear,
    StoreWaited,
    split_labels,
)
from proxy.record.stores import (
    ReadableStore,
    StoreUnreadable,
    is_database,
    open_reader,
    read_errors,
    shown,
    shown_path,
)

OK, UNAPPROVED, USAGE = 0, 1, 2

# ASCII digits, as every number the commands read (`serve --workers`, `demo --port`): `\d` took other scripts' too, and
# float() read them (`--since ٣٠d` was 30 days, until 2026-12-07)
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class UsageError(Exception):
    """A problem with what the command was given (a file, a duration): exit 2 with this message."""


def parse_duration(text: str) -> float:
    """`90s`, `15m`, `12h`, `30d`, `2w` into seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration such as 30d, 12h, 15m or 90s, not {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


_HEAD = re.compile(r"(?:sha256|hmac-sha256):[0-9a-f]{64}")


def parse_head(text: str) -> str:
    """A chain head as `verify --integrity` prints it (`sha256:` or `hmac-sha256:`, then 64 hex digits),
    so a mistyped one is a usage error rather than a head "not in the chain"."""
    head = text.strip().lower()
    if _HEAD.fullmatch(head) is None:
        raise argparse.ArgumentTypeError(f"expected a chain head as `verify --integrity` prints it, sha256:<64 hex "
                                         f"digits> or hmac-sha256:<64 hex digits>, not {text[:80]!r}")  # fmt: skip
    return head


def read_edges(path: str, since_s: float | None = None, now: float | None = None) -> list[EdgeRow]:
    """The store's edges last seen within the window (all of them without one); UsageError if unreadable."""
    try:
        store = open_reader(path)
    except StoreUnreadable as exc:
        raise UsageError(str(exc)) from None
    try:
        rows = store.rows()
    except read_errors() as exc:
        what = "" if isinstance(exc, EditedRow | StoreUnclear | StoreWaited) else "not a lineage store: "
        raise UsageError(f"{shown(path)}: {what}{exc}") from None
    finally:
        store.close()
    return recent(rows, since_s, now)


def recent(rows: list[EdgeRow], since_s: float | None, now: float | None = None) -> list[EdgeRow]:
    """The edges of `rows` last seen within the window (all of them without one)."""
    if since_s is None:
        return rows
    cutoff = (time.time() if now is None else now) - since_s
    return [row for row in rows if row.last_seen >= cutoff]


def edge_flow(row: EdgeRow) -> Flow:
    """A recorded edge as a baseline flow: every label it carried, in or out."""
    key = row.key
    labels = frozenset(split_labels(key.input_labels)) | frozenset(split_labels(key.output_labels))
    return Flow(key.caller, key.purpose, labels, key.checkpoint, key.decision, row.rule)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The store against the baseline: approved edges, the others with why, entries nothing matched."""

    approved: tuple[EdgeRow, ...]
    unapproved: tuple[tuple[EdgeRow, Finding], ...]
    unseen: tuple[Approval, ...]

    @property
    def ok(self) -> bool:
        return not self.unapproved

    def flows(self) -> tuple[int, int]:
        """The unapproved and approved flows, as `report` and `--write-baseline` count them: a flow several sidecars
        recorded (an edge each) is one, unapproved when any sidecar's edge of it is (a baseline naming `sidecars`
        approves it for some only), so the two add up to the store's flows."""
        unapproved = {row.key for row, _ in self.unapproved}
        return len(unapproved), len({row.key for row in self.approved} - unapproved)


def check(rows: Iterable[EdgeRow], baseline: Baseline) -> Verdict:
    approved: list[EdgeRow] = []
    unapproved: list[tuple[EdgeRow, Finding]] = []
    used: set[int] = set()
    entries = baseline.approvals
    # each sidecar's flows are judged by the entries that approve its flows (`sidecars`), indexed once per sidecar
    # (once in all when no entry names sidecars)
    restricted = baseline.restricted
    indexes: dict[str, tuple[dict[tuple[str, str], list[int]], list[int], Baseline]] = {}
    for row in rows:
        flow = edge_flow(row)
        sidecar = row.sidecar if restricted else ""
        index = indexes.get(sidecar)
        if index is None:
            index = indexes[sidecar] = _index(baseline, sidecar)
        named, patterned, judging = index
        matched = [i for i in named.get((flow.caller, flow.purpose), ()) if entries[i].matches(flow)]
        matched += [i for i in patterned if entries[i].matches(flow)]
        if matched:
            approved.append(row)
            used.update(matched)
            continue
        finding = judging.explain(flow)
        assert finding is not None
        unapproved.append((row, finding))
    unseen = tuple(entry for i, entry in enumerate(baseline.approvals) if i not in used)
    return Verdict(tuple(approved), tuple(unapproved), unseen)


def _index(baseline: Baseline, sidecar: str) -> tuple[dict[tuple[str, str], list[int]], list[int], Baseline]:
    """The entries approving `sidecar`'s flows (by their index in the file), those that name a caller and a purpose
    as they are by those names: only they and the entries with a pattern there can match a flow. Each flow matched
    against every entry cost a pattern match of its caller and purpose per entry: 100,000 flows against the 300
    entries `--write-baseline` made of them took 70 s. With the baseline resolved for that sidecar (its `explain`)."""
    named: dict[tuple[str, str], list[int]] = {}
    patterned: list[int] = []
    for i, entry in enumerate(baseline.approvals):
        if not entry.records(sidecar):
            continue
        if is_pattern(entry.caller) or is_pattern(entry.purpose):
            patterned.append(i)
        else:
            named.setdefault((entry.caller, entry.purpose), []).append(i)
    return named, patterned, baseline.for_sidecar(sidecar)


def when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def describe(row: EdgeRow) -> str:
    """One edge in words, for people reading a CI log, with the sidecar that recorded it (a fleet's deployment). Its
    names are escaped (`escaped`), as `edges` shows them: whoever can write the store chose them, and a terminal
    control or a line break in one wrote over the output."""
    caller, purpose, labels, checkpoint, output, decision, rule = map(escaped, row.key)
    how = decision + (f" by {rule}" if rule and decision != "allow" else "")
    calls = _calls(row.count)
    return (
        f"caller {caller}, purpose {purpose or '-'}, labels {labels or '-'} -> checkpoint "
        f"{checkpoint or '-'} (output labels {output or '-'}), {how}; {calls}, "
        f"last seen {when(row.last_seen)} UTC" + (f", recorded by {escaped(row.sidecar)}" if row.sidecar else "")
    )


def _window(since: str | None) -> str:
    return f"last seen in the last {since}" if since else "all recorded"


def _calls(n: int) -> str:
    return f"{n} call" if n == 1 else f"{n} calls"


def render_text(verdict: Verdict, baseline: str, store: str, since: str | None) -> str:
    lines: list[str] = []
    for row, finding in verdict.unapproved:
        lines.append(f"UNAPPROVED {finding.kind}: {escaped(finding.message)}")
        lines.append(f"    {describe(row)}")
        if row.reason and row.key.decision in DENIALS:
            lines.append(f"    the caller was told: {escaped(row.reason)}")
    for entry in verdict.unseen:
        recorded = f" recorded by {', '.join(s or '(none named)' for s in entry.sidecars)}" if entry.restricted else ""
        lines.append(escaped(f"UNSEEN {entry.location}: {entry.caller} acting for {entry.purpose or '-'} "
                             f"({', '.join(entry.decisions)}){recorded} matched no flow ({_window(since)})"))  # fmt: skip
    calls = sum(row.count for row, _ in verdict.unapproved)
    unapproved, approved = verdict.flows()  # flows, not edges: one several sidecars recorded is one flow
    summary = (
        f"{unapproved} unapproved flow{'s' if unapproved != 1 else ''} ({_calls(calls)}), "
        f"{approved} approved, {len(verdict.unseen)} approved entr{'ies' if len(verdict.unseen) != 1 else 'y'}"
        f" unseen; the flows of {store} ({_window(since)}) against {baseline}"
    )
    lines.append(("FAIL: " if verdict.unapproved else "ok: ") + summary)
    return "\n".join(lines)


def _entry(e: Approval) -> dict[str, object]:
    return {"location": e.location, "caller": e.caller, "purpose": e.purpose, "labels": e.labels,
            "checkpoints": e.checkpoints, "decisions": e.decisions, "rules": e.rules, "sidecars": e.sidecars,
            "note": e.note}  # fmt: skip


def render_json(verdict: Verdict, baseline: str, store: str, since_s: float | None) -> bytes:
    return orjson.dumps(_document(verdict, baseline, store, since_s), option=orjson.OPT_INDENT_2)


def _document(verdict: Verdict, baseline: str, store: str, since_s: float | None) -> dict[str, object]:
    return {
        "ok": verdict.ok,
        "baseline": baseline,
        "store": store,
        "since_s": since_s,
        "approved": verdict.flows()[1],
        "unapproved": [
            {"kind": finding.kind, "message": finding.message, "edge": row.as_dict()}
            for row, finding in verdict.unapproved
        ],
        "unseen": [_entry(e) for e in verdict.unseen],
    }


# -- writing a baseline


def _yaml(value: object) -> str:
    """One YAML value on one line, quoted only when it has to be."""
    text: str = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True)
    return text.removesuffix("\n...\n").removesuffix("\n")


# what '' stands for in an entry the writer makes: an edge keeps '' where nothing was known, and '' approves
# exactly that (a reviewer may delete the entry; verify then names such flows in words)
NO_PURPOSE = "  # none: the call named no purpose and there was no default"
# a call refused for its key (401) is recorded with no purpose, whatever it named or the defaults give
KEY_RULES = ("policy.anonymous", "callers")
NO_PURPOSE_KEY = "  # none: a call refused for its API key is recorded without a purpose, whatever it named"
NO_CHECKPOINT = "  # none known: the upstream failed (502/504) or its reply named none"
NO_SIDECAR = "  # none named: recorded before sidecars were named"


def write_baseline(
    rows: list[EdgeRow], *, store: str, window: str, now: float | None = None, per_sidecar: bool = False
) -> str:
    """A baseline approving exactly what was recorded: one entry per caller, purpose, checkpoint,
    decision and rule, with the labels seen there. Comments say what each entry rests on, so the
    reviewer knows what they are approving; the file is meant to be edited, then kept under review.
    `per_sidecar`: one entry per sidecar that recorded it too, restricted to that sidecar (`sidecars`); else an
    entry approves its flows whatever sidecar records them."""
    groups: dict[tuple[str, str, str, str, str, str], list[EdgeRow]] = {}
    for row in rows:
        key = row.key
        sidecar = row.sidecar if per_sidecar else ""
        groups.setdefault((key.caller, key.purpose, key.checkpoint, key.decision, key.rule, sidecar), []).append(row)
    stamp = when(time.time() if now is None else now)
    out = [
        "# lineage-proxy baseline: the flows approved for this deployment.",
        "#",
        # a flow several sidecars recorded (an edge each) is one flow
        f"# Started by `lineage-proxy verify --write-baseline` on {stamp} UTC from the {len({r.key for r in rows})} "
        "flows of",
        f"# {escaped(store)} ({window}).",
        "#",
        "# Every entry below is a flow that HAPPENED, not one anybody approved yet: review each, delete",
        "# what must not happen, and widen with patterns what may (labels `pii:*`,",
        "# checkpoints `meta-llama/Llama-3.1-8B-Instruct@*`; shell-style: * any text, ? one character,",
        "# [...] one of a set; a recorded name holding one of those is written with it in brackets: `[*]`).",
        "#",
        "# An entry approves a flow when its caller, purpose, decision and rule match, its checkpoint matches",
        "# one of `checkpoints` (omitted: any), and every label it carries, in or out, matches one of",
        "# `labels` (omitted: unlabelled data only). `decisions` omitted: allow and reroute. lineage-proxy",
        "# only reads this file and never rewrites it, so comments you add here stay.",
        *(["# `sidecars`: the sidecars (lineage.sidecar) whose flows it approves; '' is the edges recorded before",
           "# sidecars were named. Omitted: any sidecar's."] if per_sidecar else []),
        "version: 1",
    ]  # fmt: skip
    if not groups:
        out.append("flows: []  # nothing was recorded: every flow is new")
        return "\n".join(out) + "\n"
    out.append("flows:")

    def order(
        item: tuple[tuple[str, str, str, str, str, str], list[EdgeRow]],
    ) -> tuple[bool, str, str, str, str, str]:
        caller, purpose, checkpoint, decision, _, sidecar = item[0]
        return decision in DENIALS, caller, purpose, checkpoint, decision, sidecar

    for (caller, purpose, checkpoint, decision, rule, sidecar), group in sorted(groups.items(), key=order):
        labels = sorted({label for row in group for label in edge_flow(row).labels})
        calls = sum(row.count for row in group)
        first, last = min(row.first_seen for row in group), max(row.last_seen for row in group)
        span = f"{when(first)[:10]} .. {when(last)[:10]}"
        out.append("")
        if decision in DENIALS:
            reasons = sorted({row.reason for row in group if row.reason})
            out.append(f"  # expected {'denial' if decision == 'deny' else 'audit-mode denial'}: "
                       f"{_calls(calls)}, {span}")  # fmt: skip
            # escaped: a line break in a reason (the store's) ended the comment, and what followed was entries
            out.extend(f"  # the caller was told: {escaped(reason)}" for reason in reasons[:3])
        else:
            out.append(f"  # {_calls(calls)}, {span}")
        out.append(f"  - caller: {_yaml(caller)}")
        unnamed = NO_PURPOSE_KEY if decision == "deny" and rule in KEY_RULES else NO_PURPOSE
        out.append(f"    purpose: {_yaml(purpose)}" + ("" if purpose else unnamed))
        out.append(f"    labels: {_yaml(labels)}")
        if decision != "deny":
            out.append(f"    checkpoints: {_yaml([_literal(checkpoint)])}" + ("" if checkpoint else NO_CHECKPOINT))
        out.append(f"    decisions: {_yaml([decision])}")
        if rule and decision != "allow":
            out.append(f"    rules: {_yaml([_literal(rule)])}")
        if per_sidecar:
            out.append(f"    sidecars: {_yaml([_literal(sidecar)])}" + ("" if sidecar else NO_SIDECAR))
    return "\n".join(out) + "\n"


_GLOB = str.maketrans({"*": "[*]", "?": "[?]", "[": "[[]"})


def _literal(value: str) -> str:
    """A recorded name as a pattern matching it alone: a checkpoint an upstream named `*` (one that echoes the
    requested model), or the rule `route:*` of the fallback route, would otherwise approve every one."""
    return value.translate(_GLOB)


# -- the command


def _error(message: str) -> int:
    print(f"lineage-proxy verify: {message}", file=sys.stderr)
    return USAGE


def run_verify(args: argparse.Namespace) -> int:
    if getattr(args, "integrity", False):
        adopt = getattr(args, "adopt_head", None)
        if adopt:
            return run_adopt(args.store, args.key_file, adopt.strip())
        if getattr(args, "baseline", None):
            return run_verified_baseline(args)
        return run_integrity(args.store, args.key_file, args.json, getattr(args, "expect_head", None) or (),
                             retired_files=getattr(args, "retired_key_file", None) or ())  # fmt: skip
    if getattr(args, "key_file", None):
        return _error("--key-file goes with --integrity")
    since_s = parse_duration(args.since) if args.since else None
    try:
        rows = read_edges(args.store, since_s)
    except UsageError as exc:
        return _error(str(exc))
    if args.write_baseline:
        return _write(args, rows, since_s)
    baseline = _baseline(args.baseline)
    if baseline is None:
        return USAGE
    verdict = check(rows, baseline)
    store = shown(args.store)  # a database URL without its password: these lines go to CI logs
    if args.json:
        sys.stdout.write(stdout_json(render_json(verdict, shown_path(args.baseline), store, since_s)) + "\n")
    else:
        print(render_text(verdict, shown_path(args.baseline), store, args.since))
    return OK if verdict.ok else UNAPPROVED


def _baseline(path: str) -> Baseline | None:
    """The baseline at `path`; None, its problems said, when it cannot be read or is not valid."""
    try:
        return load_baseline(path)
    except BaselineError as exc:
        print(f"lineage-proxy verify: {path}: invalid baseline:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def run_integrity(
    path: str,
    key_file: str | None,
    as_json: bool,
    expect_heads: Sequence[str] = (),
    key: bytes | None = None,
    retired_files: Sequence[str] = (),
) -> int:
    """`verify --integrity`: exit 0 when the chain is intact and matches the edges (and holds every head
    in `expect_heads`), 1 naming the first broken link or the head no longer there, 2 when the store or
    key cannot be read, or a keyed chain is verified without its key. `retired_files`: the keys `key_file`
    replaced, oldest first (entries signed before the rotation verify with them)."""
    keys = _keys(key_file, retired_files, key)
    if isinstance(keys, int):
        return keys
    read = _verified(path, *keys, lambda store, given, retired: (store.integrity(given, retired=retired), []))
    if isinstance(read, int):
        return read
    report = _holding(read[0], expect_heads)
    if as_json:
        sys.stdout.write(stdout_json(orjson.dumps(_integrity_document(report, path))) + "\n")
    else:
        print_integrity(report, path)
    return OK if report.intact else UNAPPROVED


def run_verified_baseline(args: argparse.Namespace) -> int:
    """`verify --baseline FILE --integrity`: the flows judged are those of a record that verifies, read in the same
    transaction as its verdict, so that an edge row edited to look approved (its purpose, labels or decision) fails
    the gate instead of passing it. Exit 1 when the record does not verify (its flows are not judged) or a flow is
    unapproved, 2 on a usage or file error (a keyed chain without --key-file too)."""
    since_s = parse_duration(args.since) if args.since else None
    baseline = _baseline(args.baseline)
    if baseline is None:
        return USAGE
    read = verified_rows(args)
    if isinstance(read, int):
        return read
    report, rows = read
    store, source = shown(args.store), shown_path(args.baseline)
    # a record that does not verify: its rows are not what the chain signed, and judged they pass what an edit made
    # look approved
    if not report.intact:
        if args.json:
            document = {"ok": False, "baseline": source, "store": store, "since_s": since_s,
                        "integrity": _integrity_document(report, args.store)}  # fmt: skip
            sys.stdout.write(stdout_json(orjson.dumps(document, option=orjson.OPT_INDENT_2)) + "\n")
        else:
            print_integrity(report, args.store)
            print(f"FAIL: the flows of {store} are not judged against {source}: its record does not verify")
        return UNAPPROVED
    verdict = check(recent(rows, since_s), baseline)
    if args.json:
        document = _document(verdict, source, store, since_s)
        document["integrity"] = _integrity_document(report, args.store)
        sys.stdout.write(stdout_json(orjson.dumps(document, option=orjson.OPT_INDENT_2)) + "\n")
    else:
        print_integrity(report, args.store)
        print(render_text(verdict, source, store, args.since))
    return OK if verdict.ok else UNAPPROVED


def verified_rows(args: argparse.Namespace, error: Callable[[str], int] = _error) -> tuple[Report, list[EdgeRow]] | int:
    """The chain's verdict on the store `args.store` (with `args.key_file`, `args.retired_key_file`, naming the first of
    `args.expect_head` no longer in it) and its edge rows, read in the same transaction: the rows are those the verdict
    is about, never a table edited between two reads. `error`'s code, said, when a key or the store cannot be read or
    the chain is keyed and no key was given: the gate's (`run_verified_baseline`) and `report --integrity`'s."""
    keys = _keys(args.key_file, args.retired_key_file or (), error=error)
    if isinstance(keys, int):
        return keys
    read = _verified(args.store, *keys, lambda store, given, retired: store.for_copy(given, retired)[:2], error)
    if isinstance(read, int):
        return read
    return _holding(read[0], args.expect_head or ()), read[1]


def _keys(
    key_file: str | None, retired_files: Sequence[str], key: bytes | None = None, error: Callable[[str], int] = _error
) -> tuple[bytes | None, tuple[bytes, ...]] | int:
    """The key to verify with (`key`: read already, else `key_file`'s) and the retired keys before it; `error`'s code
    (USAGE), said, when one cannot be read."""
    try:
        key = key if key is not None else read_secret(key_file) if key_file else None
    except OSError as exc:
        return error(f"{key_file}: cannot read the key: {exc.strerror or exc}")
    retired = read_retired_keys(retired_files)
    if isinstance(retired, str):
        return error(retired)
    return key, retired


_Read = Callable[[ReadableStore, bytes | None, tuple[bytes, ...]], tuple[Report, list[EdgeRow]]]


def _verified(
    path: str, key: bytes | None, retired: tuple[bytes, ...], read: _Read, error: Callable[[str], int] = _error
) -> tuple[Report, list[EdgeRow]] | int:
    """`read(store, key, retired)` on the store at `path`: its chain's verdict (and the rows it verified); `error`'s
    code (USAGE), said, when the store cannot be read, or the chain is keyed and no key was given (a usage error, not
    a verdict)."""
    if not is_database(path):
        try:
            file = sqlite_file(path)  # a `file:` URI's file, as the writer opens it
        except SqliteNameError as exc:
            return error(shown_path(str(exc)))
        if os.path.isdir(file) or not os.path.exists(file):
            return error(f"{shown(path)}: no lineage store there (is lineage.store set to this path?)")
    errors: tuple[type[Exception], ...] = (*read_errors(), ValueError)
    try:
        store = open_reader(path)
        try:
            found = read(store, key, retired)
        finally:
            store.close()
    except StoreUnreadable as exc:
        return error(str(exc))
    except NotALineageStore as exc:
        return error(f"{shown(path)}: not a lineage store ({exc})")
    except (StoreWaited, StoreReplaced) as exc:  # said as it is
        return error(f"{shown(path)}: {exc}")
    except errors as exc:
        return error(f"{shown(path)}: cannot read it as a lineage store: {exc}")
    if found[0].needs_key:
        return error(f"{shown(path)}: the chain is signed with an HMAC key: give --key-file "
                      "(lineage.integrity_key_file) to verify it")  # fmt: skip
    return found


def _holding(report: Report, expect_heads: Sequence[str]) -> Report:
    """`report`, naming the first of `expect_heads` the intact chain no longer holds, if one is not."""
    if not report.intact:
        return report
    gone = [head for head in expect_heads if head.strip() not in report.hashes]
    if not gone:
        return report
    since = _when(report.oldest_at)
    return dataclasses.replace(report, problem=(
        f"the head {gone[0].strip()} is not in the chain. Its oldest entry, the store's start or its last "
        "retention purge (which replaces the entries before it with a snapshot), says it was written "
        f"{since} (a time the chain does not sign): a head recorded before a purge can no longer be "
        "checked; otherwise the entries after it were cut away, with their counts, or the record was "
        "rebuilt"))  # fmt: skip


def _integrity_document(report: Report, path: str) -> dict[str, object]:
    return {"store": shown(path), "intact": report.intact, "entries": report.entries, "head": report.head,
            "keyed": report.keyed, "problem": report.problem, "schema": report.schema,
            "warning": report.warning}  # fmt: skip


def print_integrity(report: Report, path: str) -> None:
    path = shown(path)
    where = path if report.schema is None else f"{path} (schema {escaped(report.schema)})"
    if report.intact:
        print(f"{where}: intact: {report.entries} chain entries, every edge matches; head {report.head}"
              + ("" if report.keyed else " (unkeyed: set lineage.integrity_key_file to sign the chain)"))  # fmt: skip
        print(
            "record the head elsewhere: `verify --integrity --expect-head HEAD` later proves the chain still "
            "holds it, so nothing up to it was cut away"
        )
    else:
        print(f"{where}: NOT intact: {report.problem}")
    print_warning(report)


def print_warning(report: Report) -> None:
    """What is not wrong with the record `report` is about but may soon be (a writer's search path), if anything."""
    if report.warning is not None:
        print(f"warning: {report.warning}")


def _write(args: argparse.Namespace, rows: list[EdgeRow], since_s: float | None) -> int:
    target = Path(args.write_baseline)
    if target.exists() and not args.force:
        return _error(f"{target}: exists; a reviewed baseline is never overwritten (--force replaces it)")
    # the store as every reader shows it: a database URL's password never goes into a file made to be committed
    text = write_baseline(rows, store=shown(args.store), window=_window(args.since),
                          per_sidecar=getattr(args, "per_sidecar", False))  # fmt: skip
    try:
        parse_baseline(text, source=str(target))  # what is written must read back
    except BaselineError as exc:
        return _error("internal error: the written baseline does not read back: " + "; ".join(exc.problems))
    try:
        partial = target.with_name(f".{target.name}.tmp")
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)
    except OSError as exc:
        return _error(f"{target}: cannot write: {exc.strerror or exc}")
    entries = text.count("\n  - caller: ")
    print(
        f"wrote {shown_path(str(target))}: {entries} entr{'y' if entries == 1 else 'ies'} from "
        f"{len({r.key for r in rows})} flows; "
        "review it before use"
    )
    return OK


def _when(ts: object) -> str:
    """A chain entry's time for a message; the column is not signed, so whatever it holds is shown safely."""
    try:
        return dt.datetime.fromtimestamp(float(ts), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return f"at {escaped(repr(ts))[:40]}"


def run_adopt(path: str, key_file: str, head: str) -> int:
    """`verify --integrity --key-file K --adopt-head HEAD`: the chain as it stands verifies (its unsigned
    entries unkeyed, any signed ones with K), HEAD is its newest entry, and a signed entry that adds
    nothing goes on top, so the keyed writers sign from there on. Exit 0 adopted, 1 when the chain does not
    verify or HEAD is not its newest entry, 2 on a usage or file error."""
    from proxy.errors import StartupError
    from proxy.record.postgres import PostgresStore
    from proxy.record.store import SqliteStore

    key = read_key(key_file, existing=True)  # it signs from here on: a key the proxy would take, no shorter
    if isinstance(key, str):
        return _error(key)
    errors: tuple[type[Exception], ...] = (*read_errors(), ValueError, StartupError)
    try:
        reader = open_reader(path)
        try:
            report = reader.integrity(key, strict=False)
        finally:
            reader.close()
        if not report.intact:
            print(f"{shown(path)}: NOT intact: {report.problem}; nothing adopted")
            return UNAPPROVED
        if report.keyed:
            print(f"{shown(path)}: its newest entry is signed already: nothing to adopt")
            return OK
        if report.head != head:
            print(f"{shown(path)}: its newest entry is {report.head}, not {head}: nothing adopted (adopt the head "
                  "you checked)")  # fmt: skip
            return UNAPPROVED
        writer = (PostgresStore(path, key=key, adopt_head=head) if is_database(path)
                  else SqliteStore(path, key=key, adopt_head=head))  # fmt: skip
        writer.close()
    except StoreUnreadable as exc:
        return _error(str(exc))
    except errors as exc:
        return _error(f"{shown(path)}: {exc}")
    return run_integrity(path, key_file, False, key=key)  # the key as read: a pipe is read only once
