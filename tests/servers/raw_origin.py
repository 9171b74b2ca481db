"""A raw HTTP/1.1 origin on asyncio streams, for replies no server library writes (a transfer coding beside chunked,
interim replies without end, a body compressed though the proxy asked for none): the proxy's discovery (a GET) is
answered with a vLLM listing of model `m`; every other request's head goes to an `answer`, which reads what it wants
of the request, writes the reply and says whether the connection stays open for the next request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import orjson

from tests.harness import LoopThread, ProxyHandle

LISTING = orjson.dumps({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]})

Answer = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


def raw_origin(
    answer: Answer, *, discovery: bool = True
) -> Callable[[], Coroutine[Any, Any, tuple[asyncio.Server, int]]]:
    """What starts the origin (as `harness.proxy_before` takes it): its server and port. Without `discovery`, a GET's
    head goes to `answer` as every other request's does."""

    async def start() -> tuple[asyncio.Server, int]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while head := await reader.readuntil(b"\r\n\r\n"):
                    if discovery and head.startswith(b"GET"):  # the proxy's discovery
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                     % (len(LISTING), LISTING))  # fmt: skip
                        await writer.drain()
                    elif not await answer(head, reader, writer):
                        break
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    return start


async def request_body(head: bytes, reader: asyncio.StreamReader) -> bytes:
    """The body of the request whose `head` was read (its Content-Length's worth)."""
    length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
    return await reader.readexactly(length)


@contextlib.contextmanager
def proxy_in_front(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], config: str, answer: Answer
) -> Iterator[ProxyHandle]:
    """A proxy (`config`, its `${UPSTREAM}` the origin) in front of a raw origin answering with `answer`, for the
    block."""
    server, port = loop_thread.run(raw_origin(answer)())
    try:
        yield make_proxy(config, UPSTREAM=f"http://127.0.0.1:{port}")
    finally:

        async def close() -> None:
            server.close()

        loop_thread.run(close())
