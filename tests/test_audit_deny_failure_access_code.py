"""In `mode: audit` a call that would have been refused goes on (`audit-deny`), and its access line's `code` said the
refusal's code (`purpose_denied`) whatever happened to it after: one whose upstream then failed (a 5xx, a reply cut
off, silence past `timeout_s`) or whose client left had a line that said nothing of it, though its span's `error.type`
and `lineage_proxy_errors_total` did (README: those types show in the span, the access line's `code` and the metric
alike). The line now says how the call ended when it failed, and the refusal's code when it did not; its `rule` and
`reason` still say what would have refused it."""

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
from tests.test_upstream_error_status_cut import ERROR

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: engine, url: "${UPSTREAM}", timeout_s: 1}
routes:
  - {model: "*", upstream: engine}
policy: {mode: audit, anonymous: allow, default_purpose: assistant}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
detectors: [email]
telemetry: {exporter: otlp, endpoint: "${OTLP}"}
logging: {access: true}
lineage: {store: "${STORE}"}
"""
CHUNK = b'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
DONE = b'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'  # fmt: skip


class Upstream:
    """Answers each data call as `how` says: `ok` (a whole stream), `500` (a whole 5xx reply), `reset` (a stream's
    first event, then the connection reset), `silent` (a stream's first event, then nothing until the test ends)."""

    def __init__(self, how: str) -> None:
        self.how = how
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
                if self.how == "500":
                    writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(ERROR), ERROR))  # fmt: skip
                    continue
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))  # fmt: skip
                if self.how == "ok":
                    writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(DONE), DONE))
                    continue
                await writer.drain()
                if self.how == "reset":
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


@pytest.mark.parametrize(("how", "ended"), [("ok", None), ("500", "500"), ("reset", "upstream_reset"),
                                            ("silent", "upstream_timeout")])  # fmt: skip
def test_an_audit_deny_calls_access_line_says_how_it_failed(
    loop_thread: LoopThread,
    make_proxy: Any,
    otlp: OtlpReceiver,
    access: AccessLines,
    tmp_path: Path,
    how: str,
    ended: str | None,
) -> None:
    upstream = Upstream(how)

    async def start() -> asyncio.Server:
        return await asyncio.start_server(upstream.serve, "127.0.0.1", 0)

    server = loop_thread.run(start())
    port = server.sockets[0].getsockname()[1]
    proxy = make_proxy(CONFIG, UPSTREAM=f"http://127.0.0.1:{port}", OTLP=f"http://127.0.0.1:{otlp.port}")
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "write to alice@example.com"}]}
    try:
        with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body, timeout=10,
                          headers={"x-lineage-purpose": "ads"}) as response:  # fmt: skip
            trace_id = response.headers["x-trace-id"]
            assert response.headers["x-lineage-decision"] == "audit-deny"
            try:
                b"".join(response.iter_raw())
            except httpx.RemoteProtocolError:
                assert ended in ("upstream_reset", "upstream_timeout")
        line = access.of(trace_id)
    finally:
        loop_thread.loop.call_soon_threadsafe(upstream.release.set)
        server.close()
    loop_thread.run(proxy.process.runtime.sinks.flush())
    span = otlp.by_trace(trace_id).attributes
    assert span["lineage.decision"] == "audit-deny" and span.get("error.type") == ended
    if ended is not None:
        assert errors(proxy, ended) == 1
    assert (line.decision, line.rule) == ("audit-deny", "zone:personal")  # type: ignore[attr-defined]
    assert line.code == (ended or "purpose_denied")  # type: ignore[attr-defined]
