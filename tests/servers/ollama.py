"""An Ollama-like server (Ollama's `docs/api.md`, `server/routes.go`), for tests: Ollama itself does not run here.

`POST /api/chat` (`{"model", "messages", "stream"}`) and `/api/generate` (`{"model", "prompt", "stream"}`) stream
unless `stream` is false: JSON lines (`application/x-ndjson`), `{"model", "created_at", "message": {"role":
"assistant", "content"}, "done": false}` (a generate's `"response"`) a token a line, then `"done": true` with
`done_reason` and the counts (a generate's with its `context`, token ids); not streamed, one JSON object of them. An
error after the 200 head is a line `{"error": ...}`; a model it does not have is 404 `{"error": "model ... not
found"}`. `/api/embed` answers `{"model", "embeddings"}`, `/api/embeddings` `{"embedding"}`; `GET /v1/models` lists
its model as Ollama's OpenAI-compatible API does (`llama3.2:latest`, `owned_by: library`), and `GET /api/tags` with
its digest (`{"models": [{"name", "model", "digest", ...}]}`); `tags` adds names, each with its digest (`DIGEST`: a
tag of the same weights, as `llama3.2:3b` or an `ollama cp` copy), listed and served as the model. A metadata path
in `down` (`/v1/models`, `/api/tags`) answers 503 until the test takes it out (a server starting, or failing). While
`slow` is set, each `GET /v1/models` waits for a `let_through()` of its own before it answers (first come first let
through; `asked` is set as one waits): a round of the proxy's discovery held where the test wants it.

The model joins the words of the last message's `content` (a generate's `prompt`) with `@` (`alice example.com` ->
`alice@example.com`: an address in the output only) and streams it a word or a separator a line. Hooks, in that text:
- `__gated__`: each line after the first waits for the test's `release()` (the stream in lockstep);
- `__error__`: one line, then the error in band;
- `__failed__`: the error alone, 200, a stream of that one line sent sized (`Content-Length`), as a server that
  failed before it wrote a token and after it wrote its head (an older Ollama's, or one behind another proxy);
- `__nullerror__`: each line, or the whole reply, has `"error": null` beside its fields, as a server that writes
  every field of its reply's type (no error: the `ollama` client raises only at an `error` that is set);
- `__warned__`: each line, or the whole reply, has an `error` that is set beside its fields (the `ollama` client
  raises at such a line of a stream, and returns a whole reply's fields as its answer).
Every call received is kept in `received` (path, body), so tests can assert what reached it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

MODEL = "llama3.2"
TAGGED = f"{MODEL}:latest"
CREATED = "2026-12-04T10:00:00.000000Z"
DIGEST = "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72"  # the model's (`/api/tags`)
WARNING = "the model ran out of memory and answered on the CPU"  # `__warned__`'s error, set beside the fields


@dataclass
class Ollama:
    received: list[tuple[str, bytes]] = field(default_factory=list)
    url: str = ""  # where it serves, once it does
    tags: dict[str, str] = field(default_factory=dict)  # other names listed -> their digest
    down: set[str] = field(default_factory=set)  # metadata paths answering 503 for now
    _gate: asyncio.Semaphore | None = None
    slow: bool = False  # each `GET /v1/models` waits for a `let_through()` before it answers
    asked: asyncio.Event = field(default_factory=asyncio.Event)  # set as a `GET /v1/models` waits (`slow`)
    _through: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(0))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/api/tags", self.listed_tags)
        for path in ("/api/chat", "/api/generate", "/api/embed", "/api/embeddings"):
            app.router.add_post(path, self.call)
        return app

    def release(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let a gated stream send its next line (called from the test's thread)."""
        loop.call_soon_threadsafe(self._gated().release)

    def _gated(self) -> asyncio.Semaphore:
        if self._gate is None:
            self._gate = asyncio.Semaphore(0)
        return self._gate

    async def let_through(self) -> None:
        """Let the first `GET /v1/models` waiting (or the next to come) answer (on the loop, `slow`)."""
        self._through.release()

    async def models(self, request: web.Request) -> web.Response:
        if self.slow:
            self.asked.set()
            await self._through.acquire()
        if request.path in self.down:
            return web.json_response({"error": "server busy, please try again"}, status=503)
        data = [{"id": name, "object": "model", "created": 1764842400, "owned_by": "library"} for name in self._names()]
        return web.json_response({"object": "list", "data": data})

    async def listed_tags(self, request: web.Request) -> web.Response:
        if request.path in self.down:
            return web.json_response({"error": "server busy, please try again"}, status=503)
        digests = {TAGGED: DIGEST, **self.tags}
        models = [{"name": name, "model": name, "modified_at": CREATED, "size": 2019393189, "digest": digests[name],
                   "details": {"format": "gguf", "family": "llama"}} for name in self._names()]  # fmt: skip
        return web.json_response({"models": models})

    def _names(self) -> list[str]:
        return [TAGGED, *self.tags]

    async def call(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append((request.path, body))
        try:
            data: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return web.json_response({"error": "invalid character looking for beginning of value"}, status=400)
        model = data.get("model") if isinstance(data, dict) else None
        if model not in (MODEL, TAGGED) and model not in self.tags:
            return web.json_response({"error": f"model '{model}' not found"}, status=404)
        if request.path == "/api/embed":
            return web.json_response({"model": model, "embeddings": [[0.1, -0.2, 0.3]], "total_duration": 1})
        if request.path == "/api/embeddings":
            return web.json_response({"embedding": [0.1, -0.2, 0.3]})
        chat = request.path == "/api/chat"
        if chat and not data.get("messages"):  # none, null or []: the model loaded, nothing generated
            return web.json_response({**self._line(model, chat, "", 0), "done_reason": "load"})
        text = data["messages"][-1]["content"] if chat else data.get("prompt", "")
        words = (
            text.replace("__gated__", "")
            .replace("__error__", "")
            .replace("__nullerror__", "")
            .replace("__warned__", "")
            .split()
        )
        tokens = [t for t in "@".join(words).replace("@", "\0@\0").split("\0") if t]
        if "__failed__" in text:
            failed = b'{"error":"an error was encountered while running the model: CUDA error"}\n'
            return web.Response(body=failed, content_type="application/x-ndjson")
        extra: dict[str, Any] = {"error": None} if "__nullerror__" in text else {}
        if "__warned__" in text:
            extra["error"] = WARNING
        if data.get("stream") is False:
            return web.json_response(self._line(model, chat, "".join(tokens), len(words), len(tokens), **extra))
        reply = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await reply.prepare(request)
        for at, token in enumerate(tokens):
            if at and "__gated__" in text:
                await self._gated().acquire()
            await reply.write(orjson.dumps(self._line(model, chat, token, **extra)) + b"\n")
            if "__error__" in text:
                await reply.write(b'{"error":"an error was encountered while running the model: unexpected EOF"}\n')
                break
        else:
            await reply.write(orjson.dumps(self._line(model, chat, "", len(words), len(tokens), **extra)) + b"\n")
        await reply.write_eof()
        return reply

    def _line(
        self, model: str, chat: bool, text: str, prompt: int | None = None, written: int = 0, **extra: Any
    ) -> dict[str, Any]:
        """A reply, or a line of one; the last (`prompt` given) with what ends it; `extra` after its fields."""
        line: dict[str, Any] = {"model": model, "created_at": CREATED}
        if chat:
            line["message"] = {"role": "assistant", "content": text}
        else:
            line["response"] = text
        line["done"] = prompt is not None
        if prompt is not None:
            line.update(done_reason="stop", total_duration=5, load_duration=1, prompt_eval_count=prompt,
                        prompt_eval_duration=1, eval_count=written, eval_duration=2)  # fmt: skip
            if not chat:
                line["context"] = [128006, 882, 128007]
        line.update(extra)
        return line
