"""An upstream that answers with a 5xx status and then breaks off its body (a reset, silence past `timeout_s`), or whose
client leaves before the body's end, had its call recorded as two different things: the span and the access line said
the status (`error.type` `500`), as a call keeps the first type it was given, while `lineage_proxy_errors_total` counted
what ended the call (`upstream_reset`, `upstream_timeout`, `client_disconnected`) and not the status. The three now say
one type, the status, counted once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import LoopThread
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_refusals_recorded import AccessLines, access_lines, errors

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: engine, url: "${UPSTREAM}", timeout_s: 1}
routes:
  - {model: "*", upstream: engine}
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: otlp, endpoint: "${OTLP}"}
logging: {access: true}
lineage: {store: "${STORE}"}
"""
ERROR = b'{"error":{"message":"engine crashed","type":"server_error"}}'
TYPES = ("500", "503", "upstream_reset", "upstream_timeout", "client_disconnected")


class Failing:
    """An upstream whose data replies are a 5xx head and the first piece of its chunked body; then, as `then` says,
    the connection reset (`reset`) or nothing more until the test ends (`hold`)."""

    def __init__(self, status: bytes, then: str) -> None:
        self.status, self.then = status, then
        self.release = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
                length = next((int(v) for k, v in fields.items() if k.strip().lower() == b"content-length"), 0)
                await reader.readexactly(length)
                if head.startswith(b"GET"):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                    continue
                writer.write(b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"%x\r\n%s\r\n" % (self.status, 10, ERROR[:10]))  # fmt: skip
                await writer.drain()
                if self.then == "reset":
                    writer.transport.abort()
                    return
                await self.release.wait()
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
def access() -> Iterator[AccessLines]:
    yield from access_lines()


@pytest.mark.parametrize(
    ("status", "then", "client_leaves", "cause"),
    [
        (b"500 Internal Server Error", "reset", False, "upstream_reset"),
        (b"503 Service Unavailable", "hold", False, "upstream_timeout"),  # silence past timeout_s (1 s)
        (b"500 Internal Server Error", "hold", True, "client_disconnected"),
    ],
)
def test_a_5xx_reply_cut_short_is_counted_as_its_span_and_access_line_say(
    loop_thread: LoopThread,
    make_proxy: Any,
    otlp: OtlpReceiver,
    access: AccessLines,
    tmp_path: Path,
    status: bytes,
    then: str,
    client_leaves: bool,
    cause: str,
) -> None:
    upstream = Failing(status, then)

    async def start() -> asyncio.Server:
        return await asyncio.start_server(upstream.serve, "127.0.0.1", 0)

    server = loop_thread.run(start())
    port = server.sockets[0].getsockname()[1]
    proxy = make_proxy(CONFIG, UPSTREAM=f"http://127.0.0.1:{port}", OTLP=f"http://127.0.0.1:{otlp.port}")
    before = {kind: errors(proxy, kind) for kind in TYPES}
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
    try:
        with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body, timeout=10) as response:
            trace_id = response.headers["x-trace-id"]
            assert response.status_code == int(status[:3])
            pieces = response.iter_raw()
            assert next(pieces) == ERROR[:10]  # the status and the body's first piece, as the upstream sent them
            if not client_leaves:
                with pytest.raises(httpx.RemoteProtocolError):
                    b"".join(pieces)  # then the cut, or the proxy's own after timeout_s
        line = access.of(trace_id)  # written once the call is recorded: a client's leaving too
    finally:
        loop_thread.loop.call_soon_threadsafe(upstream.release.set)
        server.close()
    loop_thread.run(proxy.process.runtime.sinks.flush())
    span = otlp.by_trace(trace_id)
    kind = status[:3].decode()
    assert span.attributes["error.type"] == kind and span.attributes["http.response.status_code"] == int(kind)
    assert line.code == kind  # type: ignore[attr-defined]
    counted = {k: errors(proxy, k) - before[k] for k in TYPES}
    assert counted == {**dict.fromkeys(TYPES, 0), kind: 1}, f"the call was ended by {cause}"
