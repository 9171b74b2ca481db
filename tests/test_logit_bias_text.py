"""`logit_bias` keys that are text, not token ids, are tokenized by the server: llama.cpp's llama-server tokenizes a key
that is not an integer (`{"Hello, World!": -0.5}`), llama-cpp-python every key when the request says
`logit_bias_type: "tokens"`. That text reaches the model's tokenizer as a prompt's does (biased far enough, the model
writes it), so it is data sent to the model and is scanned: a zone that forbids the call's purpose refuses it. The keys
were not read (only a JSON object's values are, and a bias is a number), so an address there reached the model. Token
ids (`{"15339": 5}`, OpenAI's and vLLM's form) are not text and are not read; the `[["text", bias]]` form was read."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.protocols.openai import read_request
from tests.harness import EMAIL_ZONE, LLAMACPP_HEAD, proxy_error

OUT = "bob@example.org"
CONFIG = LLAMACPP_HEAD + EMAIL_ZONE
MESSAGES = [{"role": "user", "content": "Name one colour."}]


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="sk-unused", max_retries=0, timeout=120)


@pytest.mark.realserver
def test_an_address_in_logit_bias_keys_is_refused_where_its_zone_forbids_the_purpose(
    llama: str, make_proxy: Any
) -> None:
    kwargs: dict[str, Any] = {"model": "smollm2", "messages": MESSAGES, "temperature": 0, "max_tokens": 12, "seed": 7}
    biased = {**kwargs, "logit_bias": {OUT: 100}, "extra_body": {"logit_bias_type": "tokens"}}
    # the real server tokenizes the key: biased so, the model writes the address's pieces, which it does not unbiased
    plain = client(llama).chat.completions.create(**kwargs).choices[0].message.content or ""
    written = client(llama).chat.completions.create(**biased).choices[0].message.content or ""
    assert "@example" not in plain and "@example" in written, (plain, written)

    proxy = make_proxy(CONFIG, UPSTREAM=llama)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client(proxy.url).chat.completions.create(**biased, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    allowed = client(proxy.url).chat.completions.with_raw_response.create(**biased)  # a purpose the zone allows
    assert allowed.http_response.status_code == 200
    assert "pii:email" in allowed.http_response.headers["x-data-labels"].split(",")
    # the same call without the address in its bias goes on for that purpose
    other = {**biased, "logit_bias": {" blue": 5}}
    assert client(proxy.url).chat.completions.create(**other, extra_headers={"x-purpose": "marketing"}).choices


@pytest.mark.parametrize(
    ("bias", "read"),
    [
        ({OUT: 5}, [OUT]),  # llama.cpp and llama-cpp-python's `tokens`: tokenized
        ({"15339": 5, " -7": -1, "+12": 1}, []),  # token ids as llama.cpp's `strtol` reads them: not text
        ({"12a": 1, "5 ": 1, "--5": 1, "\u0661\u0662": 1}, ["12a", "5 ", "--5", "\u0661\u0662"]),  # not ids: tokenized
        ([[OUT, 5]], [OUT]),  # llama.cpp's pairs (read before)
    ],
)
def test_logit_bias_text_is_read_as_data(bias: Any, read: list[str]) -> None:
    for operation, body in (
        ("chat", {"model": "m", "messages": MESSAGES}),
        ("text_completion", {"model": "m", "prompt": "x"}),
    ):
        texts = read_request(operation, orjson.dumps({**body, "logit_bias": bias})).texts
        assert list(texts[1:]) == read
