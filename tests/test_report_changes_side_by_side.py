"""The report's checkpoint Changes tell a replacement from models used side by side. A caller that uses two models
for one purpose (a chat model and a classifier) was shown as `smollm2 → iris:1`, a model swap that never happened,
and every such caller read as changing checkpoint; real swaps were lost among them. A checkpoint first seen after
every one before it was last seen follows with `→`; one seen while an earlier one still served, with `+`."""

from __future__ import annotations

import re

from proxy.baseline import parse_baseline
from proxy.record.store import EdgeKey, EdgeRow
from proxy.report import render

T = 1_796_000_000.0


def changes(rows: list[EdgeRow]) -> dict[str, str]:
    text = render(rows, store="s.db", window="all", baseline=parse_baseline("version: 1\nflows: []\n"))
    items = re.findall(r"<li><b>(\w+)</b> acting for <b>(\w+)</b>: (.*?)</li>", text.split("<h3>Changes</h3>")[1])
    return {caller: re.sub(r'<span class="muted">\(.*?\)</span>|<span class="mono">|</span>', "", path).strip()
            for caller, _, path in items}  # fmt: skip


def test_models_used_side_by_side_are_no_swap_and_a_replacement_is() -> None:
    rows = [
        EdgeRow(EdgeKey("app", "assistant", "", "smollm2", "", "allow"), T, T + 3600, 40, None),
        EdgeRow(EdgeKey("app", "assistant", "", "iris:1", "", "allow"), T + 60, T + 1800, 9, None),
        EdgeRow(EdgeKey("batch", "evaluation", "", "llama@v1", "", "allow"), T, T + 600, 5, None),
        EdgeRow(EdgeKey("batch", "evaluation", "", "llama@v2", "", "allow"), T + 700, T + 3600, 5, None),
        EdgeRow(EdgeKey("batch", "evaluation", "", "iris:1", "", "allow"), T + 800, T + 900, 1, None),
    ]
    shown = changes(rows)
    assert re.sub(r"\s+", " ", shown["app"]) == "smollm2 + iris:1"
    assert re.sub(r"\s+", " ", shown["batch"]) == "llama@v1 → llama@v2 + iris:1"


def test_checkpoints_not_shown_are_told_from_the_first_shown_as_any_before_it() -> None:
    """Past STEPS_MOST checkpoints the oldest are counted, not shown: the sign between them and the first one shown
    was always `→`, a replacement, also where that one served beside them (a caller using ten models at once read as
    swapping to one); a real replacement still reads `→`."""
    side_by_side = [
        EdgeRow(EdgeKey("app", "assistant", "", f"m{n}", "", "allow"), T + n, T + 3600, 3, None) for n in range(10)
    ]
    swapped = [
        EdgeRow(EdgeKey("batch", "evaluation", "", f"v{n}", "", "allow"), T + 100 * n, T + 100 * n + 50, 3, None)
        for n in range(10)
    ]
    shown = {caller: re.sub(r"<[^>]+>", "", path) for caller, path in changes(side_by_side + swapped).items()}
    assert re.sub(r"\s+", " ", shown["app"]) == "2 earlier checkpoints + m2 + m3 + m4 + m5 + m6 + m7 + m8 + m9"
    assert re.sub(r"\s+", " ", shown["batch"]) == "2 earlier checkpoints → v2 → v3 → v4 → v5 → v6 → v7 → v8 → v9"


def test_a_swap_beside_a_model_used_throughout_reads_as_a_swap() -> None:
    """Each sign compares a checkpoint with the one just before it in the list: a swap of iris:1 for iris:2 while
    smollm2 served throughout read `smollm2 + iris:1 + iris:2` (iris:2 was compared with the latest end of all
    before it, smollm2's), which hid the swap; two models side by side after a swap still read `+`."""
    rows = [
        EdgeRow(EdgeKey("app", "assistant", "", "smollm2", "", "allow"), T, T + 3600, 40, None),
        EdgeRow(EdgeKey("app", "assistant", "", "iris:1", "", "allow"), T + 60, T + 1800, 9, None),
        EdgeRow(EdgeKey("app", "assistant", "", "iris:2", "", "allow"), T + 1900, T + 3600, 9, None),
        EdgeRow(EdgeKey("batch", "evaluation", "", "llama@v1", "", "allow"), T, T + 600, 5, None),
        EdgeRow(EdgeKey("batch", "evaluation", "", "llama@v2", "", "allow"), T + 700, T + 3600, 5, None),
        EdgeRow(EdgeKey("batch", "evaluation", "", "iris:1", "", "allow"), T + 800, T + 900, 1, None),
    ]
    shown = changes(rows)
    assert re.sub(r"\s+", " ", shown["app"]) == "smollm2 + iris:1 → iris:2"
    assert re.sub(r"\s+", " ", shown["batch"]) == "llama@v1 → llama@v2 + iris:1"


def test_past_the_checkpoints_shown_the_first_is_told_from_the_one_just_before_it() -> None:
    """Nine models swapped one for the next while `base` served throughout: the joint after the checkpoints not
    shown follows the same rule, `→` (v1 replaced v0, the last one not shown)."""
    rows = [EdgeRow(EdgeKey("app", "assistant", "", "base", "", "allow"), T, T + 3600, 30, None)] + [
        EdgeRow(EdgeKey("app", "assistant", "", f"v{n}", "", "allow"), T + 100 * n + 1, T + 100 * n + 50, 3, None)
        for n in range(9)
    ]
    shown = {caller: re.sub(r"<[^>]+>", "", path) for caller, path in changes(rows).items()}
    assert re.sub(r"\s+", " ", shown["app"]) == "2 earlier checkpoints → v1 → v2 → v3 → v4 → v5 → v6 → v7 → v8"
