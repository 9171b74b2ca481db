"""The detectors' residuals named on 2026-12-06, fixed on 2026-12-07 (helper det12): a phone after a double dot."""

from __future__ import annotations

import pytest

from tests.test_detector_card_and_phone_layouts import ALL, _streamed_differ

PAD = "word " * 30


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("x..555-123-4567", "x..[pii:phone]"),
        ("x...555-123-4567", "x...[pii:phone]"),
        ("call me..5551234567", "call me..[pii:phone]"),
        ("..555 123 4567", "..[pii:phone]"),
        ("x..(555) 123-4567", "x..[pii:phone]"),
        ("x..+1 555 123 4567", "x..[pii:phone]"),
        ("see..555.123.4567", "see..[pii:phone]"),
    ],
)
def test_a_phone_after_a_double_dot_is_found_as_after_a_space(text: str, masked: str) -> None:
    assert ALL.scan_output(text) == {"pii:phone"}
    assert ALL.mask(text) == masked
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []


@pytest.mark.parametrize("text", ["x.555-123-4567", "v1.5551234567", "x.(555) 123-4567"])
def test_a_phone_after_one_dot_is_joined_as_before(text: str) -> None:
    assert "pii:phone" not in ALL.scan_output(text)
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []
