"""Fields an engine keys a call by, and TensorRT-LLM's disaggregated serving state, are not read as data (helper
fields15, 2026-12-07).

- TensorRT-LLM's `disaggregated_params` (trtllm-serve's `DisaggregatedParams`: `request_type`, `first_gen_tokens`,
  `ctx_request_id`, `encoded_opaque_state` in base64, `ctx_info_endpoint`, ...), which its disaggregated server sets on
  the call it sends a generation server: where the context server's KV cache is fetched from, as vLLM's
  `kv_transfer_params` says. Read as text before, its `ctx_info_endpoint` (the context server's address) labelled every
  generation call `pii:ip_address` (5,000 of 5,000 random ones read at `read_request`), refused where a zone forbids
  addresses. Now `ENGINE_STATE`, as vLLM's and SGLang's are.
- An engine's ids and salts, opaque to it (`ENGINE_IDS`): vLLM's `request_id` (default `uuid4().hex`) and `cache_salt`
  ("43 characters base64-encoded"), SGLang's `rid` (`uuid4().hex`) and `extra_key` (its prefix cache's namespace). Of
  the forms their generators write (uuid4, its hex, `token_urlsafe(32)`, standard base64 of 32 bytes) none was labelled
  in 20,000 each; an id written in decimal (a 63-bit one: 8.2% pass the card check) or naming a host was, a label the
  model never saw. Not read now, as OpenAI's `prompt_cache_key` is not.
- Still read: vLLM's `vllm_xargs` (handed to the server's custom extensions as `SamplingParams.extra_args`, which may
  do anything with them, print them too), and every such field where the call may reach KServe's OpenAI data plane,
  which hands its model the request whole.

Failing before: 9 of 10 (6 of 6 end to end through the openai SDK, 403 where 200; 3 of 3 reading), the control passing
before and after."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import openai
import orjson
import pytest

from proxy.protocols.kserve import openai_fields
from proxy.protocols.openai import read_request
from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED

CONFIG = (
    ONE_UPSTREAM
    + """
zones:
  - name: numbers
    labels: [pii:ip_address, pii:credit_card, pii:phone]
    allow_purposes: [assistant]
detectors: [ip_address, credit_card, phone]
"""
)

# as trtllm-serve's disaggregated server sets it on a generation call (openai_protocol.DisaggregatedParams)
TRTLLM = {
    "disaggregated_params": {
        "request_type": "generation_only",
        "first_gen_tokens": [9707],
        "ctx_request_id": 5120046412749733917,
        "disagg_request_id": 5120046412749733918,
        "encoded_opaque_state": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "draft_tokens": None,
        "ctx_dp_rank": 0,
        "ctx_info_endpoint": "10.0.0.7:8001",
    }
}
OPAQUE = {
    "TensorRT-LLM generation call": TRTLLM,
    "vLLM request_id, decimal": {"request_id": "5082513832886728665"},
    "vLLM cache_salt naming a host": {"cache_salt": "tenant-10.20.30.40"},
    "SGLang rid, decimal": {"rid": "4111111111111111"},
    "SGLang rid of a batch": {"rid": ["4111111111111111", "5500005555555559"]},
    "SGLang extra_key naming a host": {"extra_key": "tenant-10.20.30.40"},
}


def _client(proxy: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)


def _chat(client: openai.OpenAI, extra: dict[str, Any], purpose: str) -> Any:
    messages: Any = [{"role": "user", "content": "hello"}]
    return client.chat.completions.with_raw_response.create(
        model=SERVED, messages=messages, extra_body=extra, extra_headers={"x-purpose": purpose}
    )


@pytest.mark.parametrize("extra", OPAQUE.values(), ids=OPAQUE.keys())
def test_no_reason_to_refuse(vllm, make_proxy, extra) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    client = _client(make_proxy(CONFIG, UPSTREAM=upstream))
    reply = _chat(client, extra, "ads")  # (before: 403, pii:ip_address or pii:credit_card)
    assert reply.http_response.headers["x-data-labels"] == ""
    assert orjson.loads(server.data_requests()[0].body).items() >= extra.items()  # forwarded as sent


def test_vllm_xargs_are_still_read(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """A control: what vLLM hands its custom extensions is read (passes before and after)."""
    server, upstream = vllm
    client = _client(make_proxy(CONFIG, UPSTREAM=upstream))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _chat(client, {"vllm_xargs": {"note": "call 10.0.0.9"}}, "ads")
    assert "pii:ip_address" in refused.value.message
    assert server.data_requests() == []


@pytest.mark.parametrize("operation", ["chat", "text_completion", "responses"])
def test_read_so_by_every_api_and_still_by_kserve(operation: str) -> None:
    """Not read by the OpenAI adapter, in any API (before: read), but read where the call
    may reach KServe's OpenAI data plane (`kserve.openai_fields`: passes before and after)."""
    unread_but_by_kserve(
        operation, OPAQUE.values(), ("10.0.0.7", "5082513832886728665", "10.20.30.40", "4111111111111111")
    )


def unread_but_by_kserve(operation: str, extras: Iterable[dict[str, Any]], values: tuple[str, ...]) -> None:
    """Each of `extras` beside a "hello" of `operation`'s: the OpenAI adapter reads "hello" alone, whole;
    `kserve.openai_fields` reads the extra too (one of `values` among its fields)."""
    content = {"chat": {"messages": [{"role": "user", "content": "hello"}]}, "text_completion": {"prompt": "hello"},
               "responses": {"input": "hello"}}[operation]  # fmt: skip
    for extra in extras:
        body = orjson.dumps({"model": "m", **content, **extra})
        request = read_request(operation, body)
        assert request.texts == ("hello",) and request.unscanned is False
        fields, whole = openai_fields(body, operation)
        assert fields is not None and whole
        assert any(value in fields for value in values)
