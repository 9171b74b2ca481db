"""Random pipelines over TLS behind a held call (`test_paused_tls_client_leaving`): reading pauses behind
PIPELINE_DEPTH requests queued, and a paused TLS connection reads on, holding what comes unparsed (`_Held`), read when
the queue drains. Whatever the requests (GET, Content-Length and chunked bodies, a head's fields long), however the
bytes fall into TLS records (split at random bytes), and whenever the held call ends (before its connection pauses, while
it holds, or past HELD_BYTES): every request is answered once, in the order sent, its body whole, none recorded
unserved, and the connection holds no body after (review revwire12). Real certificates, on both event loops."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config import Limits, Tls
from proxy.ingress.wire import HELD_BYTES, HttpConnection, HttpServer, Request
from proxy.tls import ListenerTls
from tests.certs import Authority, Pair
from tests.ingress.test_paused_tls_client_leaving import LOOPS

KINDS = ("get", "post", "chunked", "long-field")


def request_bytes(kind: str, n: int) -> bytes:
    head = b"Host: x\r\nX-Id: %d\r\n" % n
    if kind == "get":
        return b"GET /r HTTP/1.1\r\n" + head + b"\r\n"
    if kind == "post":
        body = b"%d" % n * 7
        return b"POST /r HTTP/1.1\r\n" + head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    if kind == "chunked":
        return b"POST /r HTTP/1.1\r\n" + head + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    assert kind == "long-field"
    return b"GET /r HTTP/1.1\r\n" + head + b"X-Long: " + b"l" * 3000 + b"\r\n\r\n"


def answer(kind: str, n: int) -> bytes:
    return b"%d:%s" % (n, {"post": b"%d" % n * 7, "chunked": b"abcde"}.get(kind, b""))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Pair]:
    ca = Authority(tmp_path_factory.mktemp("pki"))
    return ca, ca.issue("server", common_name="lineage-proxy", server=True)


async def run_case(pki: tuple[Authority, Pair], kinds: Sequence[str], cuts: Sequence[int], bulk: int,
                   release_after: int) -> None:  # fmt: skip
    """The held call (X-Id 0), then `kinds`, then `bulk` more GETs (past HELD_BYTES when large), sent in pieces split
    at `cuts` (each piece a TLS record, or more); the held call released after `release_after` pieces."""
    ca, pair = pki
    release = asyncio.Event()
    unserved: list[object] = []
    conns: list[HttpConnection] = []

    async def handler(request: Request, conn: HttpConnection) -> None:
        n = int(request.header("x-id") or -1)
        conns.append(conn)
        if n == 0:
            await release.wait()
        body = await conn.body(request)
        conn.reply(request, 200, b"text/plain", b"%d:%s" % (n, body))

    def record_unserved(request: Request, conn: HttpConnection, whole: bool) -> None:
        unserved.append(request.header("x-id"))

    server = HttpServer(handler, Limits(idle_timeout_s=20.0, header_timeout_s=20.0), None, record_unserved)
    listening = socket.create_server(("127.0.0.1", 0))
    listening.setblocking(False)
    await server.start(listening, ListenerTls(Tls(str(pair.cert), str(pair.key), None, False)).context)
    context = ssl.create_default_context(cafile=str(ca.pair.cert))
    reader, writer = await asyncio.open_connection(*listening.getsockname(), ssl=context, server_hostname="127.0.0.1")
    every = [*kinds, *["get"] * bulk]
    wire = request_bytes("get", 0) + b"".join(request_bytes(kind, n + 1) for n, kind in enumerate(every))
    points = sorted({c % (len(wire) + 1) for c in cuts})
    pieces = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True) if b > a]
    for at, piece in enumerate(pieces):
        if at == release_after:
            release.set()
        writer.write(piece)
        await writer.drain()
        for _ in range(3):
            await asyncio.sleep(0)
    release.set()
    got = []
    async with asyncio.timeout(60):
        for _ in range(len(every) + 1):
            status = await reader.readline()
            assert status == b"HTTP/1.1 200 OK\r\n", (status, got[-3:])
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            got.append(await reader.readexactly(length))
    assert got == [answer("get", 0), *(answer(kind, n + 1) for n, kind in enumerate(every))]
    assert unserved == []
    writer.close()
    await server.shutdown(1.0)
    listening.close()
    assert server.held == 0
    assert all(conn._held is None for conn in conns)


def _run(loop_name: str, main: Callable[[], object]) -> None:
    loop = LOOPS[loop_name]()
    try:
        loop.run_until_complete(main())  # type: ignore[arg-type]
    finally:
        loop.close()


@pytest.mark.parametrize("loop_name", LOOPS)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.sampled_from(KINDS), min_size=8, max_size=30),
    st.lists(st.integers(min_value=0), max_size=8),
    st.sampled_from([0, 0, HELD_BYTES // 40, 3 * HELD_BYTES // 40]),
    st.integers(min_value=0, max_value=10),
)
def test_what_a_paused_tls_connection_holds_is_served_whole_once_in_order(
    pki: tuple[Authority, Pair], loop_name: str, kinds: list[str], cuts: list[int], bulk: int, release_after: int
) -> None:
    _run(loop_name, lambda: run_case(pki, kinds, cuts, bulk, release_after))
