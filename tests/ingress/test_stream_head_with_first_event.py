"""A streamed reply whose upstream sends its head and first event together reaches the client the same
way: the head and the first event in one TCP segment, not the head alone with the event after it (a
client then waits one more round of reads for its first token). Counted by the client's own socket
(`TCP_INFO`'s data segments in), while the upstream holds the rest of the stream back."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable

import orjson

from tests.configs import ONE_UPSTREAM_STORED
from tests.harness import LoopThread, ProxyHandle

MODELS = orjson.dumps({"object": "list", "data": [{"id": "m", "object": "model", "root": "org/m-8b"}]})
EVENT = b'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
_TCPI_DATA_SEGS_IN = 152  # offset of tcpi_data_segs_in in struct tcp_info (Linux >= 4.6)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _data_segments_in(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, _TCPI_DATA_SEGS_IN)[0])


def test_head_and_first_event_reach_the_client_in_one_segment(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    release = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await answer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the proxy closed its pooled connection
        writer.close()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                           if line.startswith(b"content-length:")), 0)  # fmt: skip
            await reader.readexactly(length)
            if head.startswith(b"GET /v1/models"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(MODELS), MODELS))  # fmt: skip
                continue
            if not head.startswith(b"POST /v1/chat/completions "):
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")  # other engines' probes
                continue
            writer.write(HEAD + _chunk(EVENT))  # the head and the first event in one send
            await release.wait()
            writer.write(_chunk(EVENT) + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")

    async def start() -> asyncio.Server:
        return await asyncio.start_server(serve, "127.0.0.1", 0)

    server = loop_thread.run(start())
    try:
        port = server.sockets[0].getsockname()[1]
        proxy = make_proxy(ONE_UPSTREAM_STORED, wait="probed", UPSTREAM=f"http://127.0.0.1:{port}")
        body = orjson.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
        host, proxy_port = proxy.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(proxy_port)), timeout=10) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
            got = b""
            while b"data: {" not in got:
                data = sock.recv(65536)
                assert data, got
                got += data
            head = got.split(b"\r\n\r\n", 1)[0].lower()
            assert head.startswith(b"http/1.1 200") and b"x-lineage-checkpoint: org/m-8b" in head, head
            assert _data_segments_in(sock) == 1, got  # the head did not go out alone
            loop_thread.loop.call_soon_threadsafe(release.set)
            while not got.endswith(b"0\r\n\r\n"):
                data = sock.recv(65536)
                assert data, got
                got += data
            assert got.count(b"data: {") == 2 and b"data: [DONE]" in got
    finally:
        server.close()
