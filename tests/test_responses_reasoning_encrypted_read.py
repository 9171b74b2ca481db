"""A Responses input reasoning item's `encrypted_content` is read as text: Ollama's Responses API (`openai/responses.go`,
`FromResponsesRequest`) makes it the next assistant message's `Thinking`, which its renderers print to the model
(`<|START_THINKING|>...`), and Ollama hands it out as plain text in the first place (its replies' reasoning items carry
the thinking there). Before 2026-12-05 it was skipped as ciphertext: an address in it reached the model for a purpose
its zone forbids. OpenAI's own ciphertext is base64, in which the detectors find nothing: such a call goes on."""

from __future__ import annotations

import base64
from typing import Any

import openai
import orjson
import pytest

from proxy.protocols.openai import read_request
from tests.configs import EMAIL_ZONE_STORED
from tests.servers.vllm_like import SERVED

ADDRESS = "alice@example.com"


def history(encrypted: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "hi"},
        {"type": "reasoning", "summary": [], "encrypted_content": encrypted},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "ok"},
    ]


def body(given: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"model": SERVED, "input": given})


def test_a_reasoning_items_encrypted_content_is_read_where_it_stands() -> None:
    read = read_request("responses", body(history(f"mail {ADDRESS}")))
    assert read.texts == ("hi", f"mail {ADDRESS}", "c", "f", "{}", "c", "ok")
    assert not read.unscanned


def test_an_address_in_encrypted_reasoning_is_refused_for_a_forbidden_purpose(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(EMAIL_ZONE_STORED, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.responses.create(model=SERVED, input=history(ADDRESS), extra_headers={"x-purpose": "ads"})  # type: ignore[arg-type]
    assert "pii:email" in caught.value.message
    assert server.data_requests() == []
    # OpenAI's ciphertext (base64 of bytes, here of the same address) holds no address the detectors read
    ciphertext = base64.b64encode(b"\x80" + ADDRESS.encode() * 40).decode()
    reply = client.responses.with_raw_response.create(
        model=SERVED,
        input=history(ciphertext),  # type: ignore[arg-type]
        extra_headers={"x-purpose": "ads"},
    )
    assert reply.http_response.headers["x-data-labels"] == ""


def test_a_compaction_items_ciphertext_is_unread_where_a_reasoning_items_is_read() -> None:
    """A pin of the two readings side by side (README, "Detectors: what of a request is read"): a reasoning item stands
    beside the turn it reasoned over, which the call carries (read); a compaction item stands for turns it no longer
    carries, which only OpenAI reads, decrypting it (Ollama refuses the item): `scan:truncated`, its ciphertext
    unread. Passes before and after (helper fields13)."""
    compaction = {"type": "compaction", "encrypted_content": f"mail {ADDRESS}"}
    read = read_request("responses", body([compaction, *history(f"mail {ADDRESS}")]))
    assert read.texts.count(f"mail {ADDRESS}") == 1  # (the reasoning item's)
    assert read.unscanned
    assert not read_request("responses", body(history(f"mail {ADDRESS}"))).unscanned
