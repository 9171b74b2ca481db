"""The labels of stored replies (the Responses API's `store`) a process keeps are bounded in bytes too, not only in
count: 65,536 replies of 64 labels of 128 characters each would otherwise have kept ~1 GB."""

from __future__ import annotations

from proxy.pipeline import StoredReplies

# 64 labels of 120 characters: what one call may send (`x-data-labels`), each reply another set of them
WIDE = [f"{n:03d}" + "x" * 117 for n in range(64)]


def labels(n: int) -> frozenset[str]:
    return frozenset(f"{label}{n}" for label in WIDE)


def test_wide_label_sets_are_forgotten_past_the_bytes_kept() -> None:
    stored = StoredReplies()
    for n in range(8000):  # ~65 MB of labels: fewer replies than the count bound (65,536)
        stored.remember(f"resp_{n}", labels(n))
    assert stored.labels("resp_7999") == labels(7999)  # the newest are kept
    assert stored.labels("resp_0") is None  # the oldest forgotten
    assert len(stored._labels) < 8000


def test_what_is_kept_is_counted_once_however_often_a_reply_is_remembered() -> None:
    one = len("resp_0") + 200 + sum(100 + len(label) for label in labels(0))
    stored = StoredReplies(most_bytes=3 * one)
    for _ in range(10):  # the same reply again and again: counted once
        stored.remember("resp_0", labels(0))
    for n in (1, 2):
        stored.remember(f"resp_{n}", labels(n))
    assert [stored.labels(f"resp_{n}") is not None for n in range(3)] == [True, True, True]
    stored.remember("resp_3", labels(3))  # a fourth: the oldest goes
    assert [stored.labels(f"resp_{n}") is not None for n in range(4)] == [False, True, True, True]
    stored.remember("resp_9", labels(0) | labels(1) | labels(2) | labels(3))  # larger than the whole bound
    assert stored.labels("resp_9") is None and stored._bytes == 0
