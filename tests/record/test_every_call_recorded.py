"""Every call leaves its record, whatever path it took: a call that carries no data (a listing, a stored
reply read back), one refused before it was read, one whose upstream broke after its reply head, one the
SIGTERM drain cut off. Spans as a real OTLP receiver decodes them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import httpx
import pytest

from tests.harness import LoopThread
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: origin
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: origin
policy: {anonymous: allow, default_purpose: assistant}
telemetry:
  exporter: otlp
  endpoint: ${OTLP}
limits: {drain_timeout_s: 0.2}
lineage:
  store: ${STORE}
"""


class RawOrigin:
    """An upstream on a raw socket: `/v1/models` lists one model; `/short` sends a 200 head and half the
    body it announced, then closes; `/never` never answers; anything else is a 404."""

    def __init__(self) -> None:
        self.arrived: asyncio.Event | None = None
        self.port = 0

    async def start(self) -> asyncio.Server:
        self.arrived = asyncio.Event()
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                target = head.split(b" ", 2)[1]
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
                await reader.readexactly(length)
                if target == b"/never":
                    assert self.arrived is not None
                    self.arrived.set()
                    await reader.read()  # until the proxy goes
                    return
                if target == b"/short":
                    writer.write(
                        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a"'
                    )
                    await writer.drain()
                    writer.close()
                    return
                if target == b"/v1/models":
                    body = b'{"object": "list", "data": [{"id": "m", "object": "model"}]}'
                    status = b"200 OK"
                else:
                    body, status = b'{"error": "not here"}', b"404 Not Found"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
                await writer.drain()
        writer.close()


@pytest.fixture
def recorded(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy):  # type: ignore[no-untyped-def]
    origin = RawOrigin()
    server = loop_thread.run(origin.start())
    proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=f"http://127.0.0.1:{origin.port}",
                       OTLP=f"http://127.0.0.1:{otlp.port}")  # fmt: skip
    yield origin, proxy
    server.close()


@contextlib.contextmanager
def client(proxy) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=proxy.url, timeout=10) as http:
        yield http


def test_calls_that_carry_no_data_are_recorded_without_an_edge(recorded, otlp: OtlpReceiver) -> None:  # type: ignore[no-untyped-def]
    """A stored reply read back (`GET /v1/responses/{id}`) can hold a model's output: forwarded with the
    key checked only, it was recorded nowhere (no span, no access line, no metrics)."""
    _, proxy = recorded
    with client(proxy) as http:
        for method, path, status in [("GET", "/v1/responses/resp_1", 404), ("GET", "/v1/models", 200),
                                     ("HEAD", "/v1/models", 200), ("OPTIONS", "/v1/chat/completions", 404)]:  # fmt: skip
            reply = http.request(method, path)
            assert reply.status_code == status
            span = otlp.by_trace(reply.headers["x-trace-id"])
            assert span.attributes["http.response.status_code"] == status
            assert span.attributes["lineage.decision"] == "allow" and span.attributes["lineage.caller"] == "anonymous"
            if path != "/v1/models" or method == "HEAD":  # passthrough: the span says which request it was
                assert (span.attributes["http.request.method"], span.attributes["url.path"]) == (method, path)
    assert proxy.process.runtime.stats.in_flight == 0


def test_a_request_refused_before_it_is_read_is_recorded(recorded, otlp: OtlpReceiver) -> None:  # type: ignore[no-untyped-def]
    _, proxy = recorded
    with client(proxy) as http:
        for body, headers in [(b"{not json", {}), (b'{"model": "m", "messages": []}', {"x-data-labels": "BAD LABEL!"})]:
            reply = http.post("/v1/chat/completions", content=body, headers=headers)
            assert reply.status_code == 400
            span = otlp.by_trace(reply.headers["x-trace-id"])
            assert span.attributes["error.type"] == "invalid_request"
            assert span.attributes["lineage.decision"] == "deny"
            assert span.attributes["http.response.status_code"] == 400


def test_the_status_recorded_is_the_one_the_client_got(recorded, otlp: OtlpReceiver) -> None:  # type: ignore[no-untyped-def]
    """The upstream's head said 200, then its body broke off before a byte reached the client: the client
    gets a 502, and the record said 200."""
    _, proxy = recorded
    with client(proxy) as http:
        reply = http.post("/short", json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]},
                          headers={"x-purpose": "assistant"})  # fmt: skip
    assert reply.status_code == 502
    span = otlp.by_trace(reply.headers["x-trace-id"])
    assert span.attributes["http.response.status_code"] == 502
    assert span.attributes["error.type"] == "upstream_unavailable"


def test_a_call_the_drain_cuts_off_is_not_blamed_on_its_client(
    recorded, otlp: OtlpReceiver, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    origin, proxy = recorded
    _, writer = loop_thread.run(asyncio.open_connection(proxy.bound.http.host, proxy.bound.http.port))
    writer.write(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
    assert origin.arrived is not None
    loop_thread.run(asyncio.wait_for(origin.arrived.wait(), 10))
    loop_thread.run(proxy.process.stop())
    spans = otlp.wait_for(lambda spans: any(s.attributes.get("url.path") == "/never" for s in spans))
    span = next(s for s in spans if s.attributes.get("url.path") == "/never")
    assert span.attributes["error.type"] == "drain_timeout"
    assert any("1 HTTP call(s) still running" in r.getMessage() for r in caplog.records)
    writer.close()
