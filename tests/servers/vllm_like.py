"""A faithful vLLM-like OpenAI-compatible server for tests, with hooks for failure cases.

Shapes follow vLLM's OpenAI server: `/v1/models` entries carry `root` and `parent`; chat and text
completions carry `usage` and `system_fingerprint`-free ids; streams are SSE events ending in
`data: [DONE]`, with usage in the last event when `stream_options.include_usage` is set.

Test hooks, chosen by the last user message / prompt:
- `__slow__`  never answers (for upstream timeouts);
- `__cut__`   streams two events then drops the connection (a cut-off stream);
- `__gate__`  streams in lockstep: each event waits for the test to call `release()`;
- `__big__`   answers with a 2 MB content string.
`response_events`, when set, are the events a streamed Responses reply sends.
Also served as vLLM does: the Responses API (`/v1/responses`) and the Anthropic Messages API
(`/v1/messages`), whole or streamed as their typed SSE events.
Every request received is kept in `requests` (method, path, headers, body) so tests can assert what
reached the upstream, and what did not.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

SERVED = "llama-3.1-8b"
ROOT = "meta-llama/Llama-3.1-8B-Instruct"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class VllmLike:
    models: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"id": SERVED, "object": "model", "created": 1, "owned_by": "vllm", "root": ROOT, "parent": None,
             "max_model_len": 8192},
            {"id": "sql-lora", "object": "model", "created": 1, "owned_by": "vllm", "root": "/adapters/sql-lora",
             "parent": SERVED, "max_model_len": 8192},
        ]
    )  # fmt: skip
    requests: list[Received] = field(default_factory=list)
    gate: asyncio.Queue[None] | None = None
    cancelled: int = 0  # requests whose client went away mid-reply
    cancelled_event: asyncio.Event | None = None
    reply_words: int = 6
    # the events a streamed Responses reply sends instead of its own (each numbered as sent): a server that streams
    # otherwise than vLLM does
    response_events: list[dict[str, Any]] | None = None
    # VLLM_ALLOW_RUNTIME_LORA_UPDATING=True: `POST /v1/load_lora_adapter` and `/v1/unload_lora_adapter` are served
    runtime_lora: bool = False

    def app(self) -> web.Application:
        self.gate = asyncio.Queue()
        self.cancelled_event = asyncio.Event()
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_post("/v1/chat/completions", self.complete)
        app.router.add_post("/v1/completions", self.complete)
        app.router.add_post("/v1/embeddings", self.embed)
        app.router.add_post("/chat/completions", self.complete)  # vLLM and llama.cpp serve both paths
        app.router.add_post("/v1/responses", self.respond)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_get("/health", self.health)
        app.router.add_post("/tokenize", self.tokenize)
        app.router.add_post("/pooling", self.tokenize)  # vLLM's /pooling: a path no adapter reads (its reply aside)
        if self.runtime_lora:  # (vLLM serves them only with VLLM_ALLOW_RUNTIME_LORA_UPDATING set)
            app.router.add_post("/v1/load_lora_adapter", self.load_lora)
            app.router.add_post("/v1/unload_lora_adapter", self.unload_lora)
        return app

    def release(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let one gated event through (thread-safe)."""
        assert self.gate is not None
        loop.call_soon_threadsafe(self.gate.put_nowait, None)

    async def _record(self, request: web.Request) -> bytes:
        body = await request.read()
        self.requests.append(Received(request.method, request.path, dict(request.headers), body))
        return body

    def data_requests(self) -> list[Received]:
        return [r for r in self.requests if r.method == "POST"]

    async def health(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=200)

    async def list_models(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"object": "list", "data": self.models})

    async def load_lora(self, request: web.Request) -> web.Response:
        """vLLM's `POST /v1/load_lora_adapter` (`OpenAIServingModels.load_lora_adapter`): `{"lora_name", "lora_path"}`;
        the adapter is listed from then on as a model of its own, its `parent` the base's served name; a plain-text
        200, or an error (400) when a field is missing or the name is loaded already."""
        body = _fastapi_json(await self._record(request))
        if body is None:
            return _error(400, "There was an error parsing the body")
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return _error(400, "Both 'lora_name' and 'lora_path' must be provided.")
        if any(model["id"] == name for model in self.models):
            return _error(400, f"The lora adapter '{name}' has already been loaded.")
        self.models.append({"id": name, "object": "model", "created": 1, "owned_by": "vllm", "root": path,
                            "parent": self.models[0]["id"], "max_model_len": None})  # fmt: skip
        return web.Response(text=f"Success: LoRA adapter '{name}' added successfully.")

    async def unload_lora(self, request: web.Request) -> web.Response:
        """vLLM's `POST /v1/unload_lora_adapter`: `{"lora_name"}`; 404 for an adapter not loaded."""
        body = _fastapi_json(await self._record(request))
        if body is None:
            return _error(400, "There was an error parsing the body")
        name = body.get("lora_name")
        if not name:
            return _error(400, "'lora_name' needs to be provided to unload a LoRA adapter.")
        loaded = [model for model in self.models if model["id"] == name and model.get("parent") is not None]
        if not loaded:
            return _error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        self.models.remove(loaded[0])
        return web.Response(text=f"Success: LoRA adapter '{name}' removed successfully.")

    async def tokenize(self, request: web.Request) -> web.Response:
        body = orjson.loads(await self._record(request))
        tokens = list(range(len(str(body.get("prompt", "")).split())))
        return web.json_response({"tokens": tokens, "count": len(tokens), "max_model_len": 8192})

    async def embed(self, request: web.Request) -> web.Response:
        body = orjson.loads(await self._record(request))
        items = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"index": i, "object": "embedding", "embedding": [0.25 * (i + 1), -0.5, 0.125]} for i in range(len(items))
        ]
        return web.json_response(
            {"id": "embd-1", "object": "list", "created": 1, "model": body["model"], "data": data,
             "usage": {"prompt_tokens": 3 * len(items), "total_tokens": 3 * len(items), "completion_tokens": 0}}
        )  # fmt: skip

    async def complete(self, request: web.Request) -> web.StreamResponse:
        raw = await self._record(request)
        body = orjson.loads(raw)
        chat = request.path.endswith("/chat/completions")
        if chat:
            prompt = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
            prompt = prompt if isinstance(prompt, str) else " ".join(p.get("text", "") for p in prompt)
        else:
            prompt = body.get("prompt", "")
        if "__slow__" in prompt:
            await asyncio.Event().wait()
        n = int(body.get("n", 1))
        if "__big__" in prompt:
            words = ["x" * 2_000_000]
        else:
            words = [f"w{i}" for i in range(self.reply_words)] + ["echo:", prompt]
        # deterministic (a digest of the request) so direct and proxied answers compare byte for byte
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{hashlib.sha256(raw).hexdigest()[:24]}"
        created = 1_730_000_000
        model = body["model"]
        usage = {"prompt_tokens": len(prompt.split()) + 5, "completion_tokens": len(words), "total_tokens": 0}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        text = " ".join(words)
        if not body.get("stream"):
            if chat:
                choices = [{"index": i, "message": {"role": "assistant", "content": text, "tool_calls": []},
                            "logprobs": None, "finish_reason": "stop", "stop_reason": None} for i in range(n)]  # fmt: skip
            else:
                choices = [{"index": i, "text": text, "logprobs": None, "finish_reason": "stop", "stop_reason": None}
                           for i in range(n)]  # fmt: skip
            kind = "chat.completion" if chat else "text_completion"
            return web.json_response(
                {"id": rid, "object": kind, "created": created, "model": model, "choices": choices, "usage": usage}
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        kind = "chat.completion.chunk" if chat else "text_completion"
        try:
            if chat:
                first = {"id": rid, "object": kind, "created": created, "model": model,
                         "choices": [{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                      "finish_reason": None} for i in range(n)]}  # fmt: skip
                await response.write(b"data: " + orjson.dumps(first) + b"\n\n")
            for position, word in enumerate(words):
                piece = word if position == 0 else " " + word
                for i in range(n):
                    choice: dict[str, Any] = {"index": i, "logprobs": None, "finish_reason": None}
                    choice.update({"delta": {"content": piece}} if chat else {"text": piece})
                    event = {"id": rid, "object": kind, "created": created, "model": model, "choices": [choice]}
                    if "__gate__" in prompt:
                        assert self.gate is not None
                        await self.gate.get()
                    await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
                if "__cut__" in prompt and position == 1:
                    assert request.transport is not None
                    request.transport.abort()
                    return response
            for i in range(n):
                last: dict[str, Any] = {"index": i, "logprobs": None, "finish_reason": "stop", "stop_reason": None}
                last.update({"delta": {"content": ""}} if chat else {"text": ""})
                await response.write(b"data: " + orjson.dumps(
                    {"id": rid, "object": kind, "created": created, "model": model, "choices": [last]}) + b"\n\n")  # fmt: skip
            if (body.get("stream_options") or {}).get("include_usage"):
                await response.write(b"data: " + orjson.dumps(
                    {"id": rid, "object": kind, "created": created, "model": model, "choices": [],
                     "usage": usage}) + b"\n\n")  # fmt: skip
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled += 1
            assert self.cancelled_event is not None
            self.cancelled_event.set()
            raise
        return response

    async def respond(self, request: web.Request) -> web.StreamResponse:
        """The Responses API: output items; streamed as response.* events ending in response.completed."""
        raw = await self._record(request)
        body = orjson.loads(raw)
        prompt = body["input"] if isinstance(body["input"], str) else "items"
        words = [f"w{i}" for i in range(self.reply_words)] + ["echo:", prompt]
        rid = f"resp_{hashlib.sha256(raw).hexdigest()[:24]}"
        usage = {"input_tokens": 5, "output_tokens": len(words), "total_tokens": 5 + len(words)}
        item = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": " ".join(words), "annotations": []}]}  # fmt: skip
        done = {"id": rid, "object": "response", "created_at": 1_730_000_000, "model": body["model"],
                "status": "completed", "output": [item], "usage": usage}  # fmt: skip
        if not body.get("stream"):
            return web.json_response(done)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        started = {**done, "status": "in_progress", "output": [], "usage": None}
        events: list[dict[str, Any]] = [{"type": "response.created", "response": started}]
        events += [{"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0,
                    "delta": word if i == 0 else " " + word} for i, word in enumerate(words)]  # fmt: skip
        events.append({"type": "response.completed", "response": done})
        if self.response_events is not None:
            events = [dict(event) for event in self.response_events]
        for number, event in enumerate(events):
            event["sequence_number"] = number
            await response.write(f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n")
        await response.write_eof()
        return response

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """The Anthropic Messages API: content blocks; streamed from message_start to message_stop."""
        raw = await self._record(request)
        body = orjson.loads(raw)
        last = body["messages"][-1]["content"]
        prompt = last if isinstance(last, str) else " ".join(b.get("text", "") for b in last)
        words = [f"w{i}" for i in range(self.reply_words)] + ["echo:", prompt]
        mid = f"msg_{hashlib.sha256(raw).hexdigest()[:24]}"
        usage = {"input_tokens": 5, "output_tokens": len(words)}
        if not body.get("stream"):
            return web.json_response({"id": mid, "type": "message", "role": "assistant", "model": body["model"],
                                      "content": [{"type": "text", "text": " ".join(words)}],
                                      "stop_reason": "end_turn", "stop_sequence": None, "usage": usage})  # fmt: skip
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": {"id": mid, "type": "message", "role": "assistant", "content": [],
                                                  "model": body["model"], "usage": {"input_tokens": 5}}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ]  # fmt: skip
        events += [{"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": word if i == 0 else " " + word}}
                   for i, word in enumerate(words)]  # fmt: skip
        events += [{"type": "content_block_stop", "index": 0},
                   {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": len(words)}},
                   {"type": "message_stop"}]  # fmt: skip
        for event in events:
            await response.write(f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n")
        await response.write_eof()
        return response


def _fastapi_json(body: bytes) -> dict[str, Any] | None:
    """A request body as vLLM's FastAPI app reads one into its request model (Starlette's `Request.json()`: Python's
    `json.loads` of the bytes, so UTF-8 with or without a byte order mark, UTF-16 or UTF-32, the last of a key written
    twice); None for one it refuses (not JSON, nested too deeply, not an object)."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if type(value) is dict else None


def _error(status: int, message: str, kind: str = "BadRequestError") -> web.Response:
    """vLLM's error body (`ErrorResponse`)."""
    return web.json_response({"error": {"message": message, "type": kind, "param": None, "code": status}},
                             status=status)  # fmt: skip
