"""Test plumbing: a background event loop, servers on port 0, the proxy started in-process.

Tests stay synchronous and drive the proxy with real clients (openai SDK, tritonclient) from the
test thread; servers run on one background loop. Readiness is awaited, never slept for.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from proxy.config import Config, parse
from proxy.server import Bound, ProxyProcess

T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


async def start_app(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


def dead_port() -> int:
    """A loopback port with nothing listening (bound then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ProxyHandle:
    process: ProxyProcess
    bound: Bound
    config: Config

    @property
    def url(self) -> str:
        return f"http://{self.bound.http}"

    @property
    def grpc(self) -> str:
        assert self.bound.grpc is not None
        return str(self.bound.grpc)


async def start_proxy(config_text: str, *, wait: str = "reachable", env: dict[str, str] | None = None) -> ProxyHandle:
    config = parse(config_text, source="test.yaml", env={**os.environ, **(env or {})})
    process = ProxyProcess(config)
    bound = await process.start()
    if wait == "reachable":
        await asyncio.wait_for(process.book.wait_reachable(), 10)
    elif wait == "probed":
        await asyncio.wait_for(process.book.wait_probed(), 10)
    return ProxyHandle(process, bound, config)
