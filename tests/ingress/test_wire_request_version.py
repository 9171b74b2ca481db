"""A request's HTTP version, as the connection reads it: from the request line that starts a read when it is
whole there (llhttp's `get_http_version` formats a new string each call), from llhttp otherwise. The same
versions whatever the reads' boundaries and however requests are pipelined."""

from __future__ import annotations

import asyncio

import pytest

from proxy.config.model import Limits
from proxy.ingress.wire import HttpConnection, HttpServer, Request
from tests.harness import FakeTransport


def request(version: str, path: str, body: bytes = b"") -> bytes:
    length = b"Content-Length: %d\r\n" % len(body) if body else b""
    return (b"POST %s HTTP/%s\r\nHost: x\r\nConnection: keep-alive\r\n%s\r\n%s"
            % (path.encode(), version.encode(), length, body))  # fmt: skip


def served(reads: list[bytes], count: int) -> list[tuple[str, str, bool]]:
    """(target, version, keep-alive) of the `count` requests the handler gets, the bytes fed in `reads`."""
    seen: list[tuple[str, str, bool]] = []

    async def main() -> None:
        answered = asyncio.Event()

        async def handler(req: Request, conn: HttpConnection) -> None:
            seen.append((req.target, req.version, req.keep_alive))
            await conn.body(req)
            conn.reply(req, 200, b"text/plain", b"ok")
            if len(seen) == count:
                answered.set()

        server = HttpServer(handler, Limits())
        conn = server()
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        for data in reads:
            conn.data_received(data)
        await asyncio.wait_for(answered.wait(), 10)
        conn.connection_lost(None)

    asyncio.run(main())
    return seen


PIPELINED = request("1.1", "/a", b"{}") + request("1.0", "/b") + request("1.1", "/c") + request("1.0", "/d", b"x")
EXPECTED = [("/a", "1.1", True), ("/b", "1.0", True), ("/c", "1.1", True), ("/d", "1.0", True)]


def test_pipelined_requests_of_either_version_in_one_read() -> None:
    assert served([PIPELINED], 4) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(PIPELINED)))
def test_the_versions_are_the_same_wherever_the_reads_split(cut: int) -> None:
    assert served([PIPELINED[:cut], PIPELINED[cut:]], 4) == EXPECTED


def test_byte_by_byte_and_after_an_empty_line() -> None:
    data = b"\r\n" + request("1.0", "/e") + request("1.1", "/f")
    assert served([data[i : i + 1] for i in range(len(data))], 2) == [("/e", "1.0", True), ("/f", "1.1", True)]
    assert served([data], 2) == [("/e", "1.0", True), ("/f", "1.1", True)]


@pytest.mark.parametrize("line", [b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", b"GET / HTTP/1.2\r\nHost: x\r\n\r\n"])
def test_a_version_other_than_1_0_and_1_1_is_still_refused(line: bytes) -> None:
    async def handler(req: Request, conn: HttpConnection) -> None:
        raise AssertionError("refused before any handler")

    async def main() -> bytes:
        server = HttpServer(handler, Limits())
        conn = server()
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        conn.data_received(line)
        assert conn._task is not None
        await conn._task  # the refusal is answered, then the connection closes
        conn.connection_lost(None)
        return b"".join(transport.written)

    written = asyncio.run(main())
    assert written.startswith(b"HTTP/1.1 400 "), written[:100]
