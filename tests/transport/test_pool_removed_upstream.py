"""An upstream a reload removes (or renames) gives up its connection pool: its idle connections close, as a
changed upstream's do. A server that keeps idle connections open (Go's net/http without an IdleTimeout: Ollama)
would otherwise hold one socket on each side for every upstream name a reload ever dropped, a reload a deploy for
months. A call decided before the reload still goes to the upstream it was decided for, and leaves no connection."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx

from tests.harness import LoopThread

REPLY = (
    b'{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":'
    b'{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}'
)
MODELS = b'{"object":"list","data":[{"id":"m","object":"model"}]}'

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: NAME, url: "URL", protocol: openai, checkpoint: ck}
routes: [{model: "*", upstream: NAME}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: null}
"""


class KeepsConnections:
    """An OpenAI-compatible origin that never closes an idle connection; counts those open."""

    def __init__(self) -> None:
        self.open = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                body = MODELS if b" /v1/models " in head.split(b"\r\n", 1)[0] else REPLY
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


def test_an_upstream_a_reload_removes_closes_its_idle_connections(make_proxy, loop_thread: LoopThread,
                                                                   tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    origin = KeepsConnections()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(origin.handle, "127.0.0.1", 0)

    server = loop_thread.run(start())
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    path = tmp_path / "proxy.yaml"

    def config(name: str) -> str:
        return CONFIG.replace("NAME", name).replace("URL", url)

    proxy = make_proxy(config("u0"))

    async def reload() -> bool:
        return bool(proxy.process.reload(str(path)))

    async def quiet() -> int:  # the proxy's side closes first; the origin sees it a turn or two later
        for _ in range(200):
            if origin.open <= 2:
                break
            await asyncio.sleep(0.01)
        return origin.open

    try:
        with httpx.Client(base_url=proxy.url, timeout=10) as client:
            for n in range(1, 21):  # twenty deploys, each renaming the upstream (a model rollout: vllm-v2, -v3, ...)
                body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                assert client.post("/v1/chat/completions", json=body).status_code == 200
                path.write_text(config(f"u{n}"))
                assert loop_thread.run(reload())
            assert client.post("/v1/chat/completions", json=body).status_code == 200
        # the pool in use keeps its idle connections (a call's, a metadata GET's); those of the names reloads removed are closed
        assert loop_thread.run(quiet()) <= 2
    finally:
        server.close()


def test_a_call_decided_before_a_reload_removed_its_upstream_keeps_no_pool() -> None:
    from proxy.config import Upstream
    from proxy.transport.pool import UpstreamPool

    pools = UpstreamPool()
    old, new = Upstream(name="a", url="http://127.0.0.1:9"), Upstream(name="b", url="http://127.0.0.1:9")
    pools.use([old])
    first = pools.pool(old)
    pools.use([new])  # the reload
    assert first.retired and pools.pool(old) is first  # its calls in flight finish on it
    pools.pool(new)
    late = pools.pool(dataclasses.replace(old))  # another call decided before the reload, forwarded after it
    assert late.retired and pools._pools.keys() == {"b"}
