"""The joined-runs residuals the forty-ninth sitting left (helpers joins5 and revjoins5, 2026-12-06): `mask` hides
exactly what `scan` labels, and a reply streamed in any two pieces is labelled as the same reply read whole."""

from __future__ import annotations

import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.test_detector_card_and_phone_layouts import _streamed_differ

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])


@pytest.mark.parametrize("spaces", [13, 18, 24])
@pytest.mark.parametrize(
    ("lead", "rest", "found"),
    [
        ("12", "555 123 4567  7", {"pii:phone"}),
        ("12", "5551234567  7", {"pii:phone"}),
        ("call 12", "020 7946 0958  7 ok", {"pii:phone"}),
        ("2024", "555 123 4567  7", {"pii:phone"}),
        ("12", "555 123 4567 10.0.0.1", {"pii:phone", "pii:ip_address"}),
    ],
)
def test_a_number_and_spaces_before_a_phone_and_more_of_its_row_find_the_phone(
    lead: str, rest: str, found: set[str], spaces: int
) -> None:
    # the phone after the number is read as it is alone, as after two spaces (where the row is one candidate) or 25
    # and more. Before: none at 10-24 spaces (9-24 before a UK phone), the address alone at 24
    text = lead + " " * spaces + rest
    assert ALL.scan_output(text) == found
    assert ALL.mask(text).startswith(lead + " " * spaces + "[pii:phone]")
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    "text",
    [
        # a table's aligned columns: the rest after the first number no phone before its next two spaces, or the row
        # more digits than a phone has (none at two spaces either): as before, no phones
        "      11157      76915     358295\n",
        " 246182    802 814207    525\n",
        "  5495    79 99920 28446     5\n",
        "2024" + " " * 13 + "020 7946 0958  7",
        "12" + " " * 13 + "555 123 4567 555 123 4568  7",
    ],
)
def test_aligned_columns_after_a_number_and_spaces_stay_rows(text: str) -> None:
    assert ALL.scan_output(text) == frozenset()
    assert ALL.mask(text) == text
    assert _streamed_differ(ALL, text) == []
