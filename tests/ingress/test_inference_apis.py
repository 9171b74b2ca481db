"""Every inference API the real servers expose is read, labelled and decided, not passed through:
the OpenAI paths without /v1 (llama.cpp, vLLM), the Responses API, the Anthropic Messages API."""

from __future__ import annotations

import socket

import httpx
import openai
import orjson
import pytest

from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import ROOT, SERVED

CONFIG = (
    ONE_UPSTREAM
    + """
zones:
  - name: health
    labels: [health, pii:email]
    allow_purposes: [assistant]
detectors: [email]
lineage:
  store: ${STORE}
"""
)


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


SPLIT = ({"type": "text", "text": "write to ana@exa"}, {"type": "text", "text": "mple.org today"})


@pytest.mark.parametrize(
    "extra",
    [
        # a system-role message's text blocks join the system prompt (vLLM joins all system text with "")
        {"system": SPLIT[0]["text"], "messages": [{"role": "system", "content": [SPLIT[1]]}, {"role": "user", "content": "hi"}]},
        # vLLM prints a tool result outside a user message as a Python repr: an image's link is text there
        {"messages": [{"role": "user", "content": "look"}, {"role": "assistant", "content": [{"type": "tool_result",
            "tool_use_id": "t", "content": [{"type": "image", "source": {"type": "url", "url": "https://crm.example/a?o=ana@example.org"}}]}]}]},
        # text blocks around a block vLLM and llama.cpp take out of the content run together
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
            SPLIT[0], {"type": "tool_use", "id": "t1", "name": "f", "input": {}}, SPLIT[1]]}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
            SPLIT[0], {"type": "redacted_thinking", "data": "xyz"}, SPLIT[1]]}]},
        {"messages": [{"role": "user", "content": [SPLIT[0], {"type": "tool_result", "tool_use_id": "t1", "content": "done"}, SPLIT[1]]}]},
        # a search result's source
        {"messages": [{"role": "user", "content": [{"type": "search_result", "source": "crm://contacts/ana@example.org",
                                                    "title": "c", "content": [{"type": "text", "text": "VIP"}]}]}]},
    ],
)  # fmt: skip
def test_what_vllm_makes_of_a_messages_request_is_decided_on(proxied, extra: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    server, _, proxy = proxied
    body = {"model": SERVED, "max_tokens": 5, **extra}
    denied = httpx.post(f"{proxy.url}/v1/messages", json=body, headers={"x-purpose": "ads"}, timeout=10)
    assert denied.status_code == 403 and denied.headers["x-data-labels"] == "pii:email"
    assert server.data_requests() == []


def test_text_written_with_json_escapes_in_arguments_and_ids_is_scanned(proxied) -> None:  # type: ignore[no-untyped-def]
    """A tool call's arguments are JSON in a string: vLLM parses them and the template prints them again
    unescaped, so `ana\\u0040example.org` reaches the model as an address. Some templates print a tool
    call's id (Kimi-K2's), so ids are data too."""
    server, _, proxy = proxied
    escaped = [
        {"role": "user", "content": "book it"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "book", "arguments": '{"to": "ana\\u0040example.org"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]  # fmt: skip
    as_id = [
        {"role": "user", "content": "book it"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "ana@example.org", "type": "function", "function": {"name": "book", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "ana@example.org", "content": "done"},
    ]  # fmt: skip
    for messages in (escaped, as_id):
        with pytest.raises(openai.PermissionDeniedError) as caught:
            sdk(proxy.url).chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "ads"})  # type: ignore[arg-type]
        assert "pii:email" in caught.value.message
    # a surrogate pair and a plain backslash-u that is no escape are read as the server would
    reply = sdk(proxy.url).responses.with_raw_response.create(
        model=SERVED, input=[{"type": "function_call", "call_id": "c2", "name": "send",
                              "arguments": '{"note": "\\ud83d\\ude00 \\\\user", "to": "ana\\u0040example.org"}'}])  # fmt: skip
    assert reply.http_response.headers["x-data-labels"] == "pii:email"
    assert len(server.data_requests()) == 1


def test_a_responses_call_that_builds_on_a_stored_reply_carries_its_labels(proxied) -> None:  # type: ignore[no-untyped-def]
    """`previous_response_id`: the server puts the stored conversation before the new input, so the
    call carries what that conversation carried; an id the proxy did not see answered is unread."""
    server, _, proxy = proxied
    first = sdk(proxy.url).responses.with_raw_response.create(model=SERVED, input="mail ana@example.org")
    assert first.http_response.headers["x-data-labels"] == "pii:email"
    stored = first.parse().id
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(proxy.url).responses.create(model=SERVED, previous_response_id=stored, input="write them a promo",
                                        extra_headers={"x-purpose": "ads"})  # fmt: skip
    assert "pii:email" in caught.value.message
    assert len(server.data_requests()) == 1
    # built on in turn: the third call carries the first one's labels through the second's stored reply
    second = sdk(proxy.url).responses.with_raw_response.create(model=SERVED, previous_response_id=stored, input="ok")
    assert second.http_response.headers["x-data-labels"] == "pii:email"
    with pytest.raises(openai.PermissionDeniedError):
        sdk(proxy.url).responses.create(model=SERVED, previous_response_id=second.parse().id, input="and now?",
                                        extra_headers={"x-purpose": "ads"})  # fmt: skip
    # not stored (`store: false`), or never seen: what the server puts before the input is unread
    unstored = sdk(proxy.url).responses.create(model=SERVED, input="hello", store=False).id
    for previous in (unstored, "resp_never_seen_here"):
        reply = sdk(proxy.url).responses.with_raw_response.create(model=SERVED, previous_response_id=previous,
                                                                  input="go on", extra_headers={"x-purpose": "ads"})  # fmt: skip
        assert reply.http_response.headers["x-data-labels"] == "scan:truncated"
    # an item the server stored, named by id (`item_reference`) or a kept conversation: unread as well
    for extra in ({"input": [{"type": "item_reference", "id": "msg_stored"}, {"role": "user", "content": "go on"}]},
                  {"input": "go on", "conversation": "conv_kept"}):  # fmt: skip
        reply = httpx.post(f"{proxy.url}/v1/responses", json={"model": SERVED, **extra}, timeout=10)
        assert reply.headers["x-data-labels"] == "scan:truncated", extra
    bad = httpx.post(
        f"{proxy.url}/v1/responses", json={"model": SERVED, "input": "x", "previous_response_id": 7}, timeout=10
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "previous_response_id"


@pytest.mark.parametrize("path", ["/v1/../v1/chat/completions", "/x/%2e%2e/v1/chat/completions", "/v1/./chat/completions",
                                  "/v1/models/.."])  # fmt: skip
def test_a_path_with_dot_segments_is_refused(proxied, path: str) -> None:  # type: ignore[no-untyped-def]
    """Servers and gateways resolve `.` and `..`: the path decided on would not be the path served (an
    upstream URL with a path prefix, `/eu`, would send `/eu/../us/...` to another region's backend).
    Sent on a raw socket: HTTP clients resolve them before sending."""
    server, _, proxy = proxied
    body = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})
    method = "GET" if path.endswith("..") else "POST"
    sent = b"" if method == "GET" else body
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(sent)}\r\n"
    with socket.create_connection(("127.0.0.1", int(proxy.url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(head.encode() + b"Connection: close\r\n\r\n" + sent)
        reply = b"".join(iter(lambda: sock.recv(65536), b""))
    status, _, rest = reply.partition(b"\r\n")
    assert status == b"HTTP/1.1 400 Bad Request" and b"'..' segments" in rest
    assert server.data_requests() == []
    assert httpx.post(f"{proxy.url}/v1/chat/completions", content=body, timeout=10).status_code == 200


def test_stored_replies_forget_the_oldest_first() -> None:
    from proxy.pipeline import StoredReplies

    stored = StoredReplies(3)
    for n in range(5):
        stored.remember(f"resp_{n}", frozenset({f"l{n}"}))
    stored.remember("resp_2", frozenset({"again"}))  # seen again: the newest now
    stored.remember("resp_5", frozenset())
    assert [stored.labels(f"resp_{n}") for n in range(6)] == [
        None, None, frozenset({"again"}), None, frozenset({"l4"}), frozenset()]  # fmt: skip
