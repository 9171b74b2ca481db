"""Ollama's Anthropic-compatible API (`/v1/messages`, `anthropic/anthropic.go`'s `formatWebSearchToolResultContent`)
prints a `web_search_tool_result` block to its model as a tool message: each result as `- <title>: <url>`, and content
that is an object (not an error) as its JSON, keys and numbers too. Before 2026-12-05 the proxy read a result's `url`
as framing (a link), and such an object's keys and numbers not at all: an address in them reached the model for a
purpose the address's zone forbids (helper ollamakeys2)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.servers.vllm_like import SERVED
from tests.test_anthropic_document_blocks_joined import CONFIG


def _request(results: Any) -> dict[str, Any]:
    search = {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"query": "contact"}}
    found = {"type": "web_search_tool_result", "tool_use_id": "s1", "content": results}
    return {"model": SERVED, "max_tokens": 16,
            "messages": [{"role": "user", "content": "find it"}, {"role": "assistant", "content": [search, found]},
                         {"role": "user", "content": "and?"}]}  # fmt: skip


def _result(url: str) -> dict[str, Any]:
    # (no page encrypted: one whose page is, which Anthropic decrypts into its model's context, is scan:truncated since
    # 2026-12-07, whatever the server, tests/test_anthropic_ciphertext_and_tool_changes.py)
    return {"type": "web_search_result", "title": "Contact", "url": url, "encrypted_content": ""}


RESULTS = {
    "a result's url": (_result("https://example.com/?to=ana@example.org"), _result("https://example.com/contact")),
    "an object's key": ({"type": "page", "ana@example.org": 1}, {"type": "page", "contact": 1}),
}


@pytest.mark.parametrize("results", RESULTS.values(), ids=RESULTS.keys())
def test_what_ollama_prints_of_web_search_results_is_read(vllm, make_proxy, results) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    found, clean = results
    headers = {"x-purpose": "ads", "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        body = _request([found] if found["type"] == "web_search_result" else found)
        refused = client.post("/v1/messages", headers=headers, json=body)
        assert refused.status_code == 403, refused.text
        assert "pii:email" in refused.json()["error"]["message"]
        assert server.data_requests() == []
        body = _request([clean] if clean["type"] == "web_search_result" else clean)
        answered = client.post("/v1/messages", headers=headers, json=body)
        assert answered.status_code == 200 and answered.headers["x-data-labels"] == "", answered.text
        assert len(server.data_requests()) == 1


# content that is a number: Ollama prints it as its JSON too (`formatWebSearchToolResultContent`'s `default` case, a
# float64 to Go: 4111111111111111 is printed so), which the proxy did not read, numbers being no user text: a card
# number reached the model for a purpose its zone forbids (200) (helper revollama2)
CARD = CONFIG.replace("labels: [pii:email]", "labels: [pii:email, pii:credit_card]").replace(
    "detectors: [email]", "detectors: [email, credit_card]"
)


def test_web_search_result_content_that_is_a_number_is_read(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CARD, UPSTREAM=upstream)
    headers = {"x-purpose": "ads", "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        refused = client.post("/v1/messages", headers=headers, json=_request(4111111111111111))
        assert refused.status_code == 403, refused.text  # before: 200, forwarded
        assert "pii:credit_card" in refused.json()["error"]["message"]
        assert server.data_requests() == []
        answered = client.post("/v1/messages", headers=headers, json=_request(7))
        assert answered.status_code == 200 and answered.headers["x-data-labels"] == "", answered.text
        assert len(server.data_requests()) == 1
