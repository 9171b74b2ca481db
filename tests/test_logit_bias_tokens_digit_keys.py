"""With `logit_bias_type: "tokens"`, llama-cpp-python tokenizes every `logit_bias` key as text
(`_logit_bias_tokens_to_input_ids`: `llama.tokenize(key)`), a key of digits alone too. The proxy read such a key as a
token id (llama-server's `strtol` reading, the default) and skipped it, so a card number there reached the model's
tokenizer, its tokens biased, for a purpose its zone forbids. Such a request's keys are now all read as text; without
`"tokens"` a key of digits is still a token id, not read."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.protocols.openai import read_request
from tests.harness import LLAMACPP_HEAD, proxy_error

CARD = "4111111111111111"
CONFIG = (
    LLAMACPP_HEAD
    + """zones:
  - name: payment
    labels: [pii:credit_card]
    allow_purposes: [assistant]
detectors: [credit_card]
lineage:
  store: ${STORE}
"""
)
MESSAGES = [{"role": "user", "content": "Name one colour."}]


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="sk-unused", max_retries=0, timeout=120)


@pytest.mark.realserver
def test_a_card_as_a_tokens_logit_bias_key_is_refused_where_its_zone_forbids_the_purpose(
    llama: str, make_proxy: Any
) -> None:
    kwargs: dict[str, Any] = {"model": "smollm2", "messages": MESSAGES, "temperature": 0, "max_tokens": 16, "seed": 7}
    biased = {**kwargs, "logit_bias": {CARD: 100}, "extra_body": {"logit_bias_type": "tokens"}}
    # the real server tokenizes the key: biased so, the model writes the card's digits, which it does not unbiased
    plain = client(llama).chat.completions.create(**kwargs).choices[0].message.content or ""
    written = client(llama).chat.completions.create(**biased).choices[0].message.content or ""
    assert "1111" not in plain and "11111111" in written, (plain, written)

    proxy = make_proxy(CONFIG, UPSTREAM=llama)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client(proxy.url).chat.completions.create(**biased, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    allowed = client(proxy.url).chat.completions.with_raw_response.create(**biased)  # a purpose the zone allows
    assert allowed.http_response.status_code == 200
    assert "pii:credit_card" in allowed.http_response.headers["x-data-labels"].split(",")
    # token ids (no `logit_bias_type`: llama-cpp-python's `input_ids`) are not text: that call goes on for the purpose
    ids = {**kwargs, "logit_bias": {"15339": 5}}
    assert client(proxy.url).chat.completions.create(**ids, extra_headers={"x-purpose": "marketing"}).choices


@pytest.mark.parametrize(
    ("kind", "read"),
    [
        ({"logit_bias_type": "tokens"}, [CARD, " 12", "+7"]),  # llama-cpp-python: every key tokenized
        ({"logit_bias_type": "input_ids"}, []),  # token ids
        ({}, []),  # llama-server's `strtol`: token ids
    ],
)
def test_tokens_logit_bias_keys_of_digits_are_read_as_text(kind: dict[str, str], read: list[str]) -> None:
    for operation, body in (
        ("chat", {"model": "m", "messages": MESSAGES}),
        ("text_completion", {"model": "m", "prompt": "x"}),
    ):
        request = read_request(operation, orjson.dumps({**body, "logit_bias": {CARD: 5, " 12": 1, "+7": 1}, **kind}))
        assert [text for text in request.texts[1:] if text not in ("tokens", "input_ids")] == read
