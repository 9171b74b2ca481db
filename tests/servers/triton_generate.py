"""A Triton-like OIP v2 REST server with the generate extension (Triton's `docs/protocol/extension_generate.md`), for
tests: Triton itself does not run here.

`POST /v2/models/{m}[/versions/{v}]/generate` takes a JSON object whose fields are the model's inputs (`text_input`)
or parameters (`max_tokens`, `parameters: {...}`) and answers `{"model_name", "model_version", "text_output"}`;
`/generate_stream` answers the same objects as SSE `data:` events (`text/event-stream; charset=utf-8`), an error after
the 200 head as `data: {"error": "..."}`. A request Triton refuses before inference (no JSON object, no `text_input`)
gets 400 `{"error": "..."}` as `application/json`. Model metadata (`GET /v2/models/{m}`) and readiness as Triton's.

The model joins the words of its `text_input` with `@` (`alice example.com` -> `alice@example.com`: an address in
the output only) and streams it a word or a separator an event. Hooks, chosen by `text_input`:
- `__gated__` anywhere: each event after the first waits for the test's `release()` (the stream in lockstep);
- `__error__` anywhere: one event, then the error in band;
- `__many__` anywhere: `/generate` answers as Triton does a model that sent more than one response, 200
  `{"error": ...}` (its `GenerateRequestClass`: the status goes with the first response, the error after it).
Every generate request received is kept in `received` (path, body), so tests can assert what reached it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

MODEL = "ensemble"
VERSION = "1"
MANY = (
    "generate expects model to produce exactly 1 response, use generate stream for model that generates various "
    "number of responses"
)  # (Triton's words)


@dataclass
class TritonGenerate:
    received: list[tuple[str, bytes]] = field(default_factory=list)
    _gate: asyncio.Semaphore | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v2/health/ready", self.ready)
        app.router.add_get("/v2/models/{model}", self.metadata)
        for path in ("/v2/models/{model}/{how}", "/v2/models/{model}/versions/{version}/{how}"):
            app.router.add_post(path, self.generate)
        return app

    def release(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let a gated stream send its next event (called from the test's thread)."""
        loop.call_soon_threadsafe(self._gated().release)

    def _gated(self) -> asyncio.Semaphore:
        if self._gate is None:
            self._gate = asyncio.Semaphore(0)
        return self._gate

    async def ready(self, request: web.Request) -> web.Response:
        return web.Response()

    async def metadata(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        if model != MODEL:
            return web.json_response({"error": f"Request for unknown model: '{model}' is not found"}, status=404)
        return web.json_response({
            "name": MODEL, "versions": [VERSION], "platform": "ensemble",
            "inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [-1]}],
        })  # fmt: skip

    async def generate(self, request: web.Request) -> web.StreamResponse:
        how = request.match_info["how"]
        if how not in ("generate", "generate_stream"):
            return web.json_response({"error": "Not Found"}, status=404)
        body = await request.read()
        self.received.append((request.path, body))
        try:
            data: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return web.json_response({"error": "failed to parse the request JSON buffer"}, status=400)
        text = data.get("text_input") if isinstance(data, dict) else None
        if not isinstance(text, str):
            return web.json_response({"error": "expected 'text_input' in the generate request"}, status=400)
        pieces = "@".join(text.replace("__gated__", "").replace("__error__", "").replace("__many__", "").split())
        if how == "generate" and "__many__" in text:  # chunked, as Triton sends every generate reply
            many = web.StreamResponse(headers={"Content-Type": "application/json"})
            await many.prepare(request)
            await many.write(orjson.dumps({"error": MANY}))
            await many.write_eof()
            return many
        if how == "generate":
            return web.json_response({"model_name": MODEL, "model_version": VERSION, "text_output": pieces})
        reply = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await reply.prepare(request)
        tokens = [t for t in pieces.replace("@", "\0@\0").split("\0") if t]
        for at, token in enumerate(tokens):
            if at and "__gated__" in text:
                await self._gated().acquire()
            event = {"model_name": MODEL, "model_version": VERSION, "text_output": token}
            await reply.write(b"data: " + orjson.dumps(event) + b"\n\n")
            if "__error__" in text:
                await reply.write(b'data: {"error": "the model failed mid-stream"}\n\n')
                break
        await reply.write_eof()
        return reply
