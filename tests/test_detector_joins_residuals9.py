"""The IBAN residuals the fifty-first sitting left (2026-12-07): an IBAN right after a look-alike's head, and a card
joined by a dash to an IBAN's end, are found, and `mask` hides them under their labels."""

from __future__ import annotations

import pytest

from tests.test_detector_card_and_phone_layouts import ALL, _streamed_differ
from tests.test_detector_joins_residuals8 import IBANS


@pytest.mark.parametrize("head", ["AB12", "XY99", "ab12"])
@pytest.mark.parametrize(
    "iban",
    [*IBANS, "NO93 8601 1117 947"],
)
def test_an_iban_after_a_look_alikes_head_is_found_and_masked(head: str, iban: str) -> None:
    # the search for an IBAN's groups started at the look-alike's head (`AB12 DE89 3704 …`), that match was no IBAN,
    # and the search went on after its end: the IBAN in it was none, and `mask` left it in clear
    text = f"ref {head} {iban} ok"
    assert ALL.scan_output(text) == {"pii:iban"}
    assert ALL.mask(text) == f"ref {head} [pii:iban] ok"
    assert _streamed_differ(ALL, text) == []


def test_a_phone_after_an_iban_after_a_look_alikes_head_is_found_with_it() -> None:
    text = "ref AB12 ES42 1460 0584 5609 2012 7926 555 123 4567"
    assert ALL.scan_output(text) == {"pii:iban", "pii:phone"}
    assert ALL.mask(text) == "ref AB12 [pii:iban] [pii:phone]"
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    "text",
    [
        # a list of look-alikes, their letters a country's or not, holds no IBAN
        "AB12 CD34 EF56 GH78 IJ90 KL12 MN34 OP56 QR78",
        "DE12 AT34 FR56 GB78 IT90 ES12 NL34 BE56",
        "ref AB12 DE88 3704 0044 0532 0130 00 ok",
    ],
)
def test_look_alikes_after_a_look_alikes_head_are_none(text: str) -> None:
    assert ALL.scan_output(text) == set()
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    "iban",
    [
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "GB82 WEST 1234 5698 7654 32",
        "ES91 2100 0418 4502 0005 1332",
    ],
)
@pytest.mark.parametrize("card", ["4111-1111-1111-1111", "4111 1111 1111 1111", "4111111111111111"])
def test_a_card_joined_by_a_dash_to_an_ibans_end_is_found_and_masked(iban: str, card: str) -> None:
    # the IBAN, read to its country's length, was none to the card finder with a dash after it, and the card after
    # the dash was joined to the IBAN's digits, a longer number's groups: none, and `mask` left it in clear
    text = f"acct {iban}-{card} ok"
    assert ALL.scan_output(text) == {"pii:iban", "pii:credit_card"}
    assert ALL.mask(text) == "acct [pii:iban]-[pii:credit_card] ok"
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # a look-alike's groups and a dashed card stay one longer number
        ("acct DE88 3704 0044 0532 0130 00-4111-1111-1111-1111", set()),
        # a phone after the dash is found as before, and a number of its own after it adds nothing
        ("acct DE89 3704 0044 0532 0130 00-555-123-4567", {"pii:iban", "pii:phone"}),
        ("acct DE89 3704 0044 0532 0130 00-1234", {"pii:iban"}),
        # a dot after the IBAN's last digits is a decimal point's: the phone after it is found as before
        ("acct DE89 3704 0044 0532 0130 00.555-123-4567", {"pii:iban", "pii:phone"}),
    ],
)
def test_what_a_dash_joins_otherwise_is_read_as_before(text: str, found: set[str]) -> None:
    assert ALL.scan_output(text) == found
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    "iban",
    [
        "DE89.3704.0044.0532.0130.00",
        "ES91.2100.0418.4502.0005.1332",
        "GB82.WEST.1234.5698.7654.32",
        "de89.3704.0044.0532.0130.00",
        "DE89-3704-0044-0532-0130-00",
        # (its last group of four: the card's first groups are searched for after it; the IBAN of four groups only)
        "AL66.4892.4901.6329.8058.9915.1957",
        "BE40-9919-0669-1130",
    ],
)
def test_an_iban_and_a_card_in_one_dotted_or_dashed_run_are_found_and_masked(iban: str) -> None:
    # the card's groups were one group of more joined to the IBAN the same way, a longer number: neither was found,
    # and `mask` left both in clear (an IBAN whose last group is four characters took the card's first group in)
    joint = iban[4]
    text = f"acct {iban}{joint}{joint.join(['4111'] + ['1111'] * 3)} ok"
    assert ALL.scan_output(text) == {"pii:iban", "pii:credit_card"}
    assert ALL.mask(text) == f"acct [pii:iban]{joint}[pii:credit_card] ok"
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # no IBAN (check digits wrong), no card (Luhn fails), or a group more after the card: one longer number
        ("acct DE88.3704.0044.0532.0130.00.4111.1111.1111.1111", set()),
        ("acct DE89.3704.0044.0532.0130.00.4111.1111.1111.1112", set()),
        ("acct DE89.3704.0044.0532.0130.00.4111.1111.1111.1111.1111", set()),
        ("acct DE89.3704.0044.0532.0130.00.1234", set()),
        # a card joined by a dot to a dashed IBAN is found, a word after it or not (before: only at the text's end)
        ("acct DE89-3704-0044-0532-0130-00.4111.1111.1111.1111", {"pii:iban", "pii:credit_card"}),
    ],
)
def test_what_a_dotted_run_holds_otherwise_is_read_as_alone(text: str, found: set[str]) -> None:
    assert ALL.scan_output(text) == found
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # an IBAN ending in a letter, a card joined by a dash after it (no candidate of the card finder was in it)
        ("acct ps91yujqgiicij8f8449j93ci315h-4111-1111-1111-1111", "acct [pii:iban]-[pii:credit_card]"),
        ("acct BH61RBZOE0407FFHIDDFCG-4111 1111 1111 1111", "acct [pii:iban]-[pii:credit_card]"),
        # a phone joined by a dot to an IBAN's end, read as after a space, not as a decimal's digits
        ("acct DE89370400440532013000.555-123-4567", "acct [pii:iban].[pii:phone]"),
        ("acct DE89 3704 0044 0532 0130 00.555-123-4567", "acct [pii:iban].[pii:phone]"),
        ("ref AB12 de89 3704 0044 0532 0130 00.555-123-4567", "ref AB12 [pii:iban].[pii:phone]"),
        # a card joined by a dot to an IBAN's end, read as after a space: not a decimal's digits, nor the last group of
        # a longer dotted number that starts in the IBAN's last digits
        ("acct DE89370400440532013000.4111111111111111", "acct [pii:iban].[pii:credit_card]"),
        ("acct DE89 3704 0044 0532 0130 00.4111111111111111", "acct [pii:iban].[pii:credit_card]"),
        ("acct DE89370400440532013000.4111.1111.1111.1111", "acct [pii:iban].[pii:credit_card]"),
        ("acct ES9121000418450200051332.4111.1111.1111.1111 ok", "acct [pii:iban].[pii:credit_card] ok"),
        # a card or a phone joined by a dot to a dashed IBAN's end, or by a dash to a dotted one's
        ("acct DE89-3704-0044-0532-0130-00.555-123-4567", "acct [pii:iban].[pii:phone]"),
        ("acct DE89-3704-0044-0532-0130-00.4111111111111111", "acct [pii:iban].[pii:credit_card]"),
        ("acct DE89.3704.0044.0532.0130.00-555-123-4567", "acct [pii:iban]-[pii:phone]"),
        # joined by the dash its groups are split by: a phone too (since 2026-12-07, test_detector_joins_residuals10)
        ("acct DE89-3704-0044-0532-0130-00-555-123-4567", "acct [pii:iban]-[pii:phone]"),
        # no IBAN ends at the dot: a decimal's digits, a longer dotted number, as alone
        ("acct DE88370400440532013000.4111111111111111", "acct DE88370400440532013000.4111111111111111"),
        ("acct DE88370400440532013000.4111.1111.1111.1111", "acct DE88370400440532013000.4111.1111.1111.1111"),
        ("acct 12.4111111111111111", "acct 12.4111111111111111"),
        ("acct 1234.4111.1111.1111.1111", "acct 1234.4111.1111.1111.1111"),
    ],
)
def test_a_value_joined_to_an_ibans_end_is_read_as_after_a_space(text: str, masked: str) -> None:
    assert ALL.mask(text) == masked
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    "text",
    [
        # an IBAN's groups with one group of more joined before them the same way are a longer number's, and the card
        # joined after them is in that run too: no IBAN ends at the dash or dot before the card (`_iban_ends_at`)
        "1234-DE89-3704-0044-0532-0130-00-4111-1111-1111-1111",
        "x-DE89-3704-0044-0532-0130-00-4111-1111-1111-1111",
        "1234.DE89.3704.0044.0532.0130.00.4111.1111.1111.1111",
        "v1.DE89.3704.0044.0532.0130.00.4111.1111.1111.1111",
        "x-DE89-3704-0044-0532-0130-00.555-123-4567",
    ],
)
def test_a_value_after_an_ibans_groups_joined_to_more_before_is_none(text: str) -> None:
    assert ALL.scan_output(text) == set()
    assert ALL.mask(text) == text
    assert _streamed_differ(ALL, text) == []
