"""A Text Generation Inference-like server (TGI's `router/src/server.rs`, `docs/openapi.json`), for tests: TGI itself
does not run here.

`POST /generate` takes `{"inputs": str, "parameters": {...}}` and answers `{"generated_text", "details"}` (`details`
with `parameters.details`: `finish_reason`, `generated_tokens`, `seed`, `prefill`, `tokens`, `best_of_sequences` with
`best_of`); `POST /generate_stream` answers SSE `data:` events (`text/event-stream`), a token an event
(`{"index", "token": {"id", "text", "logprob", "special"}, "top_tokens": [], "generated_text": null, "details":
null}`), the last with the whole text and its details, an error after the 200 head as `data: {"error", "error_type"}`;
`POST /` takes the same body with `"stream"`, and answers a list of one `/generate` reply, or streams as
`/generate_stream`. A body TGI refuses (no JSON object, no string `inputs`) gets 422 `{"error", "error_type":
"validation"}`. `GET /info` (`model_id`, `model_sha`: the checkpoint) and `GET /v1/models` as TGI's. `POST
/v1/chat/completions` (huggingface_hub's `InferenceClient.chat_completion`): OpenAI's chat, the last message's words
joined the same way, whole or streamed (a `chat.completion.chunk` a token, then `data: [DONE]`).

The model joins the words of its `inputs` with `@` (`alice example.com` -> `alice@example.com`: an address in the
output only) and streams it a word or a separator a token; its `best_of` other sequence is the words joined with `.`.
Hooks, chosen by `inputs`:
- `__gated__` anywhere: each event after the first waits for the test's `release()` (the stream in lockstep);
- `__error__` anywhere: one event, then the error in band.
Every generate request received is kept in `received` (path, body), so tests can assert what reached it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

MODEL_ID = "bigscience/bloom-560m"
MODEL_SHA = "ac2ae5fab2ce3f9f40dc79b5ca9f637430d24971"
CHECKPOINT = f"{MODEL_ID}@{MODEL_SHA}"


@dataclass
class Tgi:
    received: list[tuple[str, bytes]] = field(default_factory=list)
    url: str = ""  # where it serves, once it does
    _gate: asyncio.Semaphore | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/info", self.info)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/generate", self.generate)
        app.router.add_post("/generate_stream", self.generate)
        app.router.add_post("/", self.generate)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    def release(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let a gated stream send its next event (called from the test's thread)."""
        loop.call_soon_threadsafe(self._gated().release)

    def _gated(self) -> asyncio.Semaphore:
        if self._gate is None:
            self._gate = asyncio.Semaphore(0)
        return self._gate

    async def health(self, request: web.Request) -> web.Response:
        return web.Response()

    async def info(self, request: web.Request) -> web.Response:
        return web.json_response({
            "model_id": MODEL_ID, "model_sha": MODEL_SHA, "model_pipeline_tag": "text-generation",
            "max_input_tokens": 1024, "max_total_tokens": 2048, "router": "text-generation-router", "version": "3.3.6",
        })  # fmt: skip

    async def models(self, request: web.Request) -> web.Response:
        entry = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": MODEL_ID}
        return web.json_response({"object": "list", "data": [entry]})

    async def generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append((request.path, body))
        try:
            data: Any = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _refused(f"Failed to deserialize the JSON body into the target type: {exc}")
        inputs = data.get("inputs") if isinstance(data, dict) else None
        if not isinstance(inputs, str):
            return _refused("Failed to deserialize the JSON body into the target type: missing field `inputs`")
        parameters = data.get("parameters") or {}
        words = inputs.replace("__gated__", "").replace("__error__", "").split()
        text = "@".join(words)
        streamed = request.path == "/generate_stream" or (request.path == "/" and data.get("stream") is True)
        if not streamed:
            reply: dict[str, Any] = {"generated_text": text}
            if parameters.get("details"):
                reply["details"] = _details(text, parameters, words)
            return web.json_response([reply] if request.path == "/" else reply)
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await stream.prepare(request)
        tokens = _tokens(text)
        for at, token in enumerate(tokens):
            if at and "__gated__" in inputs:
                await self._gated().acquire()
            last = at == len(tokens) - 1
            event = {
                "index": at, "token": {"id": 100 + at, "text": token, "logprob": -0.5, "special": False},
                "top_tokens": [], "generated_text": text if last else None,
                "details": {"finish_reason": "eos_token", "generated_tokens": len(tokens), "seed": None,
                            "input_length": len(words)} if last else None,
            }  # fmt: skip
            await stream.write(b"data:" + orjson.dumps(event) + b"\n\n")
            if "__error__" in inputs:
                error = {"error": "Request failed during generation: Server error: CUDA out of memory",
                         "error_type": "generation"}  # fmt: skip
                await stream.write(b"data:" + orjson.dumps(error) + b"\n\n")
                break
        await stream.write_eof()
        return stream

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append((request.path, body))
        data = orjson.loads(body)
        tokens = _tokens("@".join(data["messages"][-1]["content"].split()))
        reply: dict[str, Any] = {"id": "", "created": 0, "model": MODEL_ID, "system_fingerprint": "3.3.6-native"}
        if not data.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": "".join(tokens)}, "finish_reason": "stop"}
            usage = {"prompt_tokens": 2, "completion_tokens": len(tokens), "total_tokens": 2 + len(tokens)}
            return web.json_response({**reply, "object": "chat.completion", "choices": [choice], "usage": usage})
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        for token in tokens:
            choice = {"index": 0, "delta": {"role": "assistant", "content": token}, "finish_reason": None}
            chunk = {**reply, "object": "chat.completion.chunk", "choices": [choice]}
            await stream.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await stream.write(b"data: [DONE]\n\n")
        await stream.write_eof()
        return stream


def _tokens(text: str) -> list[str]:
    """The tokens the model streams `text` as: a word or a separator a token."""
    return [token for token in text.replace("@", "\0@\0").split("\0") if token]


def _details(text: str, parameters: dict[str, Any], words: list[str]) -> dict[str, Any]:
    tokens = [
        {"id": 100 + at, "text": token, "logprob": -0.5, "special": False} for at, token in enumerate(_tokens(text))
    ]
    details: dict[str, Any] = {
        "finish_reason": "length", "generated_tokens": len(tokens), "seed": None,
        "prefill": [{"id": 1, "text": word, "logprob": None} for word in words], "tokens": tokens,
    }  # fmt: skip
    if isinstance(parameters.get("best_of"), int) and parameters["best_of"] > 1:
        other = ".".join(words)
        details["best_of_sequences"] = [{"generated_text": other, "finish_reason": "length",
                                         "generated_tokens": 1, "seed": 3, "prefill": [], "tokens": []}]  # fmt: skip
    return details


def _refused(message: str) -> web.Response:
    return web.json_response({"error": message, "error_type": "validation"}, status=422)
