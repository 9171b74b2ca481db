"""An OIP model's name in the path of its metadata request (`GET /v2/models/{name}`), which checkpoint discovery
sends: the name a call's path names is read percent-decoded, so it goes back into a path escaped, as tritonclient
sends it. Written in as it was, a name with a space or a character outside latin-1 was never asked about (`GET
/v2/models/my model HTTP/1.1` is no request line a server takes), and a name a caller made up wrote its own lines
into the proxy's request to the upstream (`%0D%0A` in the path: a header of the caller's, or a body length that
took the next call's bytes on that connection)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import tritonclient.http as httpclient
from aiohttp import web

from proxy.flow import printable_name
from tests.harness import LoopThread, ProxyHandle, proxy_before, serving

NAME = "my model 模型"  # a space, and characters outside latin-1 (MLServer takes any name a model-settings.json gives)

CONFIG = """
listen:
  http: 127.0.0.1:0
upstreams:
  - name: oip
    url: ${UPSTREAM}
    protocol: oip
routes:
  - model: "*"
    upstream: oip
policy:
  anonymous: allow
  default_purpose: evaluation
telemetry:
  exporter: none
lineage:
  store: ${STORE}
"""
# the model's own route: its name is asked about in discovery's first round, which the proxy's start waits for
BLOCKING = CONFIG.replace('model: "*"', f'model: "{NAME}"') + "  baseline: ${BASELINE}\n  on_unapproved: block\n"


def named_model_server(name: str) -> web.Application:
    """An OIP REST server (aiohttp reads paths percent-decoded, as MLServer's FastAPI does) serving version 3 of
    `name`: its metadata lists it, its replies name it."""

    async def metadata(request: web.Request) -> web.Response:
        if request.match_info["model"] != name:
            return web.json_response({"error": "unknown model"}, status=404)
        return web.json_response({"name": name, "versions": ["3"], "platform": "python", "inputs": [], "outputs": []})

    async def infer(request: web.Request) -> web.Response:
        await request.read()
        output = {"name": "OUT", "datatype": "FP32", "shape": [1], "data": [1.0]}
        return web.json_response({"model_name": name, "model_version": "3", "outputs": [output]})

    async def ready(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_get("/v2/health/ready", ready)
    app.router.add_get("/v2/models/{model}", metadata)
    app.router.add_post("/v2/models/{model}/infer", infer)
    return app


def test_a_model_name_needing_escapes_is_asked_about_and_checked(  # type: ignore[no-untyped-def]
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    """The baseline approves `my model 模型:3`, what the upstream's metadata says it serves. tritonclient sends the
    call to `/v2/models/my%20model%20%E6%A8%A1%E5%9E%8B/infer`; the proxy asked the metadata about the name unescaped,
    which no server answers, so `on_unapproved: block` refused every call to the model, for ever, as one whose
    checkpoint is unknown (503 `checkpoint_unknown`), tritonclient's calls and httpx's alike."""
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(
        f"version: 1\nflows:\n  - {{caller: '*', purpose: '*', labels: ['*'], checkpoints: ['{NAME}:3']}}\n",
        encoding="utf-8",
    )
    with serving(loop_thread, named_model_server(NAME)) as url:
        proxy = make_proxy(BLOCKING, UPSTREAM=url, BASELINE=str(baseline))
        client = httpclient.InferenceServerClient(proxy.url.removeprefix("http://"))
        x = httpclient.InferInput("X", [1], "FP32")
        x.set_data_from_numpy(np.array([1.0], dtype=np.float32))
        reply = httpx.post(f"{proxy.url}/v2/models/{NAME}/infer", json={"inputs": [
            {"name": "X", "datatype": "FP32", "shape": [1], "data": [1.0]}]}, timeout=10)  # fmt: skip
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-lineage-checkpoint"] == printable_name(f"{NAME}:3")  # (as headers carry it)
        try:
            result = client.infer(NAME, [x])
        finally:
            client.close()
        assert result.as_numpy("OUT").tolist() == [1.0]


def test_a_name_a_caller_makes_up_writes_nothing_into_the_metadata_request(  # type: ignore[no-untyped-def]
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """A call to `/v2/models/x%0D%0AX-Injected:%201/infer` names a model the proxy asks the upstream's metadata about:
    its request reached the upstream as `GET /v2/models/x` and a header line of the caller's, `X-Injected: 1`."""
    heads: list[bytes] = []
    asked = threading.Event()

    def origin() -> Callable[[], Coroutine[Any, Any, tuple[asyncio.Server, int]]]:
        async def start() -> tuple[asyncio.Server, int]:
            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                try:
                    while head := await reader.readuntil(b"\r\n\r\n"):
                        heads.append(head)
                        if head.startswith(b"POST"):
                            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                            await reader.readexactly(length)
                            body = orjson.dumps({"model_name": "x", "outputs": []})
                        elif head.startswith(b"GET /v2/health/"):
                            body = b""
                        else:  # a model's metadata: the one this test waits for
                            body = orjson.dumps({"name": "x", "versions": ["1"], "platform": "p"})
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                     % (len(body), body))  # fmt: skip
                        await writer.drain()
                        if head.startswith(b"GET /v2/models/"):
                            asked.set()
                except (asyncio.IncompleteReadError, ConnectionError):
                    pass
                finally:
                    writer.close()

            server = await asyncio.start_server(serve, "127.0.0.1", 0)
            return server, server.sockets[0].getsockname()[1]

        return start

    with proxy_before(loop_thread, make_proxy, CONFIG, origin()) as port:
        body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
        reply = httpx.post(f"http://127.0.0.1:{port}/v2/models/x%0D%0AX-Injected:%201/infer", json=body, timeout=10)
        assert reply.status_code == 200, reply.text
        assert asked.wait(10), heads
    (metadata,) = [head for head in heads if head.startswith(b"GET /v2/models/")]
    lines = metadata.split(b"\r\n")
    assert lines[0] == b"GET /v2/models/x%0D%0AX-Injected%3A%201 HTTP/1.1", metadata
    assert not any(line.lower().startswith(b"x-injected") for line in lines), metadata
