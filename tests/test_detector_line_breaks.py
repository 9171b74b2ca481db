"""Every line break reads as one: a card whose groups of four are on lines of their own was found split by LF or CR LF,
but not by the other line breaks Unicode and JSON text carry (VT, FF, NEL, U+2028 LINE SEPARATOR, U+2029 PARAGRAPH
SEPARATOR, which JavaScript's `JSON.stringify` writes as they are), so such a card reached the model for a purpose its
zone forbids. The look-alikes that a newline does not make a card stay clean with the other breaks too."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.harness import proxy_error
from tests.servers.vllm_like import SERVED

DETECTORS = Detectors([DetectorSpec("credit_card"), DetectorSpec("email")])
BREAKS = ["\x0b", "\x0c", "\x85", "\u2028", "\u2029"]

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


@pytest.mark.parametrize("line_break", BREAKS)
def test_a_card_on_lines_of_its_own_is_found_whatever_breaks_them(line_break: str) -> None:
    assert "pii:credit_card" in DETECTORS.scan("card:\n4111\n1111\n1111\n1111\nthanks")  # as before
    assert "pii:credit_card" in DETECTORS.scan(f"card:{line_break}4111{line_break}1111{line_break}1111{line_break}1111")
    assert "pii:credit_card" in DETECTORS.scan(f"pay 4111{line_break}1111{line_break}1111{line_break}1111 now, jörg")


def test_a_card_split_by_escaped_form_feeds_is_found() -> None:
    assert "pii:credit_card" in DETECTORS.scan(orjson.dumps({"card": "4111\f1111\f1111\f1111"}).decode())


@pytest.mark.parametrize("line_break", BREAKS)
def test_what_a_newline_makes_no_card_the_other_breaks_do_not_either(line_break: str) -> None:
    for text in ("4111\n1111\n1111\n1111\n1111", "1234\n5678\n9012\n3456", "4111\n1111"):
        assert "pii:credit_card" not in DETECTORS.scan(text), text  # a column, not a card; too short
        assert "pii:credit_card" not in DETECTORS.scan(text.replace("\n", line_break)), text


def test_the_captured_content_masks_a_card_split_by_form_feeds() -> None:
    assert "4111" not in DETECTORS.mask("card 4111\f1111\f1111\f1111 thanks")


def test_a_card_split_by_line_separators_is_refused_where_its_zone_forbids_the_purpose(
    vllm: Any, make_proxy: Any
) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    messages: Any = [{"role": "user", "content": "card:\u20284111\u20281111\u20281111\u20281111"}]
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    assert not server.data_requests()  # nothing reached the model
