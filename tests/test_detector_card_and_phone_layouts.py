"""Card and phone layouts the detector sitting of 2026-12-04 left wrong (2026-12-05): a matrix whose numbers are split
by no-break spaces was a `pii:phone` streamed, cut in a row, where read whole it is none."""

from __future__ import annotations

import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.test_detector_neighbours_and_short_groups import _MATRIX

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])


def _streamed_differ(detectors: Detectors, text: str) -> list[tuple[int, list[str]]]:
    """The cuts at which `text` fed in two pieces is found to hold other labels than read whole."""
    whole = detectors.scan_output(text)
    differ = []
    for cut in range(1, len(text)):
        scanner = detectors.stream()
        scanner.feed(text[:cut])
        scanner.feed(text[cut:])
        scanner.end_text()
        if scanner.found != whole:
            differ.append((cut, sorted(scanner.found)))
    return differ


@pytest.mark.parametrize("space", ["\u00a0", "\u2009", "\u202f", "\u3000"])
def test_a_matrix_split_by_spaces_nfkc_reads_as_spaces_streamed_finds_what_it_finds_whole(space: str) -> None:
    # before: read to a cut in a row, the row's first ten digits were a phone (220 of 543 cuts with no-break spaces)
    matrix = _MATRIX.replace(" ", space)
    assert ALL.scan_output(matrix) == frozenset()
    assert _streamed_differ(ALL, matrix) == []
