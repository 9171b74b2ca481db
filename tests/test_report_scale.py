"""The report's graph orders each column by its links in one pass over them: ordering each node by its own pass
over every link took over ten minutes for a store of 100,000 flows (a caller sending other labels on every call
makes one flow a call). Counted, not timed: how often the links are walked."""

from __future__ import annotations

import time

from proxy.record.store import EdgeKey, EdgeRow
from proxy.report import _order, graph


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


def test_a_graph_of_many_flows_has_a_node_for_each_label() -> None:
    now = time.time()
    rows = [
        EdgeRow(EdgeKey("app", "assistant", f"team-a,t{n}", "ckpt", f"team-a,t{n}", "allow", ""), now, now, 1, None)
        for n in range(2000)
    ]
    svg = graph(rows, set())
    assert svg.count('<g class="node col0"') == 2001  # team-a and each t<n>
