"""A request head the drain cuts while it is still arriving (`HttpConnection._head_cut`) is recorded with its method and
path exactly when its request line came whole, however its bytes were split across reads: a head beginning after a
request pipelined in the same read, after a body whose bytes look like a request line, an absolute-form target, a
target holding `HTTP/1.1`, more than one space between the line's parts (llhttp takes them). The head cut at every
byte, the bytes read whole, in two reads split at every byte, or in three around a short middle one."""

from __future__ import annotations

import asyncio

import pytest

from proxy.config.model import Limits
from proxy.ingress.wire import HttpConnection, HttpServer, Request
from tests.harness import FakeTransport

PIPELINED = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
LOOKALIKE = b"POST /v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 31\r\n\r\nPOST /v1/embeddings HTTP/1.1\r\n\r"


async def _never(request: object, conn: object) -> None:
    await asyncio.Event().wait()


def _splits(data: bytes) -> list[list[bytes]]:
    """In one read, in two at every byte, and in three with a middle read of one to three bytes."""
    n = len(data)
    return [
        [p for p in (data[:a], data[a:b], data[b:]) if p] for a in range(n + 1) for b in range(a, min(a + 4, n + 1))
    ]


@pytest.mark.parametrize(("before", "head", "method", "target"), [
    (b"", b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nCo", "POST", "/v1/embeddings"),
    (PIPELINED, b"POST /v1/embeddings HTTP/1.1\r\nHo", "POST", "/v1/embeddings"),
    (LOOKALIKE, b"POST /v1/embeddings HTTP/1.1\r\nHo", "POST", "/v1/embeddings"),
    (b"\r\n", b"GET /v1/models HTTP/1.1\r\nHo", "GET", "/v1/models"),
    (b"", b"POST http://h:1/v1/embeddings HTTP/1.1\r\nHo", "POST", "http://h:1/v1/embeddings"),
    (b"", b"GET /a?v=HTTP/1.1 HTTP/1.1\r\nHo", "GET", "/a?v=HTTP/1.1"),
    (b"", b"GET  /v1/models HTTP/1.1\r\nHo", "GET", "/v1/models"),  # before 2026-12-05 taken as not whole
    (PIPELINED, b"GET   /v1/models  HTTP/1.1\r\nHo", "GET", "/v1/models"),
])  # fmt: skip
def test_a_cut_head_has_its_method_and_path_when_its_line_came_whole(
    before: bytes, head: bytes, method: str, target: str
) -> None:
    line_end = head.index(b"\n") + 1
    wrong: list[tuple[list[bytes], tuple[str, str]]] = []

    async def main() -> None:
        for cut in range(1, len(head) + 1):
            expected = (method, target) if cut >= line_end else ("", "")
            for pieces in _splits(before + head[:cut]):
                cuts: list[Request] = []

                def record(request: Request, conn: HttpConnection, whole: bool) -> None:
                    assert not whole
                    cuts.append(request)  # noqa: B023 (called before the next pieces are fed)

                server = HttpServer(_never, Limits(), None, record)
                conn = server()
                conn.connection_made(FakeTransport())  # type: ignore[arg-type]
                for piece in pieces:
                    conn.data_received(piece)
                assert not conn._broken, pieces
                conn.draining = True
                conn._head_cut()
                assert len(cuts) == 1, pieces
                if (cuts[0].method, cuts[0].target) != expected:
                    wrong.append((pieces, (cuts[0].method, cuts[0].target)))
                if conn._task is not None:
                    conn._task.cancel()

    asyncio.run(main())
    assert not wrong, wrong[:5]
