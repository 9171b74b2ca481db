"""Ollama's two embedding endpoints decode their bodies into two structs (`api/types.go`): `/api/embed`'s
`EmbedRequest` {model, input, keep_alive, truncate, dimensions, options} and `/api/embeddings`' `EmbeddingRequest`
{model, prompt, keep_alive, options}, Go's `encoding/json` taking a key for one of ITS fields whatever the key's case.
The proxy checked both against the two together, so a key of the other's field only, which Go ignores there, was
refused 400 (helper reqreads, 2026-12-05): now each is checked against its own, such a key forwarded and read as user
text; a key Go takes for a field of its own struct is still refused."""

from __future__ import annotations

from typing import Any

import pytest

from tests import test_ollama_native as native
from tests.harness import ProxyHandle
from tests.servers.ollama import MODEL, Ollama
from tests.test_case_keys_per_level import V, _forwarded_and_read, _refused

ollama = native.ollama
proxy = native.proxy

# a key of the other endpoint's struct only: ignored by Ollama here. Before: 400
ELSEWHERE = {
    "embed's Prompt": ("/api/embed", {"model": MODEL, "input": "hi", "Prompt": V}),
    "embeddings' Input": ("/api/embeddings", {"model": MODEL, "prompt": "hi", "Input": V}),
    "embeddings' Truncate": ("/api/embeddings", {"model": MODEL, "prompt": "hi", "Truncate": V}),
    "embeddings' Dimensions": ("/api/embeddings", {"model": MODEL, "prompt": "hi", "Dimensions": V}),
}


@pytest.mark.parametrize("call", list(ELSEWHERE.values()), ids=list(ELSEWHERE))
def test_a_key_of_the_other_embedding_structs_field_is_forwarded_and_read(
    ollama: Ollama, proxy: ProxyHandle, call: tuple[str, dict[str, Any]]
) -> None:
    _forwarded_and_read(ollama, proxy, *call)  # before: 400


# (hold before and after) a key Go takes for a field of its own struct, spelt otherwise: refused
OWN = {
    "embed's Input": ("/api/embed", {"model": MODEL, "Input": V}),
    "embed's Truncate": ("/api/embed", {"model": MODEL, "input": "hi", "Truncate": V}),
    "embed's Dimensions": ("/api/embed", {"model": MODEL, "input": "hi", "DIMENSIONS": V}),
    "embed's Options": ("/api/embed", {"model": MODEL, "input": "hi", "Options": V}),
    "embeddings' Prompt": ("/api/embeddings", {"model": MODEL, "Prompt": V}),
    "embeddings' Keep_Alive": ("/api/embeddings", {"model": MODEL, "prompt": "hi", "Keep_Alive": V}),
    "embeddings' Options": ("/api/embeddings", {"model": MODEL, "prompt": "hi", "OPTIONS": V}),
}


@pytest.mark.parametrize("call", list(OWN.values()), ids=list(OWN))
def test_a_key_of_its_own_structs_field_is_still_refused(
    ollama: Ollama, proxy: ProxyHandle, call: tuple[str, dict[str, Any]]
) -> None:
    _refused(ollama, proxy, *call)
