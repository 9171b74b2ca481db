"""The joined-runs residuals the fiftieth sitting left (2026-12-06): a value inside an IBAN is the IBAN's, `mask`
names each value it hides, and a reply streamed in any two pieces is labelled as the same reply read whole."""

from __future__ import annotations

import pytest

from tests.test_detector_card_and_phone_layouts import ALL, _streamed_differ


@pytest.mark.parametrize(
    "iban",
    [
        "GB09 RZNL 6907 0293 1375 85",
        "GB09-RZNL-6907-0293-1375-85",
        "IE42 CPMP 2678 0699 0384 58",
        "IE42-CPMP-2678-0699-0384-58",
        "gb09 rznl 6907 0293 1375 85",
    ],
)
@pytest.mark.parametrize(("lead", "tail"), [("acct ", ""), ("", " ok"), ("IBAN: ", ".")])
def test_an_ibans_account_digits_after_its_banks_letters_are_the_ibans(iban: str, lead: str, tail: str) -> None:
    # a run inside a found IBAN is the IBAN's, as a phone there already was. Before: `pii:credit_card` too where the
    # account digits pass Luhn, and with dashes `pii:phone` as well
    text = lead + iban + tail
    assert ALL.scan_output(text) == {"pii:iban"}
    assert ALL.mask(text) == lead + "[pii:iban]" + tail
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # the same digits with no IBAN before them (its check digits wrong, its head gone, its separators mixed) are
        # read as they are alone
        ("acct GB10 RZNL 6907 0293 1375 85", {"pii:credit_card", "pii:phone"}),
        ("pay RZNL 6907 0293 1375 85", {"pii:credit_card", "pii:phone"}),
        ("acct GB09-RZNL-6907 0293 1375 85", {"pii:credit_card", "pii:phone"}),
        ("acct GB09 RZNL 6907 0293 1375 85, card 4111 1111 1111 1111", {"pii:iban", "pii:credit_card"}),
    ],
)
def test_digits_outside_an_iban_are_read_as_alone(text: str, found: set[str]) -> None:
    assert ALL.scan_output(text) == found
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # a phone across a card's end, `1111-10.0.0.1`: its rest past the card is masked with its label, and the
        # address inside that rest with its own. Before: `[pii:credit_card][pii:phone]`, the address named nowhere
        (
            "x 4111 1111 1111 1111-10.0.0.1+1 555 123 4567 ok",
            "x [pii:credit_card][pii:phone][pii:ip_address]+1 555 123 4567 ok",
        ),
        # a card across an address's end, `200 1111 1111 1111`, a phone in its rest. Before: the phone named nowhere
        ("x 192.168.100.200 1111 1111 1111  ok", "x [pii:ip_address][pii:credit_card][pii:phone]  ok"),
        ("x 192.168.100.200-1111 1111 1111    ok", "x [pii:ip_address][pii:credit_card][pii:phone]    ok"),
        # folded (fullwidth digits): the masked form is the folded one. Before: the card named nowhere
        (
            "x 555 123 4567１２4111-1111-1111-1111１２a@b.co ok",
            "x [pii:phone][pii:email][pii:credit_card][pii:email] ok",
        ),
    ],
)
def test_a_value_inside_the_rest_of_another_is_masked_with_its_own_label(text: str, masked: str) -> None:
    assert ALL.mask(text) == masked
    assert {label for label in ALL.scan_output(text) if f"[{label}]" not in masked} == set()


def test_a_value_the_fold_finds_again_over_a_whole_rest_leaves_it_its_label() -> None:
    # the phone's rest past the card, `.168.100.200`, is the address the fold finds again from the same start: the
    # rest keeps its label, as before (nothing in clear either way)
    text = "x 555 123 4567１２-1234 192.168.100.200 ok"
    assert ALL.mask(text) == "x [pii:credit_card][pii:phone] ok"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # a window's last token longer than the end it holds back, a number ending it: the number is read with what
        # follows. Before: read as at the text's end, a card at 1 cut (`(`, `.`), a phone at 7-8 (`/`, `:`, `ID-`)
        ("q" * 130 + "(4111111111111111" + "z" * 20, set()),
        ("q" * 130 + "/4111111111111111" + "z" * 20, set()),
        ("q" * 130 + ":4111111111111111" + "z" * 20, set()),
        ("q" * 130 + "ID-4111111111111111" + "z" * 20, set()),
        ("q" * 300 + "1" + "ab" * 70 + "-4111-1111-1111-1111 ok", set()),
        # and found where it stands apart, as whole
        ("q" * 130 + "(4111111111111111) ok", {"pii:credit_card"}),
        ("q" * 130 + "/ID-4111 1111 1111 1111 ok", {"pii:credit_card"}),
    ],
)
def test_a_number_ending_a_long_token_at_a_windows_end_is_read_with_what_follows(text: str, found: set[str]) -> None:
    assert ALL.scan_output(text) == found
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize("spaces", [3, 6, 13, 24])
@pytest.mark.parametrize(
    ("lead", "rest"),
    [
        ("2024", "020 7946 0958  7"),
        ("2024", "555 123 4567  12"),
        ("31415", "555 123 4567  7"),
        ("2024", "07700 900123  7"),
    ],
)
def test_a_phone_written_as_phones_are_after_a_number_and_three_spaces_or_more_is_found(
    lead: str, rest: str, spaces: int
) -> None:
    # the phone in a layout phones are written in (3-3-4, 3-4-4, 5-6: `_ALIKE_CLASSES`) is read as it is alone, as
    # after 25 spaces, though the row holds more digits than a phone: a table's random columns seldom take that shape.
    # Before: none at 2-24 spaces, a phone from 25
    text = lead + " " * spaces + rest
    assert ALL.scan_output(text) == {"pii:phone"}
    assert "[pii:phone]" in ALL.mask(text)
    assert _streamed_differ(ALL, text) == []


@pytest.mark.parametrize(
    "text",
    [
        # at two spaces the row is one candidate, more digits than a phone has, as before
        "2024  020 7946 0958  7",
        "5986299671  747 409 9996  76",
        # not in a phone's layout, or the rest after it more digits than a phone has: a row
        "2024" + " " * 13 + "02 07946 0958  7",
        "2024" + " " * 13 + "020 7946 0958  71234",
    ],
)
def test_a_row_of_more_digits_than_a_phone_stays_a_row(text: str) -> None:
    assert ALL.scan_output(text) == frozenset()
    assert _streamed_differ(ALL, text) == []
