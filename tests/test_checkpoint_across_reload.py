"""A call's checkpoint is named from what was known of the upstream that served it. A call whose checkpoint only
its reply could name (the upstream's metadata does not list the model) was named, when it ended, from the
checkpoint book in force then: after a reload that pointed the upstream's name at another server, a reply of the
old server was recorded as served by the weights the new server's metadata lists for that model name (source
`upstream`), weights that never saw the call."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from tests.harness import LoopThread, serving
from tests.servers.otlp_receiver import OtlpReceiver

CONFIG = """listen: {{http: "127.0.0.1:0"}}
upstreams:
  - {{name: llm, url: "{url}", discovery_interval_s: 60}}
routes: [{{model: "*", upstream: llm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{otlp}"}}
lineage: {{store: "{store}"}}
"""


def _server(listed: list[dict[str, Any]], gate: asyncio.Event | None, arrived: threading.Event) -> web.Application:
    """An OpenAI-compatible server whose `/v1/models` lists `listed`; its chat replies wait for `gate`."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": listed})

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        arrived.set()
        if gate is not None:
            await gate.wait()
        return web.json_response({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        })  # fmt: skip

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def test_a_reply_served_before_a_reload_is_not_named_by_the_new_upstream_s_metadata(
    make_proxy: Any, loop_thread: LoopThread, otlp: OtlpReceiver, tmp_path: Path
) -> None:
    gate = loop_thread.run(_event())
    old_arrived, new_arrived = threading.Event(), threading.Event()
    listed = [{"id": "chat", "object": "model", "created": 1, "owned_by": "vllm", "root": "org/new-weights",
               "parent": None}]  # fmt: skip
    # the old server lists two models, neither the one called (so only its reply names it); the new one lists it
    other = [dict(listed[0], id=name, root=f"org/{name}") for name in ("a", "b")]
    with serving(loop_thread, _server(other, gate, old_arrived)) as old, \
            serving(loop_thread, _server(listed, None, new_arrived)) as new:  # fmt: skip
        store = tmp_path / "lineage.db"
        proxy = make_proxy(CONFIG.format(url=old, otlp=otlp.port, store=store))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            body = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}
            call = pool.submit(httpx.post, f"{proxy.url}/v1/chat/completions", json=body, timeout=20)
            assert old_arrived.wait(10), "the call never reached the old server"
            moved = tmp_path / "moved.yaml"
            moved.write_text(CONFIG.format(url=new, otlp=otlp.port, store=store))

            async def reload() -> bool:
                done = bool(proxy.process.reload(str(moved)))
                await asyncio.wait_for(proxy.process.book.wait_reachable(), 10)  # the new server's metadata is in
                return done

            assert loop_thread.run(reload())
            assert proxy.process.runtime.book.resolve(proxy.process.config.upstreams[0], "chat") is not None
            loop_thread.loop.call_soon_threadsafe(gate.set)
            reply = call.result(20)
    assert reply.status_code == 200, reply.text
    assert not new_arrived.is_set()  # the old server answered it
    # was: org/new-weights, the new server's weights for the name, which never saw the call
    assert reply.headers["x-lineage-checkpoint"] == "chat"
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert (span["lineage.checkpoint"], span["lineage.checkpoint.source"]) == ("chat", "response")


async def _event() -> asyncio.Event:
    return asyncio.Event()
