"""Ollama's Responses API (`/v1/responses`, `openai/responses.go`'s `convertResponsesContent`) runs a message's
`input_text` (and `output_text`) parts together with nothing between and hands its `input_image`s to the model apart
(`images`), as its Anthropic-compatible API does a message's text blocks: `"write to ana@exa"`, an image,
`"mple.org today"` reaches its model as `write to ana@example.org`. The proxy read an image as parting the parts around
it (as vLLM and llama.cpp print one between), each read alone, no address found, and the call was forwarded for a
purpose the address's zone forbids (200). They are now read joined across an image as well as each alone (helper
revollama2)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.servers.vllm_like import SERVED
from tests.test_anthropic_document_blocks_joined import CONFIG
from tests.test_ollama_native_keys_any_case import PIXEL

IMAGE = {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}", "detail": "auto"}


def _input(*texts: str, kind: str = "input_text", role: str = "user") -> list[dict[str, Any]]:
    """A message of the texts, an image between each two."""
    parts: list[dict[str, Any]] = []
    for text in texts:
        parts += [IMAGE, {"type": kind, "text": text}] if parts else [{"type": kind, "text": text}]
    return [{"type": "message", "role": role, "content": parts}]


SPLIT = {
    "input_text": lambda *texts: _input(*texts),
    "output_text": lambda *texts: [*_input(*texts, kind="output_text", role="assistant"), *_input("and?")],
}


@pytest.mark.parametrize("given", SPLIT.values(), ids=SPLIT.keys())
def test_a_value_split_by_an_image_is_found(vllm, make_proxy, given) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as refused:  # before: answered, the parts read one by one
        client.responses.create(model=SERVED, input=given("write to ana@exa", "mple.org today"),
                                extra_headers={"x-purpose": "ads"})  # fmt: skip
    assert "pii:email" in refused.value.message
    assert server.data_requests() == []
    # texts around an image that hold nothing, run together or not, are answered
    answered = client.responses.with_raw_response.create(
        model=SERVED, input=given("what is", "this picture?"), extra_headers={"x-purpose": "ads"}
    )
    assert answered.headers["x-data-labels"] == ""
    assert len(server.data_requests()) == 1
