"""A tiny OpenAI-compatible model server for `lineage-proxy demo`: deterministic echo, streaming too.

It answers like vLLM does (`/v1/models` with `root`, chat and text completions with usage, SSE
streaming ending in `data: [DONE]`, embeddings), so the demo exercises the real code paths.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
from aiohttp import web

MODEL = "demo-chat"
ROOT = "lineage-proxy/demo-echo-1"


def _reply_text(body: dict[str, Any]) -> str:
    """What the echo answers: a chat's last user message, or a completion's `prompt`."""
    messages = body.get("messages")
    if isinstance(messages, list):
        said = next((m.get("content") for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"),
                    None)  # fmt: skip
    else:
        said = body.get("prompt")
    return f"You said: {_text(said)}"


def _text(value: object) -> str:
    """A string; a list of strings (a batch of prompts) or of content parts (`{"type": "text", "text": ...}`)
    joined by spaces; '' for anything else (token ids, images)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return ""
    parts = (item if isinstance(item, str) else item.get("text") if isinstance(item, dict) else None for item in value)
    return " ".join(part for part in parts if isinstance(part, str) and part)


async def models(_: web.Request) -> web.Response:
    entry = {"id": MODEL, "object": "model", "created": 0, "owned_by": "lineage-proxy", "root": ROOT, "parent": None}
    return web.json_response({"object": "list", "data": [entry]})


async def completions(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    chat = request.path.endswith("/chat/completions")
    text = _reply_text(body)
    words = text.split(" ")
    created = int(time.time())
    rid = "cmpl-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    usage = {"prompt_tokens": len(str(body).split()), "completion_tokens": len(words), "total_tokens": 0}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    kind = "chat.completion" if chat else "text_completion"
    if not body.get("stream"):
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
        reply = {"id": rid, "object": kind, "created": created, "model": body.get("model", MODEL),
                 "choices": [choice], "usage": usage}  # fmt: skip
        return web.json_response(reply)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    for index, word in enumerate(words):
        piece = word if index == 0 else " " + word
        choice = {"index": 0, "finish_reason": None}
        choice.update({"delta": {"content": piece}} if chat else {"text": piece})
        event = {"id": rid, "object": kind + ".chunk", "created": created, "model": body.get("model", MODEL),
                 "choices": [choice]}  # fmt: skip
        await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
    last: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
    last.update({"delta": {"content": ""}} if chat else {"text": ""})
    event = {"id": rid, "object": kind + ".chunk", "created": created, "model": body.get("model", MODEL),
             "choices": [last], "usage": usage}  # fmt: skip
    await response.write(b"data: " + orjson.dumps(event) + b"\n\ndata: [DONE]\n\n")
    await response.write_eof()
    return response


async def embeddings(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    inputs = body.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    data = []
    for index, item in enumerate(items):
        digest = hashlib.sha256(str(item).encode()).digest()
        data.append({"object": "embedding", "index": index, "embedding": [b / 255 for b in digest[:8]]})
    return web.json_response({"object": "list", "data": data, "model": body.get("model", MODEL),
                              "usage": {"prompt_tokens": len(items), "total_tokens": len(items)}})  # fmt: skip


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    return app
