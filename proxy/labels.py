"""Data labels: the grammar every label obeys and the parsing of label lists from the wire."""

from __future__ import annotations

import re

from proxy.errors import InvalidRequest

MAX_LABELS = 64
_LABEL = re.compile(r"[a-z0-9][a-z0-9._:/-]{0,127}")


def is_label(text: str) -> bool:
    return _LABEL.fullmatch(text) is not None


def parse_labels(raw: str | None, *, source: str = "x-data-labels") -> frozenset[str]:
    """Split a comma-separated label list; a malformed entry is an InvalidRequest naming it."""
    if not raw:
        return frozenset()
    labels = [part.strip() for part in raw.split(",")]
    return check_labels(labels, source=source)


def check_labels(labels: list[str] | tuple[str, ...], *, source: str) -> frozenset[str]:
    """Validate a sequence of labels from `source`; empty entries are ignored."""
    kept = [label for label in labels if label]
    for label in kept:
        if not isinstance(label, str) or _LABEL.fullmatch(label) is None:
            raise InvalidRequest(
                f"{source}: invalid label {label!r}: labels match [a-z0-9][a-z0-9._:/-]{{0,127}}",
                param=source,
            )
    if len(kept) > MAX_LABELS:
        raise InvalidRequest(f"{source}: {len(kept)} labels given, at most {MAX_LABELS} allowed", param=source)
    return frozenset(kept)


def format_labels(labels: frozenset[str] | set[str]) -> str:
    """The wire form: sorted, comma-separated (stable, so headers and edge keys compare equal)."""
    return ",".join(sorted(labels))
