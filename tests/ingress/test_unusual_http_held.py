"""Unusual HTTP against a zone that forbids `pii:email` for the caller's purpose: uploads the proxy does not read
(multipart `prompt` fields, a batch's `.jsonl` of chat bodies, a batch that runs one later), inference paths under
other methods and in forms servers route apart (`/v1/chat/completions/`, `;x`, upper case, `\\`, an overlong `/`),
and a WebSocket upgrade (OpenAI Realtime's `GET /v1/realtime`). None of it reaches the model, and each call leaves
its record (counted in `/metrics`); a WebSocket's frames never reach the upstream, even one that answers 101.
(Hunted 2026-12-05: these held; the test keeps them so.)"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import orjson
import pytest
from aiohttp import web

from tests.harness import EMAIL_ZONE, proxy_error, serving
from tests.test_passthrough_bodiless_post import UP

CONFIG = (
    UP
    + """policy:
  anonymous: allow
  default_purpose: assistant
"""
    + EMAIL_ZONE
)
ADDRESS = b"alice@example.com"
CHAT = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "write to alice@example.com"}]})
DENIED = {"x-purpose": "marketing"}


@pytest.fixture
def upstream(loop_thread: Any) -> Iterator[tuple[str, list[bytes]]]:
    """Any method on any path answered 200; each request's head line, fields and body kept as it came."""
    reached: list[bytes] = []

    async def anything(request: web.Request) -> web.Response:
        body = await request.read()
        fields = b"".join(b"%s: %s\r\n" % (name, value) for name, value in request.raw_headers)
        reached.append(f"{request.method} {request.raw_path}\r\n".encode() + fields + b"\r\n" + body)
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    with serving(loop_thread, app) as url:
        yield url, reached


def _raw(proxy_url: str, data: bytes, then: bytes = b"") -> bytes:
    """`data` sent on a connection of its own, `then` after the reply's head; all the proxy writes until it closes."""
    where = urlsplit(proxy_url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        sock.sendall(data)
        out = b""
        while b"\r\n\r\n" not in out and (piece := sock.recv(65536)):
            out += piece
        if then:
            try:
                sock.sendall(then)
            except OSError:  # (closed already)
                pass
        while piece := sock.recv(65536):
            out += piece
    return out


def _calls_recorded(proxy_url: str) -> int:
    text = httpx.get(f"{proxy_url}/metrics", timeout=30).text
    found = re.search(r"^lineage_proxy_request_duration_seconds_count (\d+)", text, re.M)
    assert found is not None, text
    return int(found.group(1))


def _reached_data(reached: list[bytes]) -> list[bytes]:
    return [r for r in reached if ADDRESS in r]


def test_uploads_the_proxy_does_not_read_are_refused_with_their_record(upstream: Any, make_proxy: Any) -> None:
    url, reached = upstream
    proxy = make_proxy(CONFIG, wait="started", UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    batch = b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": ' + CHAT + b"}\n"
    calls: list[Any] = [
        lambda: client.audio.transcriptions.create(
            model="whisper", file=("a.wav", b"RIFF0000WAVE"), prompt="alice@example.com", extra_headers=DENIED
        ),
        lambda: client.images.edit(
            model="m", image=("a.png", b"\x89PNG\r\n"), prompt="alice@example.com", extra_headers=DENIED
        ),
        lambda: client.files.create(file=("batch.jsonl", batch), purpose="batch", extra_headers=DENIED),
        lambda: client.batches.create(
            input_file_id="file-1", endpoint="/v1/chat/completions", completion_window="24h", extra_headers=DENIED
        ),
    ]
    for call in calls:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            call()
        assert proxy_error(refused.value.response)["code"] == "endpoint_denied"
    assert not [r for r in reached if not r.startswith(b"GET ")], reached  # (GETs: the proxy's discovery)
    assert _calls_recorded(proxy.url) == len(calls)


# (request line, status): other methods on an inference path, and paths servers route apart from the one read
LINES = [
    (b"PUT /v1/chat/completions", 403),
    (b"PATCH /v1/chat/completions", 403),
    (b"DELETE /v1/chat/completions", 403),
    (b"GET /v1/chat/completions", 400),  # a body on a method that carries none
    (b"HEAD /v1/chat/completions", 400),
    (b"OPTIONS /v1/chat/completions", 400),
    (b"post /v1/chat/completions", 400),
    (b"POST /v1/chat/completions/", 403),
    (b"POST /v1/chat/completions;x", 403),
    (b"POST /V1/CHAT/COMPLETIONS", 403),
    (b"POST /v1\\chat\\completions", 403),
    (b"POST /v1/chat/completions%C0%AF", 403),
    (b"POST /v1//chat/completions", 400),
    (b"POST /v1/./chat/completions", 400),
    (b"POST http://up/v1/chat/completions", 400),
    (b"CONNECT up:80", 400),
    (b"PRI *", 400),
]


def test_other_methods_and_paths_do_not_reach_the_model(upstream: Any, make_proxy: Any) -> None:
    url, reached = upstream
    proxy = make_proxy(CONFIG, wait="started", UPSTREAM=url)
    for line, status in LINES:
        head = line + b" HTTP/1.1\r\nHost: x\r\nx-purpose: marketing\r\nContent-Type: application/json\r\n"
        reply = _raw(proxy.url, head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(CHAT) + CHAT)
        assert reply.startswith(b"HTTP/1.1 %d " % status), (line, reply[:200])
    assert not _reached_data(reached), reached
    assert _calls_recorded(proxy.url) == len(LINES)


UPGRADE = (
    b"GET /v1/realtime?model=m HTTP/1.1\r\nHost: x\r\nx-purpose: marketing\r\nConnection: Upgrade\r\n"
    b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)
FRAME = b"\x81\x91\x00\x00\x00\x00" + ADDRESS  # a text frame (mask 0) holding the address


def test_a_websocket_upgrade_is_served_as_plain_http_and_its_frames_dropped(upstream: Any, make_proxy: Any) -> None:
    """Forwarded without `Upgrade` (hop-by-hop), answered as the plain GET it then is, the connection closed after
    it: what the client sends after it never reaches the upstream."""
    url, reached = upstream
    proxy = make_proxy(CONFIG, wait="started", UPSTREAM=url)
    reply = _raw(proxy.url, UPGRADE + FRAME)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    realtime = [r for r in reached if r.startswith(b"GET /v1/realtime")]
    assert [r.split(b"\r\n", 1)[0] for r in realtime] == [b"GET /v1/realtime?model=m"]
    assert b"upgrade" not in realtime[0].lower()
    assert not _reached_data(reached)
    assert _calls_recorded(proxy.url) == 1


def test_an_upstream_that_switches_protocols_anyway_gets_no_frame(loop_thread: Any, make_proxy: Any) -> None:
    """An upstream answering 101 to a request that asked for no upgrade: the client gets 502, recorded, and the
    upstream none of the frames the client sends."""
    heads: list[bytes] = []
    after: list[bytes] = []

    async def switch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            await writer.drain()
            while piece := await reader.read(65536):
                after.append(piece)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(switch, "127.0.0.1", 0)

    server = loop_thread.run(start())
    try:
        port = server.sockets[0].getsockname()[1]
        proxy = make_proxy(CONFIG, wait="started", UPSTREAM=f"http://127.0.0.1:{port}")
        reply = _raw(proxy.url, UPGRADE, then=FRAME)
        assert reply.startswith(b"HTTP/1.1 502 "), reply[:200]
        assert [h for h in heads if h.startswith(b"GET /v1/realtime?model=m HTTP/1.1")]
        assert not [piece for piece in after if ADDRESS in piece]
        assert _calls_recorded(proxy.url) >= 1
    finally:
        server.close()
        loop_thread.run(server.wait_closed())
