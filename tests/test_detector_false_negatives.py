"""False negatives: values as people write them that the detectors did not find, so they reached a model unlabelled,
for any purpose. A phone or an IPv4 address at a sentence's end (`Call me at 555-123-4567.`, a CJK full stop `。`
read as `.`) was read as joined by its dot to more of a number; an address HTML-escaped by its number (`alice&#64;…`)
in a reply streamed with its pieces cut between the escape and its `;` was read `alice@;example.com`. Two phones or
two cards side by side, split by one space (`555-123-4567 555-987-6543`), or a card after a number (`order 12345 4111
1111 1111 1111`), were read as one number too long to be either, and none of them was found."""

from __future__ import annotations

import re
from typing import Any

import openai
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.configs import ONE_UPSTREAM_STORED
from tests.harness import proxy_error
from tests.servers.vllm_like import SERVED

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])

CONFIG = (
    ONE_UPSTREAM_STORED
    + """
zones:
  - name: contact
    labels: [pii:phone, pii:credit_card]
    allow_purposes: [assistant]
detectors: [phone, credit_card]
"""
)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Call me at 555-123-4567.", "pii:phone"),
        ("Call me at (555) 123-4567.", "pii:phone"),
        ("Call me at 555.123.4567.", "pii:phone"),
        ("Ring +44 20 7946 0958. Thanks", "pii:phone"),
        ("My SSN is 123-45-6789.\nbye", "pii:phone"),  # (no `ssn` detector: nine digits read as a phone)
        ("电话：13800138000。", "pii:phone"),  # the ideographic full stop, read as `.`
        ("Ｃａｌｌ ５５５-１２３-４５６７．", "pii:phone"),  # fullwidth
        ("The server is at 10.1.2.3.", "pii:ip_address"),
        ("host 10.96.36.188. ok", "pii:ip_address"),
    ],
)
def test_a_value_ending_a_sentence_is_found(text: str, label: str) -> None:
    assert ALL.scan(text) == {label}  # before: none
    masked = ALL.mask(text)  # `Call me at [pii:phone].`
    assert masked.count(f"[{label}]") == 1 and not any(char.isdigit() for char in masked), masked


@pytest.mark.parametrize(
    "text",
    [
        "version 1.2.3.4.5 out",  # a dot and a digit after it join: more of a number
        "10.1.2.3.4",
        "pi is 3.14159265358979.",  # a decimal number, a dot ending the sentence
        "took 12345.678901.",
    ],
)
def test_a_dot_joining_more_digits_still_joins(text: str) -> None:
    assert ALL.scan(text) == frozenset()


@pytest.mark.parametrize(
    ("content", "label"),
    [
        ("Please call me back at 555-123-4567.", "pii:phone"),
        ("Call 555-123-4567 555-987-6543 after five", "pii:phone"),
        ("Charge order 12345 4111 1111 1111 1111 today", "pii:credit_card"),
    ],
)
def test_a_call_holding_such_a_value_is_refused_for_a_purpose_its_zone_forbids(
    vllm: Any, make_proxy: Any, content: str, label: str
) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": content}]
    with pytest.raises(openai.PermissionDeniedError) as refused:  # before: answered, the value read by the model
        client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    assert not server.data_requests()  # nothing reached the model
    allowed = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages)
    assert label in allowed.http_response.headers["x-data-labels"].split(",")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call 555-123-4567 555-987-6543", "call [pii:phone] [pii:phone]"),
        ("call (555) 123-4567 (555) 987-6543 now", "call [pii:phone] [pii:phone] now"),
        ("call 555.123.4567 555.987.6543.", "call [pii:phone] [pii:phone]."),
        ("call 555-123-4567 555-987-6543 555-111-2222", "call [pii:phone] [pii:phone] [pii:phone]"),
        ("on 2024-01-15 555-123-4567", "on 2024-01-15 [pii:phone]"),
        ("4111 1111 1111 1111 5500 0000 0000 0004", "[pii:credit_card] [pii:credit_card]"),
        ("4111111111111111 5500000000000004", "[pii:credit_card] [pii:credit_card]"),
        ("4111-1111-1111-1111 5500-0000-0000-0004", "[pii:credit_card] [pii:credit_card]"),
        ("order 12345 4111 1111 1111 1111", "order 12345 [pii:credit_card]"),
        ("order #12345 4111111111111111", "order #12345 [pii:credit_card]"),
        ("order 12345 3782 822463 10005", "order 12345 [pii:credit_card]"),  # an Amex, 4-6-5
        ("card 4111 1111 1111 1111 12345", "card [pii:credit_card] 12345"),
        ("COVID19 4111111111111111 5500000000000004", "COVID19 [pii:credit_card] [pii:credit_card]"),
        # a phone whose dashes reach past where a candidate of two dates and more stops (26 characters), and a card
        # in groups after a date: before 2026-12-04 neither was found
        ("on 2024-01-15 2024-01-16 555-123-4567", "on 2024-01-15 2024-01-16 [pii:phone]"),
        ("on 2024-01-15 2024-01-16 (555) 123-4567.", "on 2024-01-15 2024-01-16 [pii:phone]."),
        ("card 3782 822463 10005 555.123.4567", "card [pii:credit_card] [pii:phone]"),
        ("2024-01-15 4111 1111 1111 1111 $42.00", "2024-01-15 [pii:credit_card] $42.00"),
        ("2024-01-15 3782 822463 10005", "2024-01-15 [pii:credit_card]"),
        ("charged 4111 1111 1111 1111 2024-01-15", "charged [pii:credit_card] 2024-01-15"),
    ],
)
def test_values_side_by_side_or_after_a_number_are_each_found(text: str, masked: str) -> None:
    assert ALL.scan(text) == set(re.findall(r"\[(pii:\w+)\]", masked))  # before: none
    assert ALL.mask(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "row 10 20 30 40 50 60 70 80 90 100 110",  # a table's row: no phone in it
        "dates 2024-01-15 2024-01-16 2024-01-17",
        "-0.0870868541 -124.203753 -0.0870868541",  # decimal numbers
        "37.7749295 -122.4194155 37.7749295",
        "row 1234 4111 1111 1111 1111",  # groups of four alone: a row (five random ones hold a card 1 in 6), as before
        "4111 1111 1111 1111 5500 0000 0000 0005",  # the second no card: a row of eight, as before
        "12345 4111 1111 1111 1112",  # no Luhn
        "2024-01-15 4111 1111 1111 1112",
        "1234-5678 4111 1111 1111 1111",  # groups of four, one pair joined by a dash: a row, as before
        "2024-01-15 1234 4111 1111 1111 1111",
        "12-34-56 12-34-56 12-34-56 12-34-56",  # no piece of nine digits: none read as alone
    ],
)
def test_rows_of_numbers_stay_clean(text: str) -> None:
    assert ALL.scan(text) == frozenset()


@pytest.mark.parametrize("escaped", ["alice&#64;example.com", "alice&#x40;example.com", "alice@example&#46;com"])
@pytest.mark.parametrize("after", ["", " thanks", "\n"])
def test_an_html_escaped_address_streamed_is_found_however_cut(escaped: str, after: str) -> None:
    text = "the model wrote this reply for you, which is long enough to be read at once: " * 3 + escaped + after
    assert ALL.scan_output(text) == {"pii:email"}
    start = text.index(escaped)
    for cut in range(start, start + len(escaped) + 1):
        scanner = ALL.stream()
        scanner.feed(text[:cut])
        scanner.feed(text[cut:])
        scanner.end_text()
        assert scanner.found == {"pii:email"}, cut  # before: none, cut after `&#64` (before its `;`)
