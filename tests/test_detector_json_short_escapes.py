"""A tool call's `arguments` is JSON in a string, which servers parse (vLLM and llama.cpp hand templates the parsed
object; Qwen3-Coder's and GLM's print each value as it is), so JSON's escapes reach the model as the characters they
stand for. `\\u000a` was read as a newline, but the same newline written `\\n` (or a tab written `\\t`, as every JSON
encoder writes them) was read as a backslash and a letter: a card split by escaped newlines or tabs in a tool call's
arguments reached the model for a purpose its zone forbids."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.harness import proxy_error
from tests.servers.vllm_like import SERVED

CARD = "4111 1111 1111 1111"
DETECTORS = Detectors([DetectorSpec("credit_card"), DetectorSpec("email")])

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


@pytest.mark.parametrize("separator", ["\n", "\t", "\r\n"])
def test_a_card_split_by_escaped_white_space_in_json_text_is_found(separator: str) -> None:
    arguments = orjson.dumps({"card": CARD.replace(" ", separator)}).decode()  # `4111\n1111...` as JSON writes it
    assert "\\" in arguments and "pii:credit_card" in DETECTORS.scan(arguments)
    # as before: the same character written as a `\\u` escape, or as itself
    assert "pii:credit_card" in DETECTORS.scan(arguments.replace("\\n", "\\u000a").replace("\\t", "\\u0009"))
    assert "pii:credit_card" in DETECTORS.scan(CARD.replace(" ", separator))


def test_escapes_that_make_no_value_stay_clean() -> None:
    for text in ('{"a": "4111\\n1111"}', "C:\\new\\table 4111", '{"cmd": "ls\\n-la\\tx"}', "4111\\1111\\1111\\1111"):
        assert "pii:credit_card" not in DETECTORS.scan(text), text


def test_the_captured_content_masks_the_card_written_with_escapes() -> None:
    arguments = orjson.dumps({"card": CARD.replace(" ", "\n")}).decode()
    assert "4111" not in DETECTORS.mask(arguments)


def test_a_tool_calls_arguments_with_a_card_split_by_escaped_newlines_is_refused(vllm: Any, make_proxy: Any) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    arguments = orjson.dumps({"card": CARD.replace(" ", "\n")}).decode()
    messages: list[Any] = [
        {"role": "user", "content": "pay the invoice"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "pay", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "paid"},
    ]  # fmt: skip
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    assert not server.data_requests()  # nothing reached the model
    allowed = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages)  # a purpose it allows
    assert "pii:credit_card" in allowed.http_response.headers["x-data-labels"].split(",")
