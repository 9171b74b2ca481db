"""The memos of label sets' sorted and wire forms (`proxy/labels.py` `_SORTED`, `_FORMATTED`) hold up to `_KEPT`
sets. They stopped taking sets once full and were never emptied: a caller sending a new set on every call (4,096 calls)
filled them for good, and every honest caller's set was sorted and joined again on every call from then on. Full,
they are begun again, as `_GIVEN` (the spellings of labels) is."""

from __future__ import annotations

from proxy import labels as labels_module
from proxy.labels import format_labels, parse_labels, sorted_labels


def test_a_set_after_the_memos_filled_is_remembered() -> None:
    labels_module._SORTED.clear()
    labels_module._FORMATTED.clear()
    for n in range(labels_module._KEPT):  # a caller's labels, a new set on every call
        once = parse_labels(f"once-{n},team")
        sorted_labels(once)
        format_labels(once)
    assert len(labels_module._SORTED) == len(labels_module._FORMATTED) == labels_module._KEPT
    honest = parse_labels("health,team")
    assert format_labels(honest) == "health,team" and sorted_labels(honest) == ("health", "team")
    assert labels_module._FORMATTED.get(honest) == "health,team"
    assert labels_module._SORTED.get(honest) == ("health", "team")
    assert len(labels_module._SORTED) <= labels_module._KEPT and len(labels_module._FORMATTED) <= labels_module._KEPT
