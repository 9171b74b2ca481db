"""The report's graph orders each column by its links in one pass over them: ordering each node by its own pass
over every link took over ten minutes for a store of 100,000 flows (a caller sending other labels on every call
makes one flow a call). Counted, not timed: how often the links are walked."""

from __future__ import annotations

import re
import time

from proxy.record.store import EdgeKey, EdgeRow
from proxy.report import GRAPH_MOST, _order, graph


class Links(dict[tuple[str, str], int]):
    """A column's links, counting the walks over them."""

    walks = 0

    def items(self):  # type: ignore[no-untyped-def]
        Links.walks += 1
        return super().items()


def test_ordering_a_column_walks_its_links_once() -> None:
    names = {f"label-{n}": n + 1 for n in range(300)}
    weights = Links({(f"label-{n}", f"ckpt-{n % 3}"): n + 1 for n in range(300)})
    anchor = {"ckpt-0": 0.0, "ckpt-1": 1.0, "ckpt-2": 2.0}
    Links.walks = 0
    order = _order(names, weights, anchor)
    assert Links.walks == 1  # a walk a node: 600
    # by the mean position of its neighbours, then the busier first
    assert order[:3] == ["label-297", "label-294", "label-291"]
    assert order[-1] == "label-2"


def test_a_column_of_many_nodes_draws_the_busiest_and_folds_the_rest() -> None:
    """2,000 labels of one call each (a caller sending a new label a call) and a few busy ones: 40 label nodes
    drawn, the busiest, a zoned one however rare, and one for the rest with their calls; every call still in a
    line to its checkpoint."""
    now = time.time()

    def row(labels: str, calls: int, caller: str = "app") -> EdgeRow:
        return EdgeRow(EdgeKey(caller, "assistant", labels, "ckpt", labels, "allow", ""), now, now, calls, None)

    rows = [row(f"t{n:04d}", 1, caller=f"c{n % 50:02d}") for n in range(2000)]
    rows += [row(f"busy{n}", 100 + n) for n in range(5)] + [row("health", 1)]
    svg = graph(rows, set(), zoned=frozenset({"health"}))
    nodes = re.findall(r'<g class="node col0[^"]*" data-name="([^"]*)"><title>[^<]*: (\d+) calls', svg)
    assert len(nodes) == GRAPH_MOST
    drawn = dict((name, int(calls)) for name, calls in nodes)
    assert {f"busy{n}" for n in range(5)} | {"health"} <= set(drawn)
    assert drawn[f"+{2006 - GRAPH_MOST + 1} more labels"] == 2006 - GRAPH_MOST + 1
    assert sum(drawn.values()) == 2000 + sum(100 + n for n in range(5)) + 1
    users = re.findall(r'<g class="node col2"', svg)
    assert len(users) == GRAPH_MOST  # 51 purposes · callers: 39 and "+12 more purposes · callers"
    assert "+12 more purposes · callers" in svg
