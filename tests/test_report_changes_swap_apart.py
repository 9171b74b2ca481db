"""A swap whose two checkpoints are not next to each other in the report's Changes list: a caller's chat model
`llama@v1` replaced by `llama@v2`, while a classifier (`iris:1`) it uses beside them came between them in the list
(first seen after v1, before v2). Each sign compared a checkpoint with the one just before it only, so `llama@v2` was
told from `iris:1`, which still served: `llama@v1 + iris:1 + llama@v2`, no `→`, and the swap was lost. A checkpoint
first seen after one before it was last seen (and not replaced already) now follows with `→`, naming the one it
replaced when that is not the one just before it."""

from __future__ import annotations

import re

from proxy.record.store import EdgeKey, EdgeRow
from tests.test_report_changes_side_by_side import T, changes


def shown(rows: list[EdgeRow]) -> dict[str, str]:
    return {caller: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", path)) for caller, path in changes(rows).items()}


def row(caller: str, checkpoint: str, first: float, last: float) -> EdgeRow:
    return EdgeRow(EdgeKey(caller, "assistant", "", checkpoint, "", "allow"), T + first, T + last, 5, None)


def test_a_swap_with_a_model_used_beside_it_between_shows_its_arrow() -> None:
    rows = [row("app", "llama@v1", 0, 600), row("app", "iris:1", 60, 3600), row("app", "llama@v2", 700, 3600)]
    assert shown(rows)["app"] == "llama@v1 + iris:1 → llama@v2 in place of llama@v1"


def test_each_checkpoint_is_replaced_once_and_side_by_side_stays_plus() -> None:
    """Two swaps apart (`a` for `b`, then `c` for `d`) each read `→` with what they replaced; a model first seen after
    `a` stopped but beside `b`, which replaced `a` already, reads `+`; the closest swap in time is the one named."""
    rows = [
        row("app", "a", 0, 100), row("app", "c", 10, 500), row("app", "b", 200, 3600),
        row("app", "side", 300, 3600), row("app", "d", 600, 3600),
    ]  # fmt: skip
    assert shown(rows)["app"] == "a + c → b in place of a + side → d in place of c"


def test_the_legend_says_what_the_arrow_compares() -> None:
    from proxy.baseline import parse_baseline
    from proxy.report import render

    rows = [row("app", "llama@v1", 0, 600), row("app", "iris:1", 60, 3600), row("app", "llama@v2", 700, 3600)]
    text = render(rows, store="s.db", window="all", baseline=parse_baseline("version: 1\nflows: []\n"))
    assert "compares a checkpoint with those before it" in text
