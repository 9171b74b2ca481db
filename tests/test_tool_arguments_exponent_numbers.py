"""A tool call's `arguments` is JSON in a string, which servers parse and print again: vLLM `json.loads` it for the
chat template (`tojson`), llama.cpp's llama-server `json::parse`s and `dump`s it. A number written with an exponent is
printed as its digits then: `{"card": 4.111111111111111e15}` reaches the model as `{"card": 4111111111111111.0}`, a
card no detector found in the string as sent, so such a call went through for a purpose the card's zone forbids (as
a tool call's `arguments` given as an object, whose numbers were read, did not)."""

from __future__ import annotations

import json
from typing import Any

import openai
import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.protocols.openai import read_native, read_request
from tests.harness import proxy_error
from tests.servers.vllm_like import SERVED

DETECTORS = Detectors([DetectorSpec("credit_card")])
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
    labels: [pii:credit_card]
    allow_purposes: [assistant]
detectors: [credit_card]
telemetry: {exporter: none}
lineage:
  store: ${STORE}
"""
SPELLINGS = ["4.111111111111111e15", "4.111111111111111E+15", "41111111111111110e-1", "0.4111111111111111e16"]


def chat(arguments: str) -> dict[str, Any]:
    call = {"id": "call_1", "type": "function", "function": {"name": "pay", "arguments": arguments}}
    return {"model": "m", "messages": [{"role": "user", "content": "pay it"},
                                       {"role": "assistant", "content": None, "tool_calls": [call]}]}  # fmt: skip


def found(request: Any) -> frozenset[str]:
    return DETECTORS.scan_all(request.texts) | DETECTORS.scan_all(request.decoded)


@pytest.mark.parametrize("number", SPELLINGS)
def test_a_card_written_with_an_exponent_in_a_tool_calls_arguments_is_found(number: str) -> None:
    arguments = '{"card": ' + number + ', "memo": "x"}'
    assert json.dumps(json.loads(arguments)) == '{"card": 4111111111111111.0, "memo": "x"}'  # as vLLM prints it
    assert "pii:credit_card" in found(read_request("chat", orjson.dumps(chat(arguments))))
    item = {"type": "function_call", "call_id": "c1", "name": "pay", "arguments": arguments}
    assert "pii:credit_card" in found(read_request("responses", orjson.dumps({"model": "m", "input": [item]})))
    template = {"messages": chat(arguments)["messages"]}  # llama.cpp's /apply-template
    assert "pii:credit_card" in found(read_native("apply_template", orjson.dumps(template)))
    # with what orjson refuses and Python's json, as vLLM parses it, reads: NaN, an integer past 64 bits
    for beside in ('"a": NaN', '"b": 123456789012345678901234567890'):
        refused = "{" + beside + ', "card": ' + number + "}"
        assert "pii:credit_card" in found(read_request("chat", orjson.dumps(chat(refused))))


def test_other_numbers_and_text_stay_as_they_are() -> None:
    request = read_request("chat", orjson.dumps(chat('{"amount": 1.5e3, "n": 4111111111111111e-9}')))
    assert not found(request)
    assert request.texts[-1] == '{"amount": 1.5e3, "n": 4111111111111111e-9}'  # the string as sent, in the digest
    assert read_request("chat", orjson.dumps(chat("not json 4.111111111111111e15"))).decoded == ()
    content = {"model": "m", "messages": [{"role": "user", "content": "4.111111111111111e15"}]}  # printed as is
    assert read_request("chat", orjson.dumps(content)).decoded == ()


def test_such_a_call_is_refused_where_the_cards_zone_forbids_the_purpose(vllm: Any, make_proxy: Any) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    messages: Any = chat('{"card": 4.111111111111111e15}')["messages"]
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    assert not server.data_requests()  # nothing reached the model
    allowed = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages)
    assert "pii:credit_card" in allowed.http_response.headers["x-data-labels"].split(",")


def test_the_number_is_read_beside_the_texts_not_among_them() -> None:
    """Read as escaped text is (`decoded`): the input's digest stays that of what was sent, and captured content,
    which cannot mask the card in the string as sent, is withheld (`Pipeline._content`)."""
    request = read_request("chat", orjson.dumps(chat('{"card": 4.111111111111111e15}')))
    assert request.decoded == ("4111111111111111.0",)
    assert "4111111111111111.0" not in request.texts
