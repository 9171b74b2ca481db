"""Control characters inside a value (`alice\\u0000@example.com`, a card's digits with `\\x1f` between them) show
nothing and add one byte token to what the model reads, as a zero-width space does (llama.cpp's tokenizer of the
test model: `alice@example.com` is [272, 569, 48, 7434, 30, 824], `alice\\x00@example.com` the same with 190 between
`alice` and `@`). Default-ignorable characters were dropped before the detectors read a text, but control characters,
which no font draws either, were not: such an address or card reached the model for a purpose its zone forbids."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.harness import proxy_error
from tests.servers.vllm_like import SERVED

DETECTORS = Detectors([DetectorSpec(name) for name in ("email", "credit_card", "ip_address")])

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
  - name: personal
    labels: [pii:email, pii:credit_card]
    allow_purposes: [assistant]
detectors: [email, credit_card]
lineage:
  store: ${STORE}
"""


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("write to alice\x00@example.com", "pii:email"),
        ("write to alice@exam\x1fple.com", "pii:email"),
        ("write to alice@example\x7f.com", "pii:email"),
        ("schreib an jörg\x00@exämple.de", "pii:email"),  # in a text that is not ASCII
        ("write to alice\u0085@example.com", "pii:email"),  # (NEL: a line break, not dropped)
        ("card 4111\x001111\x001111\x001111", "pii:credit_card"),
        ("card 4111 1111\x1b 1111 1111", "pii:credit_card"),
        ("card 4111 1111\x9f 1111 1111", "pii:credit_card"),  # a C1 control, not ASCII
        ("card 4111\x00 1111 1111 1111 \u0100", "pii:credit_card"),
        ("write to alice\\u0000@example.com", "pii:email"),  # a JSON escape of one (a tool call's arguments)
        ("host 10.0.\x0012.7", "pii:ip_address"),
    ],
)
def test_a_value_with_control_characters_inside_is_found(text: str, label: str) -> None:
    if "\u0085" in text:  # a line break between the two halves: no address, with or without it
        assert label not in DETECTORS.scan(text)
        return
    assert label in DETECTORS.scan(text)


def test_control_characters_make_no_value_of_their_own() -> None:
    for text in ("alice\x00example.com", "4111\x00\x00 1111", "\x00\x01\x02", "version 1.2\x00.3"):
        assert not DETECTORS.scan(text) - {"pii:ip_address"}, text


def test_the_captured_content_masks_a_value_with_control_characters() -> None:
    assert "alice" not in DETECTORS.mask("write to alice\x00@example.com today")


def test_an_address_with_a_nul_inside_is_refused_where_its_zone_forbids_the_purpose(vllm: Any, make_proxy: Any) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    messages: Any = [{"role": "user", "content": "Send the invoice to alice\u0000@example.com"}]
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    assert not server.data_requests()  # nothing reached the model
    allowed = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages)
    assert "pii:email" in allowed.http_response.headers["x-data-labels"].split(",")
