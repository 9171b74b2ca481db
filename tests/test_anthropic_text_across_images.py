"""Ollama's Anthropic-compatible API (`/v1/messages`, `anthropic/anthropic.go`'s `convertMessage` and
`convertToolResultContent`) runs a message's text blocks together, and a tool result's, and hands its images to the
model apart (`images`): `"write to ana@exa"`, an image, `"mple.org"` reaches its model as `write to ana@example.org`.
Before 2026-12-05 the proxy read an image as parting the texts around it (as llama.cpp and vLLM print them, an image
between), so each was read alone, no address found, and the call was forwarded for a purpose the address's zone
forbids. The texts are now read joined across an image as well as each alone (helper ollamakeys2)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.servers.vllm_like import SERVED
from tests.test_anthropic_document_blocks_joined import CONFIG
from tests.test_ollama_native_keys_any_case import PIXEL

IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}}


def _request(content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": SERVED, "max_tokens": 16, "messages": [{"role": "user", "content": content}]}


def _texts(*texts: str) -> list[dict[str, Any]]:
    """The texts with an image between each two."""
    blocks: list[dict[str, Any]] = []
    for text in texts:
        blocks += [IMAGE, {"type": "text", "text": text}] if blocks else [{"type": "text", "text": text}]
    return blocks


SPLIT = {
    "in a message": lambda *texts: _request(_texts(*texts)),
    "in a tool result": lambda *texts: _request(
        [{"type": "tool_result", "tool_use_id": "t1", "content": _texts(*texts)}, {"type": "text", "text": "and?"}]
    ),
}


@pytest.mark.parametrize("body", SPLIT.values(), ids=SPLIT.keys())
def test_a_value_split_by_an_image_is_found(vllm, make_proxy, body) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    headers = {"x-purpose": "ads", "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        refused = client.post("/v1/messages", headers=headers, json=body("write to ana@exa", "mple.org today"))
        assert refused.status_code == 403, refused.text
        assert "pii:email" in refused.json()["error"]["message"]
        assert server.data_requests() == []
        # texts around an image that hold nothing, run together or not, are answered
        answered = client.post("/v1/messages", headers=headers, json=body("what is", "this picture?"))
        assert answered.status_code == 200 and answered.headers["x-data-labels"] == "", answered.text
        assert len(server.data_requests()) == 1
