"""The memos of label sets' sorted and wire forms (`proxy/labels.py`) are bounded by what an entry costs, not by its
characters alone. An entry's key is the call's set of labels: a label costs a set's slot and a string's header (~100
bytes) besides its characters, and a call may send 64 labels (256 with what a sequence or a stored reply carries) of
one or two characters in the 1,024 an entry may hold. The memos are never emptied (filled, they take no more): 4,096
sets of 256 labels of two characters, each a new set of strings shared among them, kept 44 MB for the life of the
process (traced), ~100 MB with strings of their own."""

from __future__ import annotations

import itertools
import string

from proxy import labels as labels_module
from proxy.labels import format_labels, sorted_labels

POOL = ["".join(pair) for pair in itertools.product(string.ascii_lowercase + string.digits, repeat=2)]
SETS = 600


def cost(labels: frozenset[str]) -> int:
    return sum(100 + len(label) for label in labels)


def test_sets_of_many_short_labels_are_not_remembered() -> None:
    labels_module._SORTED.clear()  # what the calls below leave in the memos is what is measured
    labels_module._FORMATTED.clear()
    for n in range(SETS):  # 256 labels of 2 or 3 characters, ~770 characters with the commas: a new set each time
        labels = frozenset(POOL[n : n + 255]) | {f"n{n}"}
        assert sorted_labels(labels) == tuple(sorted(labels)) and format_labels(labels) == ",".join(sorted(labels))
    kept = sum(cost(labels) for labels in (*labels_module._SORTED, *labels_module._FORMATTED))
    assert kept < 100 * 1024, f"{kept} bytes of label sets kept"  # before: ~31 MB, every set


def test_a_few_labels_are_remembered() -> None:
    labels = frozenset({"health", "team-a", "dataset:faq", "pii:email"})
    sorted_labels(labels), format_labels(labels)
    assert labels in labels_module._SORTED and labels in labels_module._FORMATTED
