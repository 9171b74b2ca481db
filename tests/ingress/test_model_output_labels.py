"""Through the proxy, against an upstream whose model writes an address only beside its content (a tool
call's arguments, its reasoning, thinking, a reasoning summary): the reply's labels say so, whole (in
`x-data-labels`) and streamed (on the lineage edge). And a prompt of token ids written as floats is
labelled as token ids are (`scan:truncated`: the proxy cannot read them, the model can)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from tests.harness import serving

OUT = "bob@example.org"
CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: engine
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: engine
policy:
  anonymous: allow
  default_purpose: assistant
zones:
  - name: personal
    labels: [pii:email, scan:truncated]
    allow_purposes: [assistant]
detectors: [email]
lineage:
  store: ${STORE}
"""


def _sse(events: list[dict[str, Any]], done: bool = False) -> bytes:
    out = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in events)
    return out + (b"data: [DONE]\n\n" if done else b"")


CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "send", "arguments": orjson.dumps({"to": OUT}).decode()},
}
CHAT = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "ok", "reasoning": f"think {OUT}", "tool_calls": [CALL]},
     "finish_reason": "tool_calls"}]}  # fmt: skip


def _chunk(delta: dict[str, Any]) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}  # fmt: skip


CHAT_STREAM = _sse([
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"reasoning": "think bob@exa"}), _chunk({"reasoning": "mple.org"}),
    _chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "send", "arguments": ""}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"to": "bob@exa'}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'mple.org"}'}}]}),
    _chunk({"content": "ok"}),
], done=True)  # fmt: skip
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
           "content": [{"type": "thinking", "thinking": f"think {OUT}", "signature": "s"}, {"type": "text", "text": "ok"}],
           "usage": {"input_tokens": 1, "output_tokens": 1}}  # fmt: skip
MESSAGE_STREAM = _sse([
    {"type": "message_start", "message": {**MESSAGE, "content": []}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "think bob@exa"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "mple.org"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "ok"}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
    {"type": "message_stop"},
])  # fmt: skip
RESPONSE = {"id": "resp_1", "object": "response", "model": "m", "status": "completed", "output": [
    {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": f"think {OUT}"}]},
    {"type": "message", "id": "m_1", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]}]}  # fmt: skip
RESPONSE_STREAM = _sse([
    {"type": "response.created", "response": {**RESPONSE, "status": "in_progress", "output": []}},
    {"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 0, "delta": "think bob@exa"},
    {"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 0, "delta": "mple.org"},
    {"type": "response.output_text.delta", "output_index": 1, "content_index": 0, "delta": "ok"},
    {"type": "response.completed", "response": RESPONSE},
])  # fmt: skip
REPLIES = {"/v1/chat/completions": (CHAT, CHAT_STREAM), "/v1/messages": (MESSAGE, MESSAGE_STREAM),
           "/v1/responses": (RESPONSE, RESPONSE_STREAM)}  # fmt: skip


class Engine:
    """Replies as a reasoning, tool-calling model does; keeps the paths of the data requests it got."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        for path in (*REPLIES, "/v1/completions", "/v1/embeddings"):
            app.router.add_post(path, self.reply)
        return app

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]})

    async def reply(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.paths.append(request.path)
        if request.path not in REPLIES:
            return web.json_response({"id": "x", "model": "m", "choices": [], "data": []})
        whole, stream = REPLIES[request.path]
        if not body.get("stream"):
            return web.json_response(whole)
        reply = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await reply.prepare(request)
        await reply.write(stream)
        await reply.write_eof()
        return reply


@pytest.fixture
def proxied(loop_thread, make_proxy) -> Iterator[tuple[Engine, Any]]:  # type: ignore[no-untyped-def]
    engine = Engine()
    with serving(loop_thread, engine.app()) as upstream:
        yield engine, make_proxy(CONFIG, UPSTREAM=upstream)


BODIES = {
    "/v1/chat/completions": {"model": "m", "messages": [{"role": "user", "content": "hello"}]},
    "/v1/messages": {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hello"}]},
    "/v1/responses": {"model": "m", "input": "hello"},
}


@pytest.mark.parametrize("path", list(BODIES))
def test_what_the_model_writes_beside_its_content_labels_the_reply(proxied, loop_thread, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                   path: str) -> None:  # fmt: skip
    engine, proxy = proxied
    whole = httpx.post(f"{proxy.url}{path}", json=BODIES[path], timeout=10)
    assert whole.status_code == 200 and whole.json() == REPLIES[path][0]
    assert whole.headers["x-data-labels"] == "pii:email"  # the input is clean: the output's label
    flow = "flow-" + path.rsplit("/", 1)[1]
    with httpx.stream("POST", f"{proxy.url}{path}", json={**BODIES[path], "stream": True}, timeout=10,
                      headers={"x-data-labels": flow}) as streamed:  # fmt: skip
        assert streamed.status_code == 200 and streamed.read() == REPLIES[path][1]
    loop_thread.run(proxy.process.runtime.sinks.flush())
    found = stored_output_labels(tmp_path / "lineage.db")
    assert found[flow] == [flow, "pii:email"]
    assert engine.paths == [path, path]


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1/completions", b'{"model": "m", "prompt": [15339.0, 1917.0, 100.0]}'),
        ("/v1/completions", b'{"model": "m", "prompt": [[1.5339e4, 1.917e3]]}'),
        ("/v1/completions", b'{"model": "m", "prompt": [true, false]}'),
        ("/v1/embeddings", b'{"model": "m", "input": [15339.0, 1917.0]}'),
    ],
)
def test_token_ids_written_as_floats_are_unread(proxied, path: str, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    engine, proxy = proxied
    denied = httpx.post(f"{proxy.url}{path}", content=raw, timeout=10,
                        headers={"content-type": "application/json", "x-purpose": "ads"})  # fmt: skip
    assert denied.status_code == 403 and denied.headers["x-data-labels"] == "scan:truncated"
    assert engine.paths == []


def stored_output_labels(store_path: Path) -> dict[str, list[str]]:
    """The lineage store's edges: output labels by input labels."""
    from proxy.record.store import SqliteStore, split_labels

    store = SqliteStore(store_path, readonly=True)
    try:
        return {r.key.input_labels: split_labels(r.key.output_labels) for r in store.rows()}
    finally:
        store.close()
