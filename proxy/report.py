"""`lineage-proxy report`: one self-contained HTML file a privacy reviewer reads.

What it shows: the flow graph (labels → checkpoints → purpose and caller, line width by calls, denials
and unapproved flows in their own colours), every flow, the denials with the reason each caller was
given, the checkpoints seen and when each changed, flows outside the approved baseline, and the policy
in force when a config is given.

The file fetches nothing when opened: CSS and the SVG graph are inline, there is no script, and a
Content-Security-Policy of `default-src 'none'` makes the browser refuse any fetch a future edit might
add. `render` is pure (rows in, text out); `run_report` does the I/O.
"""

from __future__ import annotations

import argparse
import html
import math
import os
import stat
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy import __version__
from proxy.baseline import NO_WEIGHTS, Baseline, BaselineError, Finding, load_baseline
from proxy.config import Config
from proxy.errors import ConfigError
from proxy.record.integrity import Report
from proxy.record.store import EdgeKey, EdgeRow, split_labels
from proxy.record.stores import shown, shown_path
from proxy.verify import (
    UsageError,
    Verdict,
    check,
    parse_duration,
    print_integrity,
    print_warning,
    read_edges,
    recent,
    verified_rows,
    when,
)

REFUSED = "refused at the boundary"
UNLABELLED = "(no labels)"
# how each kind of flow is drawn and named: css class, legend text
KINDS = {
    "allow": "allowed",
    "reroute": "rerouted to a compliant upstream",
    "audit-deny": "would be denied (audit mode)",
    "deny": "denied",
    "unapproved": "not in the approved baseline",
}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def kind_of(row: EdgeRow, unapproved: set[EdgeKey]) -> str:
    """The colour a flow is drawn in: a denial is red whatever the baseline says; else unapproved."""
    if row.key.decision == "deny":
        return "deny"
    if row.key in unapproved:
        return "unapproved"
    return row.key.decision if row.key.decision in KINDS else "allow"


# -- the graph


@dataclass(frozen=True, slots=True)
class Node:
    column: int
    name: str
    sub: str
    x: float
    y: float
    width: float
    calls: int
    refused: bool = False


NODE_H, GAP, TOP = 34.0, 12.0, 40.0
COLUMNS = ((16.0, 230.0), (440.0, 300.0), (930.0, 214.0))  # x, width: labels, checkpoints, purpose · caller
VIEW_W = 1160.0


def _fit(text: str, width: float, size: float = 12.5) -> str:
    """Shorten text to what fits `width` px (SVG cannot wrap); the full text is in the node's title."""
    room = max(4, int((width - 52) / (size * 0.58)))
    return text if len(text) <= room else text[: room - 1] + "…"


def _order(names: dict[str, int], weights: dict[tuple[str, str], int], anchor: dict[str, float]) -> list[str]:
    """Nodes of one column by the weighted mean position of their neighbours: fewer crossing lines. The sums in
    one pass over the links (each node's own pass over all of them: over ten minutes for 100,000 flows)."""
    totals: dict[str, int] = defaultdict(int)
    moments: dict[str, float] = defaultdict(float)
    for (a, b), w in weights.items():
        totals[a] += w
        moments[a] += anchor.get(b, 0.0) * w

    def centre(name: str) -> tuple[float, int, str]:
        return moments.get(name, 0.0) / (totals.get(name) or 1), -names[name], name

    return sorted(names, key=centre)


GRAPH_MOST = 40  # nodes a column shows at most: the rest are one node ("+N more labels"), with their calls and links


def _folded(counts: dict[str, int], first: frozenset[str], what: str) -> dict[str, str] | None:
    """What each node of a column is drawn as when it has more than GRAPH_MOST: the busiest (`first` before them:
    zoned labels, the refused node, what a reviewer looks for), and one node for the rest; None when all fit. A
    store a caller filled with a new label a call drew 100,000 nodes (42 MB of SVG no one could read)."""
    if len(counts) <= GRAPH_MOST:
        return None
    names = sorted(counts, key=lambda name: (name not in first, -counts[name], name))
    rest = f"+{len(names) - GRAPH_MOST + 1} more {what}"
    return {name: name if i < GRAPH_MOST - 1 else rest for i, name in enumerate(names)}


def _fold(table: dict[Any, int], index: int, drawn: dict[str, str]) -> dict[Any, int]:
    """`table`'s calls by its keys with the name at `index` (the key itself, or in a tuple) as `drawn`."""
    out: dict[Any, int] = defaultdict(int)
    for key, calls in table.items():
        if isinstance(key, tuple):
            out[(*key[:index], drawn[key[index]], *key[index + 1 :])] += calls
        else:
            out[drawn[key]] += calls
    return out


def graph(rows: list[EdgeRow], unapproved: set[EdgeKey], zoned: frozenset[str] = frozenset()) -> str:
    """The flow graph as inline SVG: labels → checkpoints → purpose · caller."""
    if not rows:
        return '<p class="empty">No flows were recorded in this window.</p>'
    left: dict[tuple[str, str, str], int] = defaultdict(int)  # (label, checkpoint, kind) -> calls
    right: dict[tuple[str, str, str], int] = defaultdict(int)  # (checkpoint, purpose·caller, kind) -> calls
    labels: dict[str, int] = defaultdict(int)
    checkpoints: dict[str, int] = defaultdict(int)
    users: dict[str, int] = defaultdict(int)
    for row in rows:
        key = row.key
        kind = kind_of(row, unapproved)
        checkpoint = REFUSED if key.decision == "deny" else (key.checkpoint or "(checkpoint unknown)")
        user = f"{key.purpose or '(no purpose)'}\x00{key.caller}"
        checkpoints[checkpoint] += row.count
        users[user] += row.count
        right[(checkpoint, user, kind)] += row.count
        for label in split_labels(key.input_labels) or [UNLABELLED]:
            labels[label] += row.count
            left[(label, checkpoint, kind)] += row.count
    drawn = _folded(labels, zoned, "labels")
    if drawn is not None:
        labels, left = _fold(labels, 0, drawn), _fold(left, 0, drawn)
    drawn = _folded(checkpoints, frozenset({REFUSED}), "checkpoints")
    if drawn is not None:
        checkpoints, left, right = _fold(checkpoints, 0, drawn), _fold(left, 1, drawn), _fold(right, 0, drawn)
    drawn = _folded(users, frozenset(), "purposes · callers")
    if drawn is not None:
        users, right = _fold(users, 0, drawn), _fold(right, 1, drawn)

    # checkpoints by calls, the refused node last; then each side by its neighbours' positions
    middle = sorted(checkpoints, key=lambda c: (c == REFUSED, -checkpoints[c], c))
    middle_at = {name: float(i) for i, name in enumerate(middle)}
    to_mid: dict[tuple[str, str], int] = defaultdict(int)
    for (label, checkpoint, _), calls in left.items():
        to_mid[(label, checkpoint)] += calls
    from_mid: dict[tuple[str, str], int] = defaultdict(int)
    for (checkpoint, user, _), calls in right.items():
        from_mid[(user, checkpoint)] += calls
    columns = [_order(labels, to_mid, middle_at), middle, _order(users, from_mid, middle_at)]
    counts = [labels, checkpoints, users]
    tallest = max(len(c) for c in columns)
    height = TOP + tallest * (NODE_H + GAP) + 24
    nodes: dict[tuple[int, str], Node] = {}
    for index, names in enumerate(columns):
        x, width = COLUMNS[index]
        offset = TOP + (tallest - len(names)) * (NODE_H + GAP) / 2
        for i, name in enumerate(names):
            main, _, sub = name.partition("\x00")
            nodes[(index, name)] = Node(index, main, sub, x, offset + i * (NODE_H + GAP), width,
                                        counts[index][name], name == REFUSED)  # fmt: skip

    top = max(max(left.values(), default=1), max(right.values(), default=1))

    def stroke(calls: int) -> float:
        return round(2.0 + 16.0 * math.sqrt(calls / top), 1)

    links: list[str] = []
    for column, table in ((0, left), (1, right)):
        # thick lines first, so thin ones stay visible on top
        for (a, b, kind), calls in sorted(table.items(), key=lambda item: -item[1]):
            src, dst = nodes[(column, a)], nodes[(column + 1, b)]
            x1, y1 = src.x + src.width, src.y + NODE_H / 2
            x2, y2 = dst.x, dst.y + NODE_H / 2
            bend = (x2 - x1) * 0.5
            what = f"{a.replace(chr(0), ' · ')} → {b.replace(chr(0), ' · ')}: {calls} call{'s' if calls != 1 else ''}"
            links.append(
                f'<path class="link {kind}" data-kind="{kind}" stroke-width="{stroke(calls)}" '
                f'd="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}">'
                f"<title>{esc(what)} ({esc(KINDS[kind])})</title></path>"
            )
    boxes: list[str] = []
    for node in nodes.values():
        css = "node refused" if node.refused else f"node col{node.column}"
        if node.column == 0 and node.name in zoned:
            css += " zoned"
        title = node.name + (f" · {node.sub}" if node.sub else "")
        text_y = node.y + (14.0 if node.sub else 21.5)
        sub = (
            f'<text class="sub" x="{node.x + 10:.1f}" y="{node.y + 27.5:.1f}">{esc(_fit(node.sub, node.width, 11))}</text>'
            if node.sub
            else ""
        )
        boxes.append(
            f'<g class="{css}" data-name="{esc(title)}"><title>{esc(title)}: {node.calls} calls</title>'
            f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="{node.width:.1f}" height="{NODE_H:.0f}" rx="6"/>'
            f'<text x="{node.x + 10:.1f}" y="{text_y:.1f}">{esc(_fit(node.name, node.width))}</text>{sub}'
            f'<text class="count" x="{node.x + node.width - 8:.1f}" y="{node.y + 21.5:.1f}">{node.calls}</text></g>'
        )
    heads = "".join(
        f'<text class="head" x="{x:.1f}" y="20">{esc(text)}</text>'
        for (x, _), text in zip(COLUMNS, ("DATA LABELS", "CHECKPOINTS", "PURPOSE · CALLER"), strict=True)
    )
    return (
        f'<svg id="flow-graph" role="img" aria-label="flow graph" viewBox="0 0 {VIEW_W:.0f} {height:.0f}" '
        f'width="100%" preserveAspectRatio="xMidYMin meet">'
        f'{heads}<g class="links">{"".join(links)}</g><g class="nodes">{"".join(boxes)}</g></svg>'
    )


def legend(kinds: Iterable[str]) -> str:
    present = set(kinds)
    items = "".join(
        f'<span class="key"><svg width="26" height="10" aria-hidden="true"><line class="link {k}" x1="1" y1="5" '
        f'x2="25" y2="5" stroke-width="5"/></svg>{esc(text)}</span>'
        for k, text in KINDS.items()
        if k in present
    )
    return f'<div class="legend">{items}<span class="key muted">line width: calls</span></div>'


# -- tables


# What a table and a cell of the store's names show at most. A store a caller filled with a new label set a call (each
# call a flow of its own, its labels up to 128 characters each and 256 a call) made a report of 24 KB a flow, every
# flow's labels again in its checkpoint's row: 100,000 such calls, gigabytes no browser opens. The graph folds its
# columns (GRAPH_MOST); the tables show the TABLE_MOST rows of most calls (a caller's flows of one call each hide no
# busier one) and say what they leave out, and which command lists it all.
TABLE_MOST = 500
PILLS_MOST = 16  # labels a cell shows (zoned first), then "+N more"
STEPS_MOST = 8  # a caller's checkpoint changes shown: the newest, after how many came before


def pills(labels: Iterable[str], zoned: frozenset[str] = frozenset(), most: int | None = PILLS_MOST) -> str:
    """Labels as pills: at most `most` (None: all, for the config's own), zoned labels first, then "+N more"."""
    names = list(labels)
    more = ""
    if most is not None and len(names) > most:
        names = sorted(names, key=lambda label: label not in zoned)  # stable: the zoned first, in their order
        more = f'<span class="muted">+{len(names) - most + 1} more</span>'
        names = names[: most - 1]
    items = [f'<span class="pill{" zoned" if label in zoned else ""}">{esc(label)}</span>' for label in names]
    return "".join(items) + more or '<span class="muted">none</span>'


def _left_out(rows: list[EdgeRow], what: str, which: str, lister: str) -> str:
    """The line under a table that shows the first TABLE_MOST of `rows` only: what it left out, and what lists it."""
    if len(rows) <= TABLE_MOST:
        return ""
    return _not_shown(len(rows) - TABLE_MOST, sum(r.count for r in rows[TABLE_MOST:]), what, which, lister)


def _not_shown(left: int, calls: int, what: str, which: str, lister: str) -> str:
    """`which`: how those left out differ from those shown ("" when only by their order)."""
    which = f"{which}, " if which else ""
    return (
        f'<p class="muted">{left} more {esc(what)} ({esc(which)}{calls} call{"s" if calls != 1 else ""}) not shown '
        f"here: <code>{esc(lister)}</code> lists every one.</p>"
    )


def chip(kind: str, text: str | None = None) -> str:
    return f'<span class="chip {kind}">{esc(text or kind)}</span>'


def table(head: Iterable[str], body: list[str], css: str = "", after: str = "") -> str:
    """`after`: what follows the table (`_left_out`)."""
    if not body:
        return '<p class="empty">None.</p>'
    cells = "".join(f"<th>{esc(h)}</th>" for h in head)
    return (
        f'<div class="scroll"><table class="{css}"><thead><tr>{cells}</tr></thead><tbody>{"".join(body)}</tbody>'
        f"</table></div>{after}"
    )


def _day(ts: float) -> str:
    return when(ts)[:16]


def flows_table(
    rows: list[EdgeRow], unapproved: set[tuple[EdgeKey, str]], zoned: frozenset[str], baseline: bool
) -> str:
    """`unapproved`: the edges (flow, sidecar) the baseline does not approve: a row is one sidecar's edge, and an entry
    naming `sidecars` approves a flow for some sidecars only."""
    body = []
    # the TABLE_MOST shown, newest first
    busiest = sorted(rows, key=lambda r: (-r.count, -r.last_seen, r.key, r.sidecar))
    for row in sorted(busiest[:TABLE_MOST], key=lambda r: (-r.last_seen, r.key, r.sidecar)):
        key = row.key
        approved = ""
        if baseline:
            no = (key, row.sidecar) in unapproved
            approved = "<td>" + (chip("unapproved", "no") if no else chip("ok", "yes")) + "</td>"
        body.append(
            f'<tr><td class="who">{esc(key.caller)}</td><td class="who">{esc(key.purpose or "-")}</td>'
            f'<td>{pills(split_labels(key.input_labels), zoned)}</td><td class="mono">{esc(key.checkpoint or "-")}</td>'
            f"<td>{pills(split_labels(key.output_labels), zoned)}</td><td>{chip(kind_of(row, set()), key.decision)}</td>"
            f'<td class="mono rule">{esc(row.rule or "-")}</td>{approved}{_recorded_by(row)}'
            f'<td class="num">{row.count}</td><td class="when">{_day(row.first_seen)}</td>'
            f'<td class="when">{_day(row.last_seen)}</td></tr>'
        )
    head = ["caller", "purpose", "input labels", "checkpoint", "output labels", "decision", "rule"]
    head += ["approved"] if baseline else []
    return table([*head, "recorded by", "calls", "first seen (UTC)", "last seen (UTC)"], body,
                 after=_left_out(busiest, "flows", "of fewer calls", "lineage-proxy edges"))  # fmt: skip


def _recorded_by(row: EdgeRow) -> str:
    """The cell naming the sidecar that recorded a flow (`lineage.sidecar`): which deployment of a fleet it came
    through; one recorded before sidecars were named says so."""
    if row.sidecar:
        return f'<td class="mono">{esc(row.sidecar)}</td>'
    return '<td class="muted" title="recorded before sidecars were named">-</td>'


def denials_table(rows: list[EdgeRow], zoned: frozenset[str]) -> str:
    body = []
    denied = sorted((r for r in rows if r.key.decision in ("deny", "audit-deny")),
                    key=lambda r: (-r.count, r.key, r.sidecar))  # fmt: skip
    for row in denied[:TABLE_MOST]:
        key = row.key
        reason = (
            esc(row.reason) if row.reason else '<span class="muted">not recorded (a store older than reasons)</span>'
        )
        body.append(
            f'<tr><td class="who">{esc(key.caller)}</td><td class="who">{esc(key.purpose or "-")}</td>'
            f"<td>{pills(split_labels(key.input_labels), zoned)}</td><td>{chip(kind_of(row, set()), key.decision)}</td>"
            f'<td class="mono rule">{esc(row.rule or "-")}</td>{_recorded_by(row)}<td class="reason">{reason}</td>'
            f'<td class="num">{row.count}</td><td class="when">{_day(row.last_seen)}</td></tr>'
        )
    return table(["caller", "purpose", "labels", "decision", "rule", "recorded by", "reason the caller was given",
                  "calls", "last seen (UTC)"], body, after=_left_out(denied, "denied flows", "of fewer calls",
                                                            "lineage-proxy edges"))  # fmt: skip


def unapproved_table(findings: tuple[tuple[EdgeRow, Finding], ...], zoned: frozenset[str]) -> str:
    body = []
    # the TABLE_MOST of most calls (the newest first among equals) shown, in the order verify lists them
    busiest = sorted(range(len(findings)), key=lambda i: (-findings[i][0].count, -findings[i][0].last_seen, i))
    for row, finding in (findings[i] for i in sorted(busiest[:TABLE_MOST])):
        key = row.key
        body.append(
            f'<tr><td>{chip("unapproved", finding.kind)}</td><td class="reason">{esc(finding.message)}</td>'
            f'<td class="who">{esc(key.caller)}</td><td class="who">{esc(key.purpose or "-")}</td>'
            f'<td>{pills(split_labels(key.input_labels), zoned)}</td><td class="mono">{esc(key.checkpoint or "-")}</td>'
            f'<td>{chip(kind_of(row, set()), key.decision)}</td><td class="num">{row.count}</td>'
            f'<td class="when">{_day(row.first_seen)}</td></tr>'
        )
    return table(["why", "what is new", "caller", "purpose", "labels", "checkpoint", "decision", "calls",
                  "first seen (UTC)"], body, after=_left_out([findings[i][0] for i in busiest], "unapproved flows", "of fewer calls",
                                                             "lineage-proxy verify --baseline"))  # fmt: skip


def checkpoints_section(rows: list[EdgeRow], zoned: frozenset[str]) -> str:
    """Each checkpoint with when it was first and last seen, and where the checkpoint serving one caller
    and purpose changed: the moment a model swap shows up in the record."""
    seen: dict[str, list[EdgeRow]] = defaultdict(list)
    for row in rows:
        if row.key.checkpoint and row.key.decision != "deny" and row.key.checkpoint != NO_WEIGHTS:
            seen[row.key.checkpoint].append(row)
    calls = {name: sum(r.count for r in group) for name, group in seen.items()}
    busiest = sorted(seen, key=lambda name: (-calls[name], name))  # the table's TABLE_MOST, by first seen
    body = []
    for name in sorted(busiest[:TABLE_MOST], key=lambda name: min(r.first_seen for r in seen[name])):
        group = seen[name]
        users = sorted({f"{r.key.caller} · {r.key.purpose or '-'}" for r in group})
        labels = sorted({label for r in group for label in split_labels(r.key.input_labels)})
        more = f'<br><span class="muted">+{len(users) - PILLS_MOST + 1} more</span>' if len(users) > PILLS_MOST else ""
        users = users[: PILLS_MOST - 1] if more else users
        body.append(
            f'<tr><td class="mono">{esc(name)}</td><td class="when">{_day(min(r.first_seen for r in group))}</td>'
            f'<td class="when">{_day(max(r.last_seen for r in group))}</td><td class="num">{calls[name]}</td>'
            f"<td>{'<br>'.join(esc(u) for u in users)}{more}</td><td>{pills(labels, zoned)}</td></tr>"
        )
    left = busiest[TABLE_MOST:]
    after = _not_shown(len(left), sum(calls[name] for name in left), "checkpoints", "of fewer calls",
                       "lineage-proxy edges") if left else ""  # fmt: skip
    out = table(["checkpoint", "first seen (UTC)", "last seen (UTC)", "calls", "caller · purpose", "labels it saw"],
                body, after=after)  # fmt: skip
    streams: dict[tuple[str, str], dict[str, tuple[float, float]]] = defaultdict(dict)
    for name, group in seen.items():
        for r in group:
            first, last = streams[(r.key.caller, r.key.purpose)].get(name, (r.first_seen, r.last_seen))
            streams[(r.key.caller, r.key.purpose)][name] = (min(first, r.first_seen), max(last, r.last_seen))
    changes = []
    changed = [(who, by_name) for who, by_name in sorted(streams.items()) if len(by_name) >= 2]
    for (caller, purpose), by_name in changed[:TABLE_MOST]:
        steps = sorted(by_name.items(), key=lambda item: item[1][0])
        earlier = len(steps) - STEPS_MOST
        replaced = _replaced(steps)
        # each sign is of a checkpoint and those before it: `→` where it replaced one (`_replaced`), named when that
        # is not the one just before it in the list (a model used beside both between them); `+` where none had
        # stopped serving this caller and purpose when it came (models used side by side): no swap
        path = "".join(
            ("" if i == max(earlier, 0) else " → " if i in replaced else " + ")
            + f'<span class="mono">{esc(name)}</span> <span class="muted">({_day(first)} – {_day(last)})</span>'
            + (f' <span class="muted">in place of</span> <span class="mono">{esc(steps[replaced[i]][0])}</span>'
               if i in replaced and replaced[i] != i - 1 else "")
            for i, (name, (first, last)) in enumerate(steps)
            if i >= earlier
        )  # fmt: skip
        if earlier > 0:  # the first shown told from those not shown, as any from those before it
            joint = "→" if earlier in replaced else "+"
            path = f'<span class="muted">{earlier} earlier checkpoints</span> {joint} {path}'
        changes.append(f"<li><b>{esc(caller)}</b> acting for <b>{esc(purpose or '-')}</b>: {path}</li>")
    if changes:
        more = ""
        if len(changed) > TABLE_MOST:
            more = (f'<p class="muted">{len(changed) - TABLE_MOST} more callers and purposes served by more than one '
                    "checkpoint not shown here: <code>lineage-proxy edges</code> lists every flow.</p>")  # fmt: skip
        legend = ('<p class="muted">Each sign compares a checkpoint with those before it. →: first seen after one of '
                  "them was last seen (a replacement: of the one just before it, or of the one named after it); +: "
                  "seen while those before it still served the same caller and purpose (models used side by side, or "
                  "sidecars of a fleet part-way through an update).</p>")  # fmt: skip
        out += f'<h3>Changes</h3>{legend}<ul class="changes">{"".join(changes)}</ul>{more}'
    else:
        out += '<p class="muted">No caller and purpose was served by more than one checkpoint in this window.</p>'
    return out


def _replaced(steps: list[tuple[str, tuple[float, float]]]) -> dict[int, int]:
    """Which checkpoint each replaced, by index in `steps` (in order of first seen, each with when it was first and
    last seen): the one it replaced is one before it last seen before it was first seen and not replaced already by
    one before it, the last seen of those (the swap closest in time). Not only the one just before it in the list: a
    swap of `a` for `b` while `c` came between them (used beside both) is a swap."""
    replaced: dict[int, int] = {}
    ended: list[int] = []  # the checkpoints before the one at hand, not replaced yet
    for i, (_, (first, _last)) in enumerate(steps):
        best = -1
        for j in ended:
            end = steps[j][1][1]
            if end < first and (best < 0 or end > steps[best][1][1]):
                best = j
        if best >= 0:
            replaced[i] = best
            ended.remove(best)
        ended.append(i)
    return replaced


def _regions(regions: frozenset[str] | None) -> str:
    """A zone's regions as enforced: none listed is any region; an empty list is none (its data goes nowhere)."""
    if regions is None:
        return "any"
    return esc(", ".join(sorted(regions))) if regions else '<span class="muted">none</span>'


def policy_section(config: Config, baseline: Baseline | None, verdict: Verdict | None, level: int = 3) -> str:
    """One config's policy (`level`: its subsections' heading level, 4 under a heading naming the config)."""
    p, lineage = config.policy, config.lineage
    h = f"h{level}"
    facts = [
        ("config", config.source),
        (
            "mode",
            p.mode
            + (
                " (decide and record, never block; refused even so: a model no route serves, a key no caller "
                "owns on a call without data, a stream's message that would move it to another region)"
                if p.mode == "audit"
                else ""
            ),
        ),
        ("calls without a key", p.anonymous),
        ("default purpose", p.default_purpose or "none"),
        ("approved baseline", lineage.baseline or "none"),
        ("unapproved flows", lineage.on_unapproved if lineage.baseline else "not verified"),
        ("retention", f"{lineage.retention_days:g} days"),
    ]
    out = '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts) + "</dl>"
    zones = [
        f"<tr><td><b>{esc(z.name)}</b></td><td>{pills(sorted(z.labels), z.labels, None)}</td>"
        f"<td>{pills(sorted(z.allow_purposes), most=None)}</td><td>{_regions(z.regions)}</td>"
        f"<td>{esc('reroute to ' + z.reroute_to if z.reroute_to else 'block')}</td></tr>"
        for z in config.zones
    ]
    out += f"<{h}>Policy Zones</{h}>" + table(["zone", "labels", "allowed purposes", "regions", "on deny"], zones)
    upstreams = {u.name: u for u in config.upstreams}
    routes = [
        f'<tr><td class="mono">{esc(r.model)}</td><td>{esc(r.upstream)}</td>'
        f"<td>{esc(upstreams[r.upstream].region or '-') if r.upstream in upstreams else '-'}</td>"
        f'<td class="mono">{esc(upstreams[r.upstream].checkpoint or "discovered") if r.upstream in upstreams else "-"}</td>'
        f"<td>{pills(sorted(r.purposes), most=None) if r.purposes is not None else 'any'}</td></tr>"
        for r in config.routes
    ]
    out += f"<{h}>Routes</{h}>" + table(["model", "upstream", "region", "checkpoint", "purposes"], routes)
    callers = [
        f"<tr><td><b>{esc(c.name)}</b></td><td>{pills(sorted(c.purposes), most=None) if c.purposes is not None else 'any'}</td>"
        f"<td>{pills(sorted(c.labels), most=None)}</td><td>{esc(c.default_purpose or '-')}</td>"
        f"<td>{'yes' if c.api_key_sha256 else 'no'}</td></tr>"
        for c in config.callers
    ]
    out += f"<{h}>Callers</{h}>" + table(["caller", "purposes", "labels on every input", "default purpose", "has a key"],
                                      callers)  # fmt: skip
    if baseline is not None:
        out += approved_section(baseline, verdict)
    return out


def approved_section(baseline: Baseline, verdict: Verdict | None) -> str:
    """The baseline's entries, each marked seen or not in the window; with the sidecars each approves when one names
    them (`sidecars`: a flow another sidecar records is not approved by it, so a reviewer must see it)."""
    unseen = {a.location for a in verdict.unseen} if verdict is not None else set()
    restricted = baseline.restricted
    entries = [
        f'<tr><td class="mono">{esc(a.location)}</td><td>{esc(a.caller)}</td><td>{esc(a.purpose or "-")}</td>'
        f'<td>{pills(a.labels, most=None)}</td><td class="mono">{esc(", ".join(a.checkpoints))}</td>'
        f"<td>{esc(', '.join(a.decisions))}</td>{_sidecars(a.sidecars, a.restricted) if restricted else ''}"
        f"<td>{chip('muted', 'not seen') if a.location in unseen else chip('ok', 'seen')}</td></tr>"
        for a in baseline.approvals
    ]
    head = ["entry", "caller", "purpose", "labels", "checkpoints", "decisions"]
    return "<h3>Approved flows</h3>" + table([*head, *(["sidecars"] if restricted else []), "in this window"],
                                             entries)  # fmt: skip


def _sidecars(names: Sequence[str], restricted: bool) -> str:
    """An entry's `sidecars` as a cell: the names and patterns, '' said as the edges recorded before sidecars were
    named (as `verify` says it); any sidecar's when it names none."""
    if not restricted:
        return '<td class="muted">any sidecar</td>'
    shown = ", ".join(esc(name) if name else '<span class="muted">(none named)</span>' for name in names)
    return f'<td class="mono">{shown}</td>'


# the rules a config names (a denial's `rule`): its zones', its routes' and its callers'
_CONFIG_RULES = ("zone:", "route:", "caller:")


def unlisted_rules(rows: list[EdgeRow], configs: Iterable[Config]) -> dict[str, int]:
    """The rules of the store's denials and reroutes that name a zone, route or caller none of `configs` has, with
    their calls: decided by a sidecar whose config the report was not given."""
    listed: set[str] = set()
    for config in configs:
        listed.update(f"zone:{z.name}" for z in config.zones)
        listed.update(f"route:{r.model}" for r in config.routes)
        listed.update(f"caller:{c.name}" for c in config.callers)
    found: dict[str, int] = defaultdict(int)
    for row in rows:
        rule = row.key.rule
        if rule and rule.startswith(_CONFIG_RULES) and rule not in listed:
            found[rule] += row.count
    return dict(sorted(found.items()))


def policies_section(
    rows: list[EdgeRow], configs: list[Config], baseline: Baseline | None, verdict: Verdict | None
) -> str:
    """The policy of each config given (one a sidecar, or a group of them, in a fleet writing one store), each
    under its file's name; and, said plainly, the denials none of them decided."""
    if len(configs) == 1:
        lede = (f"From the config given to the report, <code>{esc(configs[0].source)}</code>: the policy of the "
                "sidecars that run it. A store written by a fleet holds the other sidecars' calls too: give each "
                "sidecar's config (<code>--config</code>, once for each) to see every policy.")  # fmt: skip
    else:
        lede = (f"From the {len(configs)} configs given to the report, each under its file's name: the policy of "
                "the sidecars that run it. A denial's rule names a zone, route or caller of the config that decided "
                "it.")  # fmt: skip
    out = f'<p class="lede">{lede}</p>'
    unlisted = unlisted_rules(rows, configs)
    if unlisted:
        shown = ", ".join(f'<span class="mono">{esc(rule)}</span> ({calls} calls)' for rule, calls in unlisted.items())
        which = "the config given" if len(configs) == 1 else "any config given"
        out += (f'<p class="note">Not in {which}: {shown}. These calls were decided by a sidecar whose config '
                "the report was not given (or by a policy changed since): their zones, routes or callers are not "
                "shown here.</p>")  # fmt: skip
    if len(configs) == 1:
        return out + policy_section(configs[0], baseline, verdict)
    for config in configs:
        out += f'<h3 class="config">Config <code>{esc(config.source)}</code></h3>' + policy_section(
            config, None, None, level=4
        )
    if baseline is not None:
        out += approved_section(baseline, verdict)
    return out


CSS = """
:root{--ink:#1c2430;--muted:#667085;--line:#e4e7ec;--bg:#f6f7f9;--card:#fff;--allow:#2f6fde;--reroute:#7c4ddb;
--deny:#d92d20;--audit:#c11574;--unapproved:#e08a00;--ok:#12805c}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
header{background:#101828;color:#fff;padding:28px 40px 22px}
header h1{margin:0 0 4px;font-size:24px;font-weight:650;letter-spacing:-.01em}
header p{margin:2px 0;color:#c8d0dc;font-size:13px}
header code{color:#fff}
nav{display:flex;gap:18px;padding:10px 40px;background:#1d2939;font-size:13px}
nav a{color:#d0d5dd;text-decoration:none}
main{max-width:1280px;margin:0 auto;padding:24px 40px 48px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:14px;margin-bottom:24px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px}
.card b{display:block;font-size:26px;font-weight:650}
.card span{color:var(--muted);font-size:12.5px;text-transform:uppercase;letter-spacing:.04em}
.card.alert{border-color:#fda29b;background:#fff6f5}.card.alert b{color:var(--deny)}
.card.warn{border-color:#fedf89;background:#fffcf0}.card.warn b{color:#b54708}
section{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:20px 24px;margin-bottom:22px}
h2{margin:0 0 4px;font-size:18px}h3{margin:22px 0 8px;font-size:15px}
.lede{margin:0 0 14px;color:var(--muted)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.03em;
border-bottom:2px solid var(--line);padding:8px 10px}
td{border-bottom:1px solid var(--line);padding:7px 10px;vertical-align:top}
tbody tr:nth-child(even){background:#fafbfc}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.when{color:var(--muted);font-variant-numeric:tabular-nums}
td.reason{max-width:460px}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;overflow-wrap:anywhere}
td.who,td.rule{white-space:nowrap}
.pill{display:inline-block;background:#eef2f6;border:1px solid #d5dbe3;border-radius:999px;padding:0 8px;margin:1px 3px 1px 0;
font-size:12px;white-space:nowrap}
.pill.zoned{background:#fef3f2;border-color:#fecdca;color:#912018}
.chip{display:inline-block;border-radius:5px;padding:0 7px;font-size:12px;font-weight:600;color:#fff;white-space:nowrap}
.chip.allow{background:var(--allow)}.chip.reroute{background:var(--reroute)}.chip.deny{background:var(--deny)}
.chip.audit-deny{background:var(--audit)}.chip.unapproved{background:var(--unapproved)}.chip.ok{background:var(--ok)}
.chip.muted{background:#98a2b3}
.muted{color:var(--muted)}.empty{color:var(--muted);font-style:italic}
.legend{display:flex;flex-wrap:wrap;gap:16px;margin:6px 0 10px;font-size:12.5px}
.key{display:inline-flex;align-items:center;gap:6px}
#flow-graph{display:block;max-width:1160px;margin:0 auto}
#flow-graph .head{font-size:11px;font-weight:700;fill:var(--muted);letter-spacing:.08em}
.link{fill:none;stroke-opacity:.5;stroke-linecap:butt}
.link:hover{stroke-opacity:.85}
.link.allow{stroke:var(--allow)}.link.reroute{stroke:var(--reroute)}.link.deny{stroke:var(--deny)}
.link.audit-deny{stroke:var(--audit)}.link.unapproved{stroke:var(--unapproved);stroke-dasharray:12 4;stroke-opacity:.65}
.node rect{fill:#fff;stroke:#98a2b3;stroke-width:1.2}
.node.col0 rect{fill:#f2f4f7}.node.col1 rect{fill:#eff4ff;stroke:#84adff}.node.col2 rect{fill:#f4f3ff;stroke:#bdb4fe}
.node.refused rect{fill:#fef3f2;stroke:var(--deny)}.node.zoned rect{fill:#fef3f2;stroke:#f97066}
.node text{font-size:12.5px;fill:var(--ink)}.node .sub{font-size:11px;fill:var(--muted)}
.node .count{font-size:11px;fill:var(--muted);text-anchor:end}
h4{margin:16px 0 6px;font-size:13.5px}h3.config{margin-top:28px;padding-top:14px;border-top:1px solid var(--line)}
.note{margin:0 0 14px;padding:8px 12px;border:1px solid #fedf89;background:#fffcf0;border-radius:8px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:8px 0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
ul.changes{margin:0;padding-left:18px}ul.changes li{margin:4px 0}
footer{color:var(--muted);font-size:12px;text-align:center;padding:0 0 30px}
@media print{nav{display:none}section{break-inside:avoid}}
"""


def render(
    rows: list[EdgeRow],
    *,
    store: str,
    window: str,
    config: Config | None = None,
    baseline: Baseline | None = None,
    generated: float | None = None,
    configs: Sequence[Config] = (),
    verified: Report | None = None,
) -> str:
    """The whole report as one HTML document. `configs`: the policies of a fleet's sidecars (`config`: one).
    `verified`: the verdict of the chain `rows` were read with (`report --integrity`), intact; None: the rows are the
    edge table as it stands, and the header says so."""
    given = [*configs] or ([config] if config is not None else [])
    verdict = check(rows, baseline) if baseline is not None else None
    unapproved = {row.key for row, _ in verdict.unapproved} if verdict is not None else set()
    edges = {(row.key, row.sidecar) for row, _ in verdict.unapproved} if verdict is not None else set()
    zoned = frozenset(label for c in given for zone in c.zones for label in zone.labels)
    calls = sum(r.count for r in rows)
    denied = sum(r.count for r in rows if r.key.decision == "deny")
    audit = sum(r.count for r in rows if r.key.decision == "audit-deny")
    seen = {r.key.checkpoint for r in rows if r.key.checkpoint and r.key.decision != "deny"} - {NO_WEIGHTS}
    stamp = when(time.time() if generated is None else generated)
    span = (
        f"{_day(min(r.first_seen for r in rows))} – {_day(max(r.last_seen for r in rows))} UTC" if rows else "nothing"
    )
    cards = [
        ("", calls, "calls"),
        ("", len({r.key for r in rows}), "distinct flows"),  # a flow several sidecars recorded is one
        ("", len(seen), "checkpoints"),
        ("alert" if denied else "", denied, "denied calls"),
    ]
    if audit:
        cards.append(("warn", audit, "audit-mode denials"))
    if verdict is not None:
        cards.append(("warn" if verdict.unapproved else "", verdict.flows()[0], "unapproved flows"))  # as "distinct"
    card_html = "".join(
        f'<div class="card {css}"><b>{value}</b><span>{esc(text)}</span></div>' for css, value, text in cards
    )
    kinds = {kind_of(r, unapproved) for r in rows}
    sections = [
        '<section id="graph"><h2>Flow graph</h2><p class="lede">Which labelled data reached which checkpoint, and '
        "for whom; labels a Policy Zone guards are red. Hover a line or a box for its calls.</p>"
        + legend(kinds)
        + graph(rows, unapproved, zoned)
        + "</section>"
    ]
    nav = [("graph", "Flow graph")]
    if verdict is not None:
        sections.append(
            '<section id="unapproved"><h2>Flows outside the approved baseline</h2><p class="lede">Recorded flows no '
            f"entry of <code>{esc(baseline.source if baseline else '')}</code> covers, and why.</p>"
            + unapproved_table(verdict.unapproved, zoned)
            + "</section>"
        )
        nav.append(("unapproved", "Unapproved"))
    sections.append(
        '<section id="denials"><h2>Denials</h2><p class="lede">Calls refused at the boundary (and, in audit mode, '
        "calls that would have been), with the reason the caller was given.</p>"
        + denials_table(rows, zoned)
        + "</section>"
    )
    sections.append(
        '<section id="checkpoints"><h2>Checkpoints</h2><p class="lede">The weights that served calls, and when the '
        "checkpoint serving a caller changed.</p>" + checkpoints_section(rows, zoned) + "</section>"
    )
    sections.append(
        '<section id="flows"><h2>Every flow</h2><p class="lede">One row per lineage edge: caller, purpose, labels in, '
        "checkpoint, labels out, decision and the rule that decided it; zoned labels are red.</p>"
        + flows_table(rows, edges, zoned, verdict is not None)
        + "</section>"
    )
    nav += [("denials", "Denials"), ("checkpoints", "Checkpoints"), ("flows", "Every flow")]
    if given:
        sections.append(
            '<section id="policy"><h2>Policy in force</h2>'
            + policies_section(rows, given, baseline, verdict)
            + "</section>"
        )
        nav.append(("policy", "Policy"))
    nav_html = "".join(f'<a href="#{anchor}">{esc(text)}</a>' for anchor, text in nav)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Lineage report: {esc(Path(store).name)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>Lineage report</h1><p>Store <code>{esc(store)}</code> · flows {esc(window)} · first to last "
        f"seen {esc(span)}</p>{_proof(verified)}<p>Generated {esc(stamp)} UTC by lineage-proxy {esc(__version__)}</p></header>"
        f'<nav>{nav_html}</nav><main><div class="cards">{card_html}</div>{"".join(sections)}</main>'
        "<footer>A self-contained file: it loads nothing from the network.</footer></body></html>\n"
    )


def _proof(verified: Report | None) -> str:
    """The header's line on what the rows drawn are: a record that verified (the head a reviewer can check against one
    recorded elsewhere), or the edge table as it stands, which whoever can write the store can edit."""
    if verified is None:
        return ("<p>Record not verified: drawn from the edge table as it stands (<code>--integrity</code> draws only "
                "a record whose hash chain verifies)</p>")  # fmt: skip
    keyed = "signed with its HMAC key" if verified.keyed else "unkeyed"
    return (f'<p id="verified">Record verified: hash chain intact ({verified.entries} entries, {keyed}), every edge '
            f"matches; head <code>{esc(verified.head)}</code></p>")  # fmt: skip


def _rows(args: argparse.Namespace, since_s: float | None) -> tuple[list[EdgeRow], Report | None] | int:
    """The rows to draw and, with `--integrity`, the verdict of the chain they were read with (in the same
    transaction, `verified_rows`); exit 1, said, when they cannot be read or the record does not verify: its rows are
    not what the chain signed, and a report of them would show a flow edited out as never made (a denial's row
    deleted), so none is written. The verdict, naming the first broken link, goes to stdout as `verify` prints it."""
    if not args.integrity:
        try:
            return read_edges(args.store, since_s), None
        except UsageError as exc:
            return _fail(str(exc))
    read = verified_rows(args, _fail)
    if isinstance(read, int):
        return read
    verdict, rows = read
    if not verdict.intact:
        print_integrity(verdict, args.store)
        return _fail(f"no report written: the record of {shown(args.store)} does not verify")
    print_warning(verdict)  # beside an intact record, as `verify --integrity` says it: the store may stop growing
    return recent(rows, since_s), verdict


def run_report(args: argparse.Namespace) -> int:
    """Exit 0 with the file written; 1 when the store, config or baseline cannot be read, the record does not verify
    (`--integrity`) or the file cannot be written."""
    since_s = parse_duration(args.since) if args.since else None
    read = _rows(args, since_s)
    if isinstance(read, int):
        return read
    rows, verified = read
    configs: list[Config] = []
    for path in args.config or ():  # each sidecar's of a fleet writing the store, or one
        from proxy.config import load

        try:
            configs.append(load(path))
        except ConfigError as exc:
            return _fail(f"{path}: invalid configuration:\n  " + "\n  ".join(exc.problems))
    named = {c.baseline.source: c.baseline for c in configs if c.baseline is not None}
    if len(named) > 1 and not args.baseline:
        return _fail(f"the configs name different baselines ({', '.join(sorted(named))}): give the one to verify "
                     "against with --baseline")  # fmt: skip
    baseline = next(iter(named.values()), None)
    if args.baseline:
        try:
            baseline = load_baseline(args.baseline)
        except BaselineError as exc:
            return _fail(f"{args.baseline}: invalid baseline:\n  " + "\n  ".join(exc.problems))
    window = f"last seen in the last {args.since}" if args.since else "all recorded"
    text = render(rows, store=shown(args.store), window=window, configs=configs, baseline=baseline, verified=verified)
    out = Path(args.out)
    # text no UTF-8 holds (a lone surrogate: a config's `"\\ud800"`, a file name read from the command line whose
    # bytes are not UTF-8) shown as its escape: strict, the report failed after emptying the file it was to replace
    data = text.encode("utf-8", "backslashreplace")
    try:
        _write(out, data)
    except OSError as exc:
        return _fail(f"{shown_path(str(out))}: cannot write: {exc.strerror or exc}")
    proof = f"; the record verified, head {verified.head}" if verified is not None else ""
    print(
        f"wrote {shown_path(str(out))}: {len({r.key for r in rows})} flows, {sum(r.count for r in rows)} calls{proof}"
    )
    return 0


def _write(out: Path, data: bytes) -> None:
    """The report written whole or not at all: into a file beside `out`, then renamed over it, so a write that fails
    (a full disk, a quota) leaves the report there before as it was (written in place, it was left empty or cut
    short). A symbolic link's target is replaced; where `out` is no regular file (`/dev/stdout`, a pipe), it is
    written to as it is."""
    target = Path(os.path.realpath(out))
    try:
        regular = stat.S_ISREG(os.stat(target).st_mode)
    except FileNotFoundError:
        regular = True
    if not regular:
        out.write_bytes(data)
        return
    partial = target.with_name(f".{target.name}.tmp")
    try:
        partial.write_bytes(data)
        partial.replace(target)
    except OSError:
        partial.unlink(missing_ok=True)
        raise


def _fail(message: str) -> int:
    print(f"lineage-proxy report: {message}", file=sys.stderr)
    return 1
