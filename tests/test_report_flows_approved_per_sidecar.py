"""The report's "Every flow" table says of each row (one sidecar's edge of a flow) whether the baseline approves it,
judged for that sidecar, as `verify` judges it: an entry naming `sidecars` approves the flow for those only. Before,
a flow unapproved for one sidecar was marked "no" on every sidecar's row, the approved one's too."""

from __future__ import annotations

import re
from pathlib import Path

from proxy.baseline import parse_baseline
from proxy.report import render
from proxy.verify import read_edges
from tests.test_baseline_sidecars import ONLY_A
from tests.test_readers_sidecar import fleet


def marks(page: str) -> list[tuple[str, str, str]]:
    """Each row of the flows table: its caller, sidecar and approved mark."""
    found = re.search(r'<section id="flows">(.*?)</section>', page, re.S)
    assert found is not None, page[-3000:]
    out = []
    for row in re.findall(r"<tr><td.*?</tr>", found.group(1)):
        caller = re.search(r'<td class="who">(.*?)</td>', row)
        sidecar = re.search(r'<td class="mono">(model-[^<]+)</td>', row)
        approved = re.search(r'<span class="chip (?:ok|unapproved)">(yes|no)</span>', row)
        assert caller and sidecar and approved, row
        out.append((caller.group(1), sidecar.group(1), approved.group(1)))
    return sorted(out)


def test_each_sidecars_row_is_marked_as_verify_judges_it(tmp_path: Path) -> None:
    store = fleet(tmp_path)  # model-a-eu and model-b-us both served glasses-app's flow; model-b-us refused eval-batch
    rows = read_edges(str(store))
    page = render(rows, store="fleet.db", window="all", baseline=parse_baseline(ONLY_A))  # glasses-app: model-a-* only
    assert marks(page) == [
        ("eval-batch", "model-b-us", "yes"), ("glasses-app", "model-a-eu", "yes"), ("glasses-app", "model-b-us", "no")
    ]  # fmt: skip
    widened = parse_baseline(ONLY_A.replace('"model-a-*"', '"model-*"'))
    assert [mark for _, _, mark in marks(render(rows, store="fleet.db", window="all", baseline=widened))] == ["yes"] * 3
