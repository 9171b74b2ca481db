"""Ollama's native API driven by the client its users call it with, the official `ollama` Python client (`Client` and
`AsyncClient`: `chat`, `generate`, `embed`, `embeddings`, streamed and not), in front of the Ollama-like server
(`tests/servers/ollama.py`). The proxy's own refusals on Ollama's paths are in Ollama's error shape, `{"error":
"<message>"}` with the code beside it, so the client's `ResponseError.error` is the reason, a string: before
2026-12-04 they were in OpenAI's (`{"error": {"message": ...}}`), and `ResponseError.error` was that dict (typed
`str`), its `str()` the dict's repr. A reply whose one line is `{"error"}` after a 200 head, which the client raises
at, is recorded `upstream_error` when it came sized, read whole, as when it streamed (before: an answer that ended
well)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from ollama import AsyncClient, ChatResponse, Client, ResponseError

from tests import test_ollama_native as native
from tests.harness import LoopThread, ProxyHandle, dead_port, serving, traced
from tests.servers.ollama import MODEL, TAGGED, Ollama
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_oip_generate_endpoints import edges
from tests.test_ollama_native import ADDRESS, CONFIG
from tests.test_refusals_recorded import AccessLines
from tests.test_tgi_native_clients import DENIED, HEAD_OVER

# the fixtures of test_ollama_native: the server, the proxy in front of it, the access lines
ollama = native.ollama
proxy = native.proxy
access = native.access

PNG = b"\x89PNG\r\n\x1a\n" + ADDRESS.encode()  # an image, whose bytes spell an address: no text the model reads


def said(message: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": message}]


def test_a_chat_is_answered_as_ollama_answers_and_recorded(
    ollama: Ollama,
    proxy: ProxyHandle,
    otlp: OtlpReceiver,
    access: AccessLines,
    tmp_path: Path,
) -> None:
    """What the client sends beside the messages (`keep_alive`, `options`, an image, an empty `tools`) passes as it
    came, the image unread."""
    trace_id, headers = traced(**{"x-data-labels": "campaign-7"})
    client = Client(host=proxy.url, headers=headers)
    messages = [{"role": "user", "content": "alice example.com", "images": [PNG]}]
    reply = client.chat(MODEL, messages, keep_alive="5m", options={"num_predict": 8, "temperature": 0})
    assert reply.message.content == ADDRESS and reply.done_reason == "stop" and reply.eval_count == 3
    [(path, body)] = ollama.received
    sent = orjson.loads(body)
    assert (
        path == "/api/chat" and sent["keep_alive"] == "5m" and sent["options"] == {"num_predict": 8, "temperature": 0}
    )
    assert sent["messages"][0]["images"] and sent["stream"] is False
    span = otlp.by_trace(trace_id).attributes
    assert span["lineage.input.labels"] == ["campaign-7"], span
    assert span["lineage.output.labels"] == ["campaign-7", "pii:email"], span
    assert span["lineage.checkpoint"] == TAGGED and span["gen_ai.request.max_tokens"] == 8, span
    line = access.of(trace_id)
    assert (line.decision, line.checkpoint, line.status) == ("allow", TAGGED, 200)  # type: ignore[attr-defined]
    assert edges(tmp_path / "lineage.db") == [("campaign-7", TAGGED, "campaign-7,pii:email", "allow")]


def test_a_generate_and_embeddings_are_answered_and_recorded(proxy: ProxyHandle, otlp: OtlpReceiver) -> None:
    trace_id, headers = traced()
    client = Client(host=proxy.url, headers=headers)
    generated = client.generate(MODEL, "alice example.com", system="be brief")
    assert generated.response == ADDRESS and generated.context == [128006, 882, 128007]
    assert otlp.by_trace(trace_id).attributes["lineage.output.labels"] == ["pii:email"]
    assert client.embed(MODEL, ["hi", "there"]).embeddings == [[0.1, -0.2, 0.3]]
    assert client.embeddings(MODEL, "hi").embedding == [0.1, -0.2, 0.3]


# each call the client makes, given the text it sends
CALLS: dict[str, Callable[[Client, str], Any]] = {
    "chat": lambda client, text: client.chat(MODEL, said(text)),
    "chat stream": lambda client, text: list(client.chat(MODEL, said(text), stream=True)),
    "generate": lambda client, text: client.generate(MODEL, text),
    "generate stream": lambda client, text: list(client.generate(MODEL, text, stream=True)),
    "embed": lambda client, text: client.embed(MODEL, text),
    "embeddings": lambda client, text: client.embeddings(MODEL, text),
}


@pytest.mark.parametrize("call", list(CALLS.values()), ids=list(CALLS))
def test_a_forbidden_call_raises_with_the_proxys_reason(
    ollama: Ollama,
    proxy: ProxyHandle,
    otlp: OtlpReceiver,
    call: Callable[[Client, str], Any],
) -> None:
    trace_id, headers = traced(**{"x-purpose": "ads"})
    with pytest.raises(ResponseError) as raised:
        call(Client(host=proxy.url, headers=headers), f"write to {ADDRESS}")
    assert (raised.value.error, raised.value.status_code) == (DENIED, 403)
    assert str(raised.value) == f"{DENIED} (status code: 403)"
    assert ollama.received == []
    assert otlp.by_trace(trace_id).attributes["lineage.decision"] == "deny"


def test_a_head_over_the_limit_raises_with_the_proxys_reason(ollama: Ollama, proxy: ProxyHandle) -> None:
    """A head the connection refuses itself (431, before it is parsed whole) answers in Ollama's shape too: its
    target, read whole before the field that is over the limit, says whose API it is (before: OpenAI's shape, and
    `ResponseError.error` a dict)."""
    client = Client(host=proxy.url, headers={"x-big": "a" * HEAD_OVER})
    with pytest.raises(ResponseError) as raised:
        client.chat(MODEL, said("hi"))
    assert raised.value.status_code == 431 and isinstance(raised.value.error, str), raised.value
    assert "limits.max_header_bytes" in raised.value.error, raised.value
    assert ollama.received == []


@pytest.mark.parametrize("operation", ["chat", "generate"])
def test_a_stream_reaches_the_client_line_by_line(
    ollama: Ollama, proxy: ProxyHandle, otlp: OtlpReceiver, loop_thread: LoopThread, tmp_path: Path,
    operation: str,
) -> None:  # fmt: skip
    """The upstream sends its next line only once the client has the last (`__gated__`)."""
    trace_id, headers = traced()
    client = Client(host=proxy.url, headers=headers)
    text = "__gated__ alice example.com"
    parts = (
        client.chat(MODEL, said(text), stream=True)
        if operation == "chat"
        else client.generate(MODEL, text, stream=True)
    )
    got: list[str] = []
    for part in parts:
        got.append(part.message.content if isinstance(part, ChatResponse) else part.response)  # type: ignore[arg-type]
        if len(got) < 3:
            ollama.release(loop_thread.loop)
    assert got == ["alice", "@", "example.com", ""]
    span = otlp.by_trace(trace_id).attributes
    assert span["lineage.output.labels"] == ["pii:email"] and "error.type" not in span, span
    assert span["gen_ai.response.finish_reasons"] == ["stop"], span
    assert edges(tmp_path / "lineage.db") == [("", TAGGED, "pii:email", "allow")]


def test_the_async_client_streams_and_is_refused_alike(
    ollama: Ollama,
    proxy: ProxyHandle,
    otlp: OtlpReceiver,
) -> None:
    trace_id, headers = traced()

    async def talk() -> list[str]:
        client = AsyncClient(host=proxy.url, headers=headers)
        parts = await client.chat(MODEL, said("alice example.com"), stream=True)
        got = [part.message.content or "" async for part in parts]
        denied = AsyncClient(host=proxy.url, headers={"x-purpose": "ads"})
        with pytest.raises(ResponseError, match="purpose 'ads' is not allowed"):
            await denied.generate(MODEL, f"to {ADDRESS}")
        return got

    assert "".join(asyncio.run(talk())) == ADDRESS
    assert otlp.by_trace(trace_id).attributes["lineage.output.labels"] == ["pii:email"]
    assert [path for path, _ in ollama.received] == ["/api/chat"]


@pytest.mark.parametrize("hook", ["__error__", "__failed__"], ids=["after a line", "alone"])
def test_an_error_line_raises_and_is_recorded(proxy: ProxyHandle, otlp: OtlpReceiver, hook: str) -> None:
    """`{"error"}` after the 200 head: after a line of output, or the reply's one line (sent sized, read whole)."""
    trace_id, headers = traced()
    got: list[str] = []
    with pytest.raises(ResponseError, match="an error was encountered while running the model"):
        for part in Client(host=proxy.url, headers=headers).chat(MODEL, said(f"{hook} alice example.com"),
                                                                        stream=True):  # fmt: skip
            got.append(part.message.content or "")
    assert got == (["alice"] if hook == "__error__" else [])
    assert otlp.by_trace(trace_id).attributes["error.type"] == "upstream_error"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_an_error_that_is_null_is_an_answer(
    proxy: ProxyHandle, otlp: OtlpReceiver, tmp_path: Path, stream: bool
) -> None:
    """`"error": null` beside a reply's fields (a server that writes every field of its type) is no error: the client
    raises only at one that is set, and the reply is read and recorded as any answer (before: read whole, or as a
    line, `upstream_error` and its content not read as output, its finish reason and usage lost)."""
    trace_id, headers = traced()
    client = Client(host=proxy.url, headers=headers)
    if stream:
        parts = list(client.chat(MODEL, said("__nullerror__ alice example.com"), stream=True))
        content = "".join(part.message.content or "" for part in parts)
    else:
        content = client.chat(MODEL, said("__nullerror__ alice example.com")).message.content or ""
    assert content == ADDRESS
    span = otlp.by_trace(trace_id).attributes
    assert "error.type" not in span and span["gen_ai.response.finish_reasons"] == ["stop"], span
    assert span["lineage.output.labels"] == ["pii:email"] and span["gen_ai.usage.output_tokens"] == 3, span
    assert edges(tmp_path / "lineage.db") == [("", TAGGED, "pii:email", "allow")]


def test_a_dead_upstream_raises_with_the_proxys_reason(
    otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    dead = f"http://127.0.0.1:{dead_port()}"
    proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=dead, OTLP=f"http://127.0.0.1:{otlp.port}")
    trace_id, headers = traced()
    with pytest.raises(ResponseError) as raised:
        Client(host=proxy.url, headers=headers).chat(MODEL, said("hi"))
    assert raised.value.status_code == 502 and isinstance(raised.value.error, str), raised.value
    assert "upstream" in raised.value.error, raised.value
    assert otlp.by_trace(trace_id).attributes["error.type"] == "upstream_unavailable"


def test_a_deeper_api_path_is_another_servers_and_keeps_the_openai_shape(ollama: Ollama, proxy: ProxyHandle) -> None:
    """Only Ollama's own paths (`/api/<name>`) answer in its shape: Open WebUI's OpenAI-compatible
    `/api/chat/completions`, called with OpenAI's SDK, gets the OpenAI shape, whose `code` the SDK reads (before:
    every `/api/...` path got Ollama's, and `code` was None)."""
    client = openai.OpenAI(base_url=f"{proxy.url}/api", api_key="unused", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert raised.value.code == "endpoint_denied", raised.value
    assert ollama.received == []


@pytest.mark.parametrize("operation", ["chat", "generate"])
def test_an_error_beside_a_whole_replys_fields_is_the_answer_the_client_returns(
    proxy: ProxyHandle, otlp: OtlpReceiver, tmp_path: Path, operation: str
) -> None:
    """A call that did not stream, answered whole with an `error` that is set beside the reply's fields: the `ollama`
    client returns the fields as its answer (it never reads `error` there), and the call is recorded as that answer
    (before 2026-12-04: `upstream_error`, its content not read as output, its labels and usage lost)."""
    trace_id, headers = traced()
    client = Client(host=proxy.url, headers=headers)
    if operation == "chat":
        content = client.chat(MODEL, said("__warned__ alice example.com")).message.content
    else:
        content = client.generate(MODEL, "__warned__ alice example.com").response
    assert content == ADDRESS
    span = otlp.by_trace(trace_id).attributes
    assert "error.type" not in span and span["gen_ai.response.finish_reasons"] == ["stop"], span
    assert span["lineage.output.labels"] == ["pii:email"] and span["gen_ai.usage.output_tokens"] == 3, span
    assert edges(tmp_path / "lineage.db") == [("", TAGGED, "pii:email", "allow")]


def test_an_error_beside_a_streamed_lines_fields_raises_and_is_recorded(proxy: ProxyHandle, otlp: OtlpReceiver) -> None:
    """The same reply streamed: the client raises at its first line, and the call is the upstream's error."""
    trace_id, headers = traced()
    with pytest.raises(ResponseError, match="ran out of memory"):
        list(Client(host=proxy.url, headers=headers).chat(MODEL, said("__warned__ alice example.com"), stream=True))
    assert otlp.by_trace(trace_id).attributes["error.type"] == "upstream_error"


def test_an_error_alone_in_a_whole_reply_is_the_upstreams_error(proxy: ProxyHandle, otlp: OtlpReceiver) -> None:
    """`{"error"}` alone, 200, to a call that did not stream: no answer (the client's `ChatResponse` wants a
    `message`, and raises), recorded as the upstream's error."""
    trace_id, headers = traced()
    with pytest.raises(Exception, match="message"):
        Client(host=proxy.url, headers=headers).chat(MODEL, said("__failed__ alice example.com"))
    assert otlp.by_trace(trace_id).attributes["error.type"] == "upstream_error"


# whole replies to a chat that did not stream, an `error` set beside fields that are no chat's answer: the `ollama`
# client's `ChatResponse` wants a `message` (a `role` in it), and raises pydantic's `ValidationError` without one
NO_CHAT_ANSWER = {
    "done": {"model": TAGGED, "created_at": "2026-12-04T10:00:00Z", "done": True, "done_reason": "stop"},
    "response": {"model": TAGGED, "response": "hi", "done": True},
    "message without role": {"model": TAGGED, "message": {"content": "hi"}, "done": True},
}


@pytest.mark.parametrize("fields", list(NO_CHAT_ANSWER.values()), ids=list(NO_CHAT_ANSWER))
def test_an_error_beside_fields_that_are_no_chats_answer_is_the_upstreams_error(
    loop_thread: LoopThread,
    otlp: OtlpReceiver,
    make_proxy: Callable[..., ProxyHandle],
    fields: dict[str, Any],
) -> None:
    """The client raises at such a reply (no answer), so the call is recorded as the upstream's error, as one whose
    `error` is alone (before 2026-12-04 recorded as an answer that ended well, `done` or a generate's `response`
    taken for a chat's output)."""
    from aiohttp import web

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": TAGGED, "object": "model", "owned_by": "x"}]})

    async def chat(request: web.Request) -> web.Response:
        return web.json_response({**fields, "error": "the model ran out of memory"})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/api/chat", chat)
    with serving(loop_thread, app) as url:
        proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        trace_id, headers = traced()
        with pytest.raises(Exception, match="message"):
            Client(host=proxy.url, headers=headers).chat(MODEL, said("hi"))
    assert otlp.by_trace(trace_id).attributes.get("error.type") == "upstream_error", otlp.by_trace(trace_id).attributes
