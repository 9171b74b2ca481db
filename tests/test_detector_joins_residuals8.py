"""The joined-runs residual the fiftieth sitting left (2026-12-06): a card or a phone right after a found IBAN, in
the same run of numbers, is read as after a space, and `mask` hides both under their labels."""

from __future__ import annotations

import pytest

from tests.test_detector_card_and_phone_layouts import ALL, _streamed_differ

_IBANS = [
    "DE89 3704 0044 0532 0130 00",
    "DE89-3704-0044-0532-0130-00",
    "DE89370400440532013000",
    "GB82 WEST 1234 5698 7654 32",
    "GB09 RZNL 6907 0293 1375 85",
    "NO93 8601 1117 947",
    "de89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "QA97.JXWW.ED96.FC9C.A20F.B2BC.IFFF.0",
    "ES42 1460 0584 5609 2012 7926",
    "BE68 5390 0754 7034",
]

# an IBAN spaced, compact, with a bank code of letters, in lower case: found and masked after what comes before it
IBANS = [
    "DE89 3704 0044 0532 0130 00",
    "DE89370400440532013000",
    "GB82 WEST 1234 5698 7654 32",
    "de89 3704 0044 0532 0130 00",
]


@pytest.mark.parametrize("iban", _IBANS)
@pytest.mark.parametrize(
    ("value", "label"), [("4111 1111 1111 1111", "pii:credit_card"), ("555 123 4567", "pii:phone")]
)
def test_a_card_or_a_phone_right_after_an_iban_is_found_and_masked(iban: str, value: str, label: str) -> None:
    # the IBAN's length is its country's: where it ends, the run after it is read as after a space. Before: the IBAN
    # and the value were one run of numbers, no card nor phone was found, and `mask` left it in clear; an IBAN whose
    # last group is four characters, with the number after it, was no IBAN either (`ES42 … 7926 555`)
    text = f"acct {iban} {value} ok"
    assert ALL.scan_output(text) == {"pii:iban", label}
    assert ALL.mask(text) == f"acct [pii:iban] [{label}] ok"
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # the same runs with no IBAN found (check digits wrong, a country with another length) stay as they were
        ("acct DE88 3704 0044 0532 0130 00 4111 1111 1111 1111", set()),
        ("acct NO93 8601 1117 9471 4111 1111 1111 1111", set()),
        # and an IBAN with a number of its own after it adds nothing
        ("acct DE89 3704 0044 0532 0130 00 1234 ok", {"pii:iban"}),
        # nor are a French IBAN's last digits and the number after them a card any more (they were, masked as the IBAN)
        ("acct FR14 2004 1010 0505 0001 3M02 606 555 123 4567 ok", {"pii:iban", "pii:phone"}),
    ],
)
def test_what_follows_no_iban_is_read_as_before(text: str, found: set[str]) -> None:
    assert ALL.scan_output(text) == found
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize("before", ["invoice 2024", "room 12", "no. 4711"])
@pytest.mark.parametrize(
    "iban",
    IBANS,
)
def test_an_iban_after_a_number_is_found_and_masked(before: str, iban: str) -> None:
    # the search for an IBAN's groups started in the number before it (`24 DE89 3704 …`), that match was no IBAN, and
    # the search went on after its end: the IBAN in it was none, and `mask` left it in clear
    text = f"{before} {iban} ok"
    assert ALL.scan_output(text) == {"pii:iban"}
    assert ALL.mask(text) == f"{before} [pii:iban] ok"
    assert _streamed_differ(ALL, text) == []
