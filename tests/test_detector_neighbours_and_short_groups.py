"""Misses and false labels the detector sitting of 2026-12-04 left: a card followed by a phone written with dashes
(`4111 1111 1111 1111 555-123-4567`) was read as one number with the phone's first digits, and only the phone was
found; two bare mobiles side by side (`13800138000 13800138000`) and a phone in international form before another
(`+44 20 7946 0958 555-123-4567`) were not both found; a row of single digits or pairs (`0 0 0 0 0 0 0 0 0 0 0 0 0 0
0`, `23 24 25 26 27 28 29`) was a card, as no card is written; a time before numbers split by spaces was masked with
its minutes, `12:[pii:phone]`. A card written digit by digit or in pairs (`4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1`, `41 11 11
11 11 11 11 11`), as a person or a speech-to-text system writes one, was no card once single digits and pairs were
none: it is, when it starts as an issuer's cards do and has a length theirs have, and is no row's."""

from __future__ import annotations

import re
from typing import Any

import openai
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.harness import proxy_error
from tests.servers.vllm_like import SERVED

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])
CARDS_ONLY = Detectors([DetectorSpec("credit_card")])


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("4111 1111 1111 1111 555-123-4567", "[pii:credit_card] [pii:phone]"),  # before: the phone alone
        ("card 4111 1111 1111 1111 555-123-4567 thanks", "card [pii:credit_card] [pii:phone] thanks"),
        ("3782 822463 10005 555-123-4567", "[pii:credit_card] [pii:phone]"),  # an Amex, 4-6-5
        ("555-123-4567 4111 1111 1111 1111", "[pii:phone] [pii:credit_card]"),  # the phone first
        ("4111 1111 1111 1111 (555) 123-4567", "[pii:credit_card] [pii:phone]"),  # as before
        ("13800138000 13800138000", "[pii:phone] [pii:phone]"),  # before: neither
        ("电话 13800138000 13912345678 谢谢", "电话 [pii:phone] [pii:phone] 谢谢"),
        ("+44 20 7946 0958 555-123-4567", "[pii:phone] [pii:phone]"),  # before: the second alone
        ("+44 20 7946 0958 (555) 123-4567", "[pii:phone] [pii:phone]"),
        ("12:30 1234 5678 9012", "12:30 [pii:phone]"),  # before: `12:[pii:phone]`
        ("at 12:30 555 123 4567 ok", "at 12:30 [pii:phone] ok"),
        ("at 10:30 555-123-4567", "at 10:30 [pii:phone]"),  # as before
        # a time's hour in digits of another script, or its colon fullwidth, as in ASCII: before (helper joins3),
        # `at １２:[pii:phone] ok`, and phones alike after it captured folded, `at 12:30 [pii:phone] [pii:phone] ok`
        ("at \uff11\uff12:30 555 123 4567 ok", "at \uff11\uff12:30 [pii:phone] ok"),
        ("at \u0661\u0662:30 555 123 4567 555 123 4568 ok", "at \u0661\u0662:30 [pii:phone] [pii:phone] ok"),
        ("at 12\uff1a30 555 123 4567 ok", "at 12\uff1a30 [pii:phone] ok"),
        # a number, two spaces or more, then a phone: the phone alone, as after a no-break space; before (helper
        # joins3), masked with the number, `[pii:phone] ok`
        ("12  555 123 4567 ok", "12  [pii:phone] ok"),
        ("12   (555) 123-4567 ok", "12   [pii:phone] ok"),
        ("12  555 123 4567 4111 1111 1111 1111", "12  [pii:phone] [pii:credit_card]"),
        ("12 \u00a0555 123 4567 ok", "12 \u00a0[pii:phone] ok"),  # (as before)
        ("+1  555 123 4567 ok", "[pii:phone] ok"),  # (a country's code after a `+`: the phone's, as before)
    ],
)
def test_values_side_by_side_are_each_masked_as_far_as_they_go(text: str, masked: str) -> None:
    assert ALL.scan(text) == set(re.findall(r"\[(pii:\w+)\]", masked))
    assert ALL.mask(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",  # before: pii:credit_card
        "23 24 25 26 27 28 29",
        "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",  # (a run longer than any card: a row's)
        "1 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",  # (a window of a longer run: the card is not the whole run)
        "[4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1]",  # an array's row
        "[[4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1]\n [5 5 0 0 0 0 0 0 0 0 0 0 0 0 0 4]]",
        "0 1 1 0\n4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n1 0 0 1",  # a matrix's rows, without brackets
        "2 7 1 8 2 8 1 8 2 8\n5 5 0 0 0 0 0 0 0 0 0 0 0 0 0 4",
        "3 4 5 6 7 8 9 10 11 12 13",  # counting, 15 digits from 34: as an Amex's
        "45 44 43 42 41 40 39 38",  # counting down, 16 from 4
        "4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4",  # one digit throughout
        "1 0 1 1 0 1 0 0 1 1 1 0 1 0 1 1",  # a binary vector: no issuer's
        "9 7 8 0 3 0 6 4 0 6 1 5 7",  # no issuer's (an ISBN)
        "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",  # 17 digits: no Visa has
        "3 7 8 2 8 2 2 4 6 3 1 0 0 0 5 0",  # 16 digits from 37: no Amex has
        "5 5 0 0 0 0 0 0 0 0 0 0 0 0 0 5",  # Luhn fails
        "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\t4 1 1 1",
        "+4 1 1 1 1 1 1 1 1 1 1 1 1 1 1",  # after a `+`: a phone's, at most 15 digits
        "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",  # a hex dump's bytes
        "0-0-0-0-0-0-0-0-0-0-0-0-0-0-0",
        "23 24 25 26 27 28 29\n30 31",  # a calendar's weeks
    ],
)
def test_single_digits_and_pairs_are_no_card_unless_a_whole_card_an_issuers(text: str) -> None:
    assert CARDS_ONLY.scan(text) == frozenset()


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",
        "3782 822463 10005",  # Amex, 4-6-5
        "3056 930902 5904",  # Diners, 4-6-4
        "6304 0000 0000 0000 018",  # Maestro, 4-4-4-4-3
        "6759 6498 2643 8453 00",  # 4-4-4-4-2: a short group ends a card
        "4222 2222 2222 2",  # Visa's 13 digits, 4-4-4-1
        "4111-1111-1111-1111",
        "41111111 11111111",
        "4111111111111111",
    ],
)
def test_cards_as_they_are_written_are_still_found(card: str) -> None:
    digits = card.replace(" ", "").replace("-", "")
    doubled = [sum(divmod(2 * int(d), 10)) if (len(digits) - i) % 2 == 0 else int(d) for i, d in enumerate(digits)]
    assert sum(doubled) % 10 == 0  # (Luhn-valid)
    assert CARDS_ONLY.scan(f"pay with {card} today") == {"pii:credit_card"}


@pytest.mark.parametrize(
    "card",
    [
        "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",  # before: none of these
        "41 11 11 11 11 11 11 11",
        "4111 1111 1111 11 11",
        "5 5 0 0 0 0 0 0 0 0 0 0 0 0 0 4",  # Mastercard
        "55 00 00 00 00 00 00 04",
        "3 7 8 2 8 2 2 4 6 3 1 0 0 0 5",  # Amex, 15 digits
        "37 82 82 24 63 10 00 5",
        "6 0 1 1 1 1 1 1 1 1 1 1 1 1 1 7",  # Discover
        "3 5 3 0 1 1 1 3 3 3 3 0 0 0 0 0",  # JCB
        "3 0 5 6 9 3 0 9 0 2 5 9 0 4",  # Diners, 14 digits
        "6 2 1 2 3 4 5 6 7 8 9 0 1 2 3 2",  # UnionPay
        "2 2 2 1 0 0 0 0 0 0 0 0 0 0 0 9",  # Mastercard's 2-series
        "4 2 2 2 2 2 2 2 2 2 2 2 2",  # Visa's 13 digits
        "4-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1",
    ],
)
@pytest.mark.parametrize(("before", "after"), [("", ""), ("my card is ", " thanks"), ("card:\n", "\nexpires soon")])
def test_a_card_written_digit_by_digit_or_in_pairs_is_found(card: str, before: str, after: str) -> None:
    digits = card.replace(" ", "").replace("-", "")
    doubled = [sum(divmod(2 * int(d), 10)) if (len(digits) - i) % 2 == 0 else int(d) for i, d in enumerate(digits)]
    assert sum(doubled) % 10 == 0  # (Luhn-valid)
    text = before + card + after
    assert CARDS_ONLY.scan(text) == {"pii:credit_card"}
    assert CARDS_ONLY.mask(text) == f"{before}[pii:credit_card]{after}"
    assert "pii:credit_card" in ALL.scan(text)  # (15 digits or fewer are a phone too, as before: masked whole)
    assert re.fullmatch(rf"{re.escape(before)}\[pii:\w+\]{re.escape(after)}", ALL.mask(text))


def test_two_cards_written_digit_by_digit_on_lines_of_their_own_are_each_found() -> None:
    text = "cards:\n4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n5 5 0 0 0 0 0 0 0 0 0 0 0 0 0 4\n"
    assert ALL.mask(text) == "cards:\n[pii:credit_card]\n[pii:credit_card]\n"


_PAD = "the model wrote this reply for you, which is long enough to be read at once, so here: " * 2


@pytest.mark.parametrize(
    "body",
    [
        "4111 1111 1111 1111 555-123-4567",
        "555-123-4567 4111 1111 1111 1111",
        "13800138000 13800138000",
        "+44 20 7946 0958 555-123-4567",
        "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
        "23 24 25 26 27 28 29",
        "12:30 1234 5678 9012",
        "my card is 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
        "41 11 11 11 11 11 11 11",
        "4111 1111 1111 11 11",
        "1 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
        "0 1 1 0\n4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n1 0 0 1",
        "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
        "1 0 0 1 1 0 1 0 1 1 0 0 1 0 1 1 0 1 0 1 1 0 1 0 1 0 0 1 1 0 1 1 0 1\n4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
        "cards:\n4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n5 5 0 0 0 0 0 0 0 0 0 0 0 0 0 4",
        "1 2 3 4\n" + "x" * 70 + " 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
        "[[4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1]\n [5 5 0 0 0 0 0 0 0 0 0 0 0 0 0 4]]",
    ],
)
@pytest.mark.parametrize("after", ["", " ok " + _PAD])
def test_a_reply_streamed_finds_what_it_finds_whole_however_cut(body: str, after: str) -> None:
    text = _PAD + body + after
    whole = ALL.scan_output(text)
    differ = []
    for cut in range(len(_PAD) - 5, len(text) + 1):
        scanner = ALL.stream()
        scanner.feed(text[:cut])
        scanner.feed(text[cut:])
        scanner.end_text()
        if scanner.found != whole:
            differ.append((text[:cut][-24:], sorted(scanner.found)))
    assert not differ, (sorted(whole), differ)


CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
  default_purpose: assistant
zones:
  - name: payment
    labels: [pii:credit_card]
    allow_purposes: [assistant]
detectors: [credit_card]
lineage:
  store: ${STORE}
"""


@pytest.mark.parametrize("card", ["4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "41 11 11 11 11 11 11 11", "4111 1111 1111 11 11"])
def test_a_card_dictated_digit_by_digit_is_refused_where_its_zone_forbids_the_purpose(
    vllm: Any, make_proxy: Any, card: str
) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    messages: Any = [{"role": "user", "content": f"Book the flight, my card is {card}, thanks."}]
    with pytest.raises(openai.PermissionDeniedError) as refused:  # before: sent on, unlabelled
        client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    assert not server.data_requests()  # nothing reached the model
    allowed = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages)
    assert "pii:credit_card" in allowed.http_response.headers["x-data-labels"].split(",")


# a matrix of single digits, 16 a row: the middle row is a card's digits (UnionPay's, Luhn-valid), after a row as every
# row is, so read whole it is none
_ROWS = [
    "2 7 2 7 2 3 5 1 8 9 9 5 2 6 6 4",
    "4 3 9 0 7 5 1 4 7 6 7 0 6 4 7 8",
    "2 5 2 3 6 1 1 5 2 7 8 7 8 2 7 2",
    "0 3 6 5 4 7 4 0 6 1 3 0 9 5 6 4",
    "3 4 6 5 7 5 4 1 5 0 4 3 9 1 9 4",
    "0 4 5 1 6 7 4 8 4 5 2 7 0 1 6 7",
    "5 0 7 3 2 5 2 3 7 2 4 5 3 3 9 0",
    "9 7 4 7 7 7 5 6 6 1 3 5 0 5 1 6",
]
_MATRIX = "\n".join([*_ROWS, "6 2 2 7 4 4 6 9 7 9 0 4 8 7 5 7", *_ROWS]) + "\n"


@pytest.mark.parametrize("matrix", [_MATRIX, _MATRIX.replace(" ", "\u00a0")])  # (no-break spaces: read folded)
def test_a_matrix_row_a_stream_scanner_reads_again_at_its_tails_start_is_no_card(matrix: str) -> None:
    # before: a stream scanner's tail started at the card-like row's line (all its 256 characters numbers), which was
    # read again without the row before it, and was a card (32 of 544 cuts; 8 read folded)
    assert CARDS_ONLY.scan("6 2 2 7 4 4 6 9 7 9 0 4 8 7 5 7") == {"pii:credit_card"}
    assert CARDS_ONLY.scan_output(matrix) == frozenset()
    differ = []
    for cut in range(1, len(matrix)):
        scanner = CARDS_ONLY.stream()
        scanner.feed(matrix[:cut])
        scanner.feed(matrix[cut:])
        scanner.end_text()
        if scanner.found:
            differ.append(cut)
    for size in (128, 256):
        scanner = CARDS_ONLY.stream()
        for at in range(0, len(matrix), size):
            scanner.feed(matrix[at : at + size])
        scanner.end_text()
        if scanner.found:
            differ.append(-size)
    assert not differ


def test_a_card_written_digit_by_digit_after_a_long_reply_streamed_is_still_found() -> None:
    # (what a window read again is skipped only where it was read whole before)
    text = _PAD * 3 + "so: 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n" + _MATRIX
    missed = []
    for cut in range(len(_PAD) * 3 - 40, len(_PAD) * 3 + 60):
        for size in (1, 128, 300):
            scanner = CARDS_ONLY.stream()
            scanner.feed(text[:cut])
            for at in range(cut, len(text), size):
                scanner.feed(text[at : at + size])
            scanner.end_text()
            if scanner.found != {"pii:credit_card"}:
                missed.append((cut, size))
    assert not missed


@pytest.mark.parametrize(
    "text",
    [
        "1 2 3 4\r\n5 5 0 0 0 0 0 0 0 0 0 0 0 0 0 4\r\n",  # before: pii:credit_card (a CRLF line end's CR: no row's end)
        "0 1 1 0\r\n4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\r\n1 0 0 1",
        _MATRIX.replace("\n", "\r\n"),
        "[[1, 2, 3, 4],\r\n [5, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]]",
    ],
)
def test_a_matrix_row_after_a_row_ending_in_crlf_is_no_card(text: str) -> None:
    assert CARDS_ONLY.scan(text) == frozenset()
    assert CARDS_ONLY.scan_output(text) == frozenset()


def test_cards_written_digit_by_digit_on_lines_of_their_own_ending_in_crlf_are_each_found() -> None:
    text = "cards:\r\n4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\r\n5 5 0 0 0 0 0 0 0 0 0 0 0 0 0 4\r\n"
    assert ALL.mask(text) == "cards:\r\n[pii:credit_card]\r\n[pii:credit_card]\r\n"


def test_a_matrix_in_a_content_part_is_no_card_where_the_parts_meet(vllm: Any, make_proxy: Any) -> None:
    # a text part holding a matrix whose row 256 characters before its end is a card's digits (after a row, so none),
    # and a text part after it: the window read where the parts meet started at that row, without the row before it
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    matrix = "\n".join([*_ROWS, "6 2 2 7 4 4 6 9 7 9 0 4 8 7 5 7", *_ROWS[:7]]) + "\n"
    for content in [matrix + "thanks", [{"type": "text", "text": matrix}, {"type": "text", "text": "thanks"}]]:
        messages: Any = [{"role": "user", "content": content}]
        reply = client.chat.completions.with_raw_response.create(
            model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"}
        )  # before: the parts refused, purpose_denied, labelled pii:credit_card
        assert "pii:credit_card" not in reply.http_response.headers.get("x-data-labels", "").split(",")
    assert len(server.data_requests()) == 2
