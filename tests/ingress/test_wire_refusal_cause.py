"""A refused head is answered with what refused it, whatever exception the process is handling meanwhile.

llhttp's error used to be read back through its `__context__`, which Python sets to the exception being
handled when it is raised: in the compiled build a coroutine suspended inside an `except` block holds one
(an upstream's refusal), and a 414 went out as that call's 502."""

from __future__ import annotations

import asyncio

import pytest

from proxy.config.model import Limits
from proxy.errors import UpstreamUnavailable
from proxy.ingress.wire import HttpServer
from tests.harness import FakeTransport


async def handler(request: object, conn: object) -> None:
    raise AssertionError("a refused head reaches no handler")


LONG_TARGET = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
LARGE_HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"x-big: " + b"b" * 5000 + b"\r\n\r\n"
BAD_METHOD = b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(("data", "answer"), [(LONG_TARGET, b"414 "), (LARGE_HEAD, b"431 "),
                                             (BAD_METHOD, b"400 ")])  # fmt: skip
def test_a_head_is_refused_for_itself_while_another_error_is_being_handled(data: bytes, answer: bytes) -> None:
    async def main() -> bytes:
        server = HttpServer(handler, Limits(max_header_bytes=4096))  # type: ignore[arg-type]
        conn = server()
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        try:
            raise UpstreamUnavailable("upstream 'vllm' is unavailable: another call's")
        except UpstreamUnavailable:
            conn.data_received(data)
        assert conn._task is not None
        await conn._task  # the connection's serving task answers the refusal, then closes
        conn.connection_lost(None)
        return b"".join(transport.written)

    written = asyncio.run(main())
    assert written.startswith(b"HTTP/1.1 " + answer), written[:200]
    assert b"unavailable" not in written
