"""A tool call's `arguments` numbers as servers print them again (`reprinted_numbers`: `{"a": 1e3}` reaches the model
as `{"a": 1000.0}`) are read beside the request's texts (`Request.decoded`), never among them: the texts are what the
input digest is computed from, and they are the call as sent. The OpenAI reader kept them apart; the Anthropic reader,
and the messages of a vLLM state carrier (a Responses call's `previous_response`), put them among the texts, so the
same call's input digest changed with how its numbers are spelled, and differed from the OpenAI reader's."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.protocols import anthropic, openai, text_digest

DETECTORS = Detectors([DetectorSpec("credit_card")])


def _messages(arguments: str) -> dict[str, Any]:
    block = {"type": "text", "text": "x", "arguments": arguments}
    return {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [block]}]}


def test_the_anthropic_reader_reads_reprinted_numbers_beside_the_texts() -> None:
    request = anthropic.read_request(orjson.dumps(_messages('{"a": 1e3}')))
    assert request.texts == ("x", '{"a": 1e3}')  # the call as sent: its digest that of its texts alone
    assert text_digest(request.texts) == text_digest(["x", '{"a": 1e3}'])
    assert request.decoded == ("1000.0",)
    card = anthropic.read_request(orjson.dumps(_messages('{"card": 4.111111111111111e15}')))
    assert "4111111111111111.0" not in card.texts and card.decoded == ("4111111111111111.0",)
    assert "pii:credit_card" in DETECTORS.scan_all(card.decoded)  # still found


def test_a_state_carriers_tool_call_numbers_are_read_beside_the_texts() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "pay", "arguments": '{"card": 4.111111111111111e15}'}}
    messages = [{"role": "user", "content": "pay it"}, {"role": "assistant", "content": None, "tool_calls": [call]}]
    carrier = "vllm:1:" + base64.b64encode(json.dumps(messages).encode()).decode() + ":" + "0" * 64
    item = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": carrier}
    body = {"model": "m", "input": "go on", "previous_response": {"id": "resp_1", "output": [item]}}
    request = openai.read_request("responses", orjson.dumps(body))
    assert "4111111111111111.0" not in request.texts
    assert request.decoded == ("4111111111111111.0",)
    assert "pii:credit_card" in DETECTORS.scan_all(request.decoded)
