"""Cards and phones the card sittings of 2026-12-04/05 still missed (2026-12-05, helper cards2): a card dictated digit
by digit with its expiry after it on the same line."""

from __future__ import annotations

import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.test_detector_card_and_phone_layouts import _streamed_differ

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])


def _found(text: str) -> list[tuple[str, str]]:
    raw = text.encode()
    return [(raw[f.start : f.end].decode(), f.label) for f in sorted(ALL.findings(text), key=lambda f: f.start)]


DICTATED = "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # before: none (cut at its 19th digit inside the expiry, the run was read as a longer one, a row's)
        (f"{DICTATED} 12 27", [(DICTATED, "pii:credit_card")]),
        (f"card {DICTATED} 1227 thanks", [(DICTATED, "pii:credit_card")]),
        (f"{DICTATED} 1227", [(DICTATED, "pii:credit_card")]),
        (f"{DICTATED} 12 27 123", [(DICTATED, "pii:credit_card")]),
        # as before: more numbers after (a row's), no month, no issuer's length, Luhn fails
        (f"{DICTATED} 12 27 5", []),
        (f"{DICTATED} 12/27", []),  # (a known miss: a slash ends the candidate, `_expiry_after`)
        (f"{DICTATED} 13 27", []),
        (f"{DICTATED} 1 12 27", []),
        ("4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 2 12 27", []),
        (f"[{DICTATED} 12 27]", []),
    ],
)
def test_a_card_dictated_with_its_expiry_is_found(text: str, found: list[tuple[str, str]]) -> None:
    assert _found(text) == found


@pytest.mark.parametrize(
    "body",
    [f"pay {DICTATED} 12 27 please", f"pay {DICTATED} 1227 123", f"{DICTATED} 12 27 5 6"],
)
def test_these_streamed_find_what_they_find_whole_at_every_cut(body: str) -> None:
    assert _streamed_differ(ALL, body) == []
