"""End to end against a real model server no one here wrote: llama.cpp's OpenAI-compatible server
(llama-cpp-python) serving SmolLM2-135M, deterministic at temperature 0."""

from __future__ import annotations

import openai
import pytest

from tests.harness import LLAMACPP_HEAD

CONFIG = (
    LLAMACPP_HEAD
    + """detectors: [email]
lineage:
  store: ${STORE}
"""
)

pytestmark = pytest.mark.realserver
MESSAGES = [{"role": "user", "content": "Name one colour."}]


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="sk-unused", max_retries=0, timeout=120)


def test_llama_cpp_through_the_proxy_answers_as_directly(llama: str, make_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = make_proxy(CONFIG, UPSTREAM=llama)
    kwargs = {"model": "smollm2", "messages": MESSAGES, "temperature": 0, "max_tokens": 12, "seed": 7}
    direct = client(llama).chat.completions.create(**kwargs)
    via = client(proxy.url).chat.completions.with_raw_response.create(**kwargs)
    parsed = via.parse()
    assert parsed.choices[0].message.content == direct.choices[0].message.content
    assert parsed.usage == direct.usage
    assert via.http_response.headers["x-lineage-checkpoint"] == "smollm2"  # from its /v1/models
    assert via.http_response.headers["x-lineage-decision"] == "allow"

    streamed = client(proxy.url).chat.completions.create(**kwargs, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert text == direct.choices[0].message.content

    models = client(proxy.url).models.list()
    assert [m.id for m in models.data] == ["smollm2"]
