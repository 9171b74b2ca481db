"""A tool call's `arguments` string is parsed and printed again by the server (vLLM `json.loads` then `tojson`), so
a number is printed as the double it parses to. A number written with more digits than a double holds is rounded
then: `{"card": 4111111111111110.99999999}` reaches the model as `{"card": 4111111111111111.0}`, a card no detector
found in the string as sent. Only numbers written with an exponent were read as printed again, so such a call went
through for a purpose the card's zone forbids."""

from __future__ import annotations

import json
from typing import Any

import openai
import orjson
import pytest

from proxy.protocols.openai import read_native, read_request
from tests.harness import proxy_error
from tests.servers.vllm_like import SERVED
from tests.test_tool_arguments_exponent_numbers import CONFIG, chat, found

ROUNDED = [
    ("4111111111111110.99999999", "4111111111111111.0"),  # below 2**52 a double's step is 0.5
    ("5555555555554443.6", "5555555555554444.0"),  # above it, 1
]


@pytest.mark.parametrize(("number", "printed"), ROUNDED)
def test_a_card_rounded_from_a_long_decimal_in_a_tool_calls_arguments_is_found(number: str, printed: str) -> None:
    arguments = '{"card": ' + number + "}"
    assert json.dumps(json.loads(arguments)) == '{"card": ' + printed + "}"  # as vLLM prints it
    assert "pii:credit_card" in found(read_request("chat", orjson.dumps(chat(arguments))))
    template = {"messages": chat(arguments)["messages"]}  # llama.cpp's /apply-template
    assert "pii:credit_card" in found(read_native("apply_template", orjson.dumps(template)))


def test_ordinary_decimals_are_not_read_again() -> None:
    """Numbers a double holds exactly print as written: nothing is read beside the texts (one reading)."""
    request = read_request("chat", orjson.dumps(chat('{"amount": 12.5, "lat": 48.8566, "id": "9f1e2c"}')))
    assert request.decoded == ()
    small = read_request("chat", orjson.dumps(chat('{"learning_rate": 1e-05, "amount": 12.5}')))  # printed as written
    assert small.decoded == ()


def test_a_reprinted_number_inside_a_longer_one_is_still_read() -> None:
    arguments = '{"ref": "94111111111111111.05", "card": 4.111111111111111e15}'
    assert "pii:credit_card" in found(read_request("chat", orjson.dumps(chat(arguments))))
    glued = '{"ref": "x4111111111111111.0", "card": 4.111111111111111e15}'
    assert "pii:credit_card" in found(read_request("chat", orjson.dumps(chat(glued))))


def test_such_a_call_is_refused_where_the_cards_zone_forbids_the_purpose(vllm: Any, make_proxy: Any) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    messages: Any = chat('{"card": 4111111111111110.99999999}')["messages"]
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    assert not server.data_requests()  # nothing reached the model
