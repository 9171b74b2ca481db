"""The joined-runs residuals the forty-seventh sitting left (helper joins4, 2026-12-06): a reply streamed in any two
pieces is labelled as the same reply read whole, and `mask` hides what `scan` labels. Each text is read whole, streamed
cut at every place (`_streamed_differ`), and masked."""

from __future__ import annotations

import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.test_detector_card_and_phone_layouts import _streamed_differ

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])
_PHONE = "555 123 4567 "
_CARD = "4111 1111 1111 1111"


def _masked_labels(text: str) -> set[str]:
    """The labels `mask` puts in `text`."""
    masked = ALL.mask(text)
    return {label for label in ("pii:phone", "pii:ip_address", "pii:credit_card") if f"[{label}]" in masked}


@pytest.mark.parametrize("dashes", [3, 7, 12, 16, 20])
def test_a_number_two_spaces_and_dashes_before_a_long_run_is_its_row_streamed_as_whole(dashes: int) -> None:
    # before: a window whose last 256 characters began at the two spaces read no number before them (the window held
    # it), its tail began at the second space, and the next window read the run as after white space: a phone at cuts
    # 381-385 (4-5 of ~1,600), none whole. `_PHONE` reaches from `12` across the spaces and up to 22 dashes to the
    # run's first digit: one candidate, a row's, no phones
    text = "12  " + "-" * dashes + _PHONE * 121 + "ok"
    assert ALL.scan_output(text) == frozenset()
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # the numbers before an IPv4 address read alone whatever the digits of the two (before: `12  555 123 4567`'s 12
        # and the address's 5, 17 together, refused the candidate as too many digits for a phone, and no phone)
        ("call 12  555 123 4567 10.0.0.1 ok", "call 12  [pii:phone] [pii:ip_address] ok"),
        ("call 12 555 123 4567 10.0.0.1 ok", "call [pii:phone] [pii:ip_address] ok"),
        ("call 020 7946 0958 10.0.0.1 ok", "call [pii:phone] [pii:ip_address] ok"),
        # with no-break spaces: whole reads them as spaces (no phone before), `mask` the text's own form (a phone):
        # they disagreed
        ("call 12\u00a0\u00a0555 123 4567 10.0.0.1 ok", "call 12\u00a0\u00a0[pii:phone] [pii:ip_address] ok"),
        ("call 12  555 123 4567\u00a010.0.0.1 ok", "call 12  [pii:phone]\u00a0[pii:ip_address] ok"),
        # an hour in superscript digits is a time's, as in any other digits: its minutes are not masked with the phone
        # (before: `at ²:[pii:phone]`)
        ("at \u00b2:30 555 123 4567 ok", "at \u00b2:30 [pii:phone] ok"),
        ("at \u00b9\u00b2:30 555 123 4567 ok", "at \u00b9\u00b2:30 [pii:phone] ok"),
        ("at \u2461:30 555-123-4567 ok", "at \u2461:30 [pii:phone] ok"),
        # as before
        ("call 555 123 4567 10.0.0.1 ok", "call [pii:phone] [pii:ip_address] ok"),
        ("id 1234 10.0.0.1 ok", "id 1234 [pii:ip_address] ok"),
        ("at 2:30 555 123 4567 ok", "at 2:30 [pii:phone] ok"),
    ],
)
def test_a_phone_before_an_address_or_after_a_time_is_labelled_masked_and_streamed_alike(
    text: str, masked: str
) -> None:
    found = ALL.scan_output(text)
    assert ALL.mask(text) == masked
    assert _masked_labels(text) == set(found) == set(ALL.scan(text))
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # more spaces (or separators) than `_PHONE` reaches across after numbers a candidate holds: the run after them
        # read alone, phones, and the numbers before as alone (before: one row across the gap whole, none; streamed,
        # the run after the gap alone, phones at 164 of ~230 cuts, or the row at others)
        ("555 123 4567" + " " * 25 + _PHONE * 121 + "ok", {"pii:phone"}),
        ("1234 5678" + " " * 30 + _PHONE * 121 + _CARD, {"pii:phone", "pii:credit_card"}),
        ("12 34 56 78" + " " * 300 + _PHONE * 121 + "ok", {"pii:phone"}),
        ("12  34 56" + " " * 60 + _PHONE * 121 + "ok", {"pii:phone"}),
        ("555 123 4567" + "-" * 30 + _PHONE * 121 + "ok", {"pii:phone"}),
        ("555 123 4567" + " - " * 10 + _PHONE * 121 + "ok", {"pii:phone"}),
        # within its reach, one row, no phones (whole as before; streamed, a phone at 3-4 cuts past 390 characters, the
        # window's tail begun at a space of the gap: as the dashes above)
        ("1234 5678" + " " * 24 + _PHONE * 121 + "ok", set()),
        ("555 123 4567" + " " * 20 + _PHONE * 121 + "ok", set()),
    ],
)
def test_numbers_a_wide_gap_is_after_are_no_row_with_the_run_after_it_whole_or_streamed(
    text: str, found: set[str]
) -> None:
    assert ALL.scan_output(text) == found
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # two phones a wide gap parts are each a phone (before: one row, none; written as phones, found as before)
        (
            "call 555 123 4567" + " " * 30 + "555 123 4568 ok",
            [("555 123 4567", "pii:phone"), ("555 123 4568", "pii:phone")],
        ),
        (
            "call 555-123-4567" + " " * 25 + "555-123-4568",
            [("555-123-4567", "pii:phone"), ("555-123-4568", "pii:phone")],
        ),
        # as before: two spaces in a row of numbers, a table's, none
        ("call 555 123 4567  555 123 4568 ok", []),
    ],
)
def test_phones_a_wide_gap_parts_are_each_found_and_masked(text: str, found: list[tuple[str, str]]) -> None:
    raw = text.encode()
    assert [(raw[f.start : f.end].decode(), f.label) for f in ALL.findings(text)] == found
    assert ALL.mask(text).count("[pii:phone]") == len(found)
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # a row ending in an IPv4 address: the numbers before it read alone, as a candidate ending in one is (before:
        # read with the address, bare phones side by side were no phones, and the address after a phone split by
        # spaces was a phone, the phone none)
        ("call 5551234567 5551234567 10.0.0.1 ok", "call [pii:phone] [pii:phone] [pii:ip_address] ok"),
        ("call 555 123 4567 192.168.100.200 ok", "call [pii:phone] [pii:ip_address] ok"),
        ("call 12        555 123 4567 10.0.0.1 ok", "call 12        [pii:phone] [pii:ip_address] ok"),
        # as before
        ("call 5551234567 5551234567 1234 ok", "call 5551234567 5551234567 1234 ok"),
        ("call 2024-01-15 2024-01-16 10.0.0.1 ok", "call 2024-01-15 2024-01-16 [pii:ip_address] ok"),
    ],
)
def test_numbers_a_row_ends_in_an_address_with_are_read_alone(text: str, masked: str) -> None:
    found = ALL.scan_output(text)
    assert ALL.mask(text) == masked
    assert _masked_labels(text) == set(found)
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize("space", [" ", "\u00a0"])
def test_bare_phones_after_a_wide_gap_before_an_address_streamed_as_whole(space: str) -> None:
    # before: the gap, read as a row's end since helper joins4's change, left bare phones before an address, no
    # phones whole, phones streamed at 199 of 375 cuts
    text = "x 12 34 56 78" + space * 25 + "5551234567 " * 30 + "10.0.0.1"
    assert ALL.scan_output(text) == {"pii:phone", "pii:ip_address"}
    assert _streamed_differ(ALL, text) == []
