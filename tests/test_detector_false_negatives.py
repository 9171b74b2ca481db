"""False negatives: values as people write them that the detectors did not find, so they reached a model unlabelled,
for any purpose. A phone or an IPv4 address at a sentence's end (`Call me at 555-123-4567.`, a CJK full stop `。`
read as `.`) was read as joined by its dot to more of a number; an address HTML-escaped by its number (`alice&#64;…`)
in a reply streamed with its pieces cut between the escape and its `;` was read `alice@;example.com`."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.harness import proxy_error
from tests.servers.vllm_like import SERVED

ALL = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address", "iban")])

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
  - name: contact
    labels: [pii:phone]
    allow_purposes: [assistant]
detectors: [phone]
lineage:
  store: ${STORE}
"""


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


def test_a_call_with_a_phone_ending_a_sentence_is_refused_for_a_purpose_its_zone_forbids(
    vllm: Any, make_proxy: Any
) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "Please call me back at 555-123-4567."}]
    with pytest.raises(openai.PermissionDeniedError) as refused:  # before: answered, the phone read by the model
        client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    assert not server.data_requests()  # nothing reached the model
    allowed = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages)
    assert "pii:phone" in allowed.http_response.headers["x-data-labels"].split(",")


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
