"""Every inference API the real servers expose is read, labelled and decided, not passed through:
the OpenAI paths without /v1 (llama.cpp, vLLM), the Responses API, the Anthropic Messages API."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from tests.servers.vllm_like import ROOT, SERVED

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
  default_purpose: assistant
zones:
  - name: health
    labels: [health, pii:email]
    allow_purposes: [assistant]
detectors: [email]
lineage:
  store: ${STORE}
"""


@pytest.fixture
def proxied(vllm, make_proxy):  # type: ignore[no-untyped-def]
    server, upstream = vllm
    return server, upstream, make_proxy(CONFIG, UPSTREAM=upstream)


def sdk(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=10)


def test_chat_without_v1_is_read_and_decided(proxied) -> None:  # type: ignore[no-untyped-def]
    server, _, proxy = proxied
    body = {"model": SERVED, "messages": [{"role": "user", "content": "mail ana@example.org"}]}
    denied = httpx.post(f"{proxy.url}/chat/completions", json=body, headers={"x-purpose": "ads"}, timeout=10)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "purpose_denied"
    assert server.data_requests() == []
    allowed = httpx.post(f"{proxy.url}/chat/completions", json=body, timeout=10)
    assert allowed.status_code == 200 and allowed.headers["x-data-labels"] == "pii:email"
    assert allowed.headers["x-lineage-checkpoint"] == ROOT


def test_tool_call_arguments_are_scanned(proxied) -> None:  # type: ignore[no-untyped-def]
    server, _, proxy = proxied
    messages = [
        {"role": "user", "content": "book it"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "book", "arguments": '{"to": "ana@example.org"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]  # fmt: skip
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(proxy.url).chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "ads"})  # type: ignore[arg-type]
    assert "pii:email" in caught.value.message
    assert server.data_requests() == []


def test_responses_api_through_the_sdk(proxied) -> None:  # type: ignore[no-untyped-def]
    server, upstream, proxy = proxied
    direct = sdk(upstream).responses.with_raw_response.create(model=SERVED, input="hello")
    via = sdk(proxy.url).responses.with_raw_response.create(model=SERVED, input="hello")
    assert via.http_response.content == direct.http_response.content
    assert via.parse().output_text == "w0 w1 w2 w3 w4 w5 echo: hello"
    assert via.http_response.headers["x-lineage-checkpoint"] == ROOT
    streamed = sdk(proxy.url).responses.create(model=SERVED, input="hello", stream=True)
    deltas = [e.delta for e in streamed if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "w0 w1 w2 w3 w4 w5 echo: hello"
    with pytest.raises(openai.PermissionDeniedError):
        sdk(proxy.url).responses.create(model=SERVED, input="to ana@example.org", extra_headers={"x-purpose": "ads"})


def test_responses_stream_is_recorded_before_the_client_has_its_last_event(proxied, loop_thread, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, _, proxy = proxied
    body = orjson.dumps({"model": SERVED, "input": "hi", "stream": True})
    with httpx.stream("POST", f"{proxy.url}/v1/responses", content=body, timeout=10,
                      headers={"content-type": "application/json", "x-data-labels": "resp-flow"}) as reply:  # fmt: skip
        for line in reply.iter_lines():
            if '"response.completed"' in line:
                break  # the client leaves at the last event, like the SDK does
    loop_thread.run(proxy.process.runtime.sinks.flush())
    from proxy.record.store import SqliteStore

    store = SqliteStore(tmp_path / "lineage.db", readonly=True)
    try:
        found = {r.key.input_labels: (r.key.checkpoint, r.count) for r in store.rows()}
    finally:
        store.close()
    assert found["resp-flow"] == (ROOT, 1)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_messages_are_read_and_observed(proxied, stream: bool) -> None:  # type: ignore[no-untyped-def]
    server, upstream, proxy = proxied
    body = {"model": SERVED, "max_tokens": 20, "stream": stream, "system": "be brief",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}]}  # fmt: skip
    direct = httpx.post(f"{upstream}/v1/messages", json=body, timeout=10)
    via = httpx.post(f"{proxy.url}/v1/messages", json=body, timeout=10)
    assert via.status_code == 200 and via.content == direct.content
    assert via.headers["x-lineage-checkpoint"] == ROOT and via.headers["x-lineage-decision"] == "allow"
    if stream:
        assert via.text.rstrip().endswith('data: {"type":"message_stop"}')
    leaking = {**body, "messages": [{"role": "user", "content": "write to ana@example.org"}]}
    denied = httpx.post(f"{proxy.url}/v1/messages", json=leaking, headers={"x-purpose": "ads"}, timeout=10)
    assert denied.status_code == 403
    assert len(server.data_requests()) == 2  # direct and allowed; the denied call never reached it
