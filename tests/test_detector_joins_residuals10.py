"""The IBAN residuals the fifty-second sitting left (2026-12-07): a dashed or dotted IBAN with a card or a phone joined
by its own dash or dot is found with that value, and `mask` hides both under their labels; what else is so joined
stays one longer number's groups."""

from __future__ import annotations

import pytest

from tests.test_detector_card_and_phone_layouts import ALL, _streamed_differ

# IBANs split by dashes or dots: a last group of two, of four (the value's first digits are matched with the IBAN's
# groups), of three, in lower case
IBANS = [
    "DE89-3704-0044-0532-0130-00",
    "DE89.3704.0044.0532.0130.00",
    "de89-3704-0044-0532-0130-00",
    "GB82.WEST.1234.5698.7654.32",
    "AT61-1904-3002-3457-3201",
    "BE68.5390.0754.7034",
    "NO93-8601-1117-947",
]


@pytest.mark.parametrize("iban", IBANS)
@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("555-123-4567", "pii:phone"),
        ("(555) 123-4567", "pii:phone"),
        ("4111 1111 1111 1111", "pii:credit_card"),
        ("4111111111111111", "pii:credit_card"),
    ],
)
@pytest.mark.parametrize("after", ["", " ok"])
def test_a_value_joined_by_an_ibans_own_dash_or_dot_is_found_with_it(
    iban: str, value: str, label: str, after: str
) -> None:
    # the value was one group of more joined to the IBAN the same way, a longer number: neither was found, and `mask`
    # left both in clear
    joint = iban[4]
    text = f"acct {iban}{joint}{value}{after}"
    assert ALL.scan_output(text) == {"pii:iban", label}
    assert ALL.mask(text) == f"acct [pii:iban]{joint}[{label}]{after}"
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    "text",
    [
        # no value after the joint: one longer number, as before
        "acct DE89-3704-0044-0532-0130-00-1234",
        "acct DE89.3704.0044.0532.0130.00.1234.5678",
        # the value joined to more the same way, or to a word: no value there either
        "acct DE89-3704-0044-0532-0130-00-1234-5678",
        "acct DE89.3704.0044.0532.0130.00.555-123-4567x",
        "acct DE89.3704.0044.0532.0130.00.4111.1111.1111.1111.1111",
        "acct DE89-3704-0044-0532-0130-00-4111-1111-1111-1111-22",
        # (a value the finders read alone, then more joined by the joint: `_ends_the_run`)
        "acct DE89-3704-0044-0532-0130-00-555-123-4567-x",
        "acct DE89-3704-0044-0532-0130-00-4111111111111111-1",
        "acct DE89-3704-0044-0532-0130-00-4111 1111 1111 1111-1",
        # the IBAN's groups of four going on: a phone or a card read alone, but one longer number's groups here
        "acct ES91-2100-0418-4502-0005-1332-1234-5678-9012",
        # a look-alike, its check digits wrong
        "acct DE88-3704-0044-0532-0130-00-555-123-4567",
        "acct DE88-3704-0044-0532-0130-00-4111 1111 1111 1111",
        # one group of more joined before the IBAN's head the same way: a longer number's groups
        "1234-DE89-3704-0044-0532-0130-00-555-123-4567",
        "v1.DE89.3704.0044.0532.0130.00.555-123-4567",
        "build 1.2.34-DE89-3704-0044-0532-0130-00-555-123-4567",
    ],
)
def test_what_else_a_dashed_or_dotted_iban_is_joined_to_is_none(text: str) -> None:
    assert ALL.scan_output(text) == set()
    assert ALL.mask(text) == text
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # a value read alone after a group of the run's: the group is the IBAN's going on, the value is found as alone
        ("acct DE89-3704-0044-0532-0130-00-12/555-123-4567", "acct DE89-3704-0044-0532-0130-00-12/[pii:phone]"),
        ("acct DE89.3704.0044.0532.0130.00.12/555-123-4567", "acct DE89.3704.0044.0532.0130.00.12/[pii:phone]"),
    ],
)
def test_a_value_after_a_group_joined_to_an_ibans_end_is_found_as_alone(text: str, masked: str) -> None:
    assert ALL.scan_output(text) == {"pii:phone"}
    assert ALL.mask(text) == masked
    assert _streamed_differ(ALL, text) == []


# prose around a text, so that each piece fed is read in a window of its own (a piece shorter than the stream's
# overlap waits for more, and a short text cut in two is read whole)
PAD = "word " * 30


@pytest.mark.parametrize(
    "text",
    [
        "acct DE89-3704-0044-0532-0130-00-555-123-4567" + " 1" * 40,
        "acct DE89.3704.0044.0532.0130.00.555-123-4567" + " 1" * 40,
        "acct DE89370400440532013000.555-123-4567" + " 1" * 40,
        "acct DE89 3704 0044 0532 0130 00-555-123-4567" + " 1" * 40,
    ],
)
def test_a_phone_joined_to_an_ibans_end_then_a_row_is_found_whole_and_streamed(text: str) -> None:
    # the phone, a piece of the row after a sign, was none whole; streamed in a window ending after it, a phone (and
    # the rest of a dashed or dotted IBAN's run read longer than a window's, no IBAN whole, one streamed)
    assert ALL.scan_output(text) == {"pii:iban", "pii:phone"}
    assert ALL.mask(text).startswith("acct [pii:iban]")
    assert _streamed_differ(ALL, f"{PAD}{text} {PAD}") == []
