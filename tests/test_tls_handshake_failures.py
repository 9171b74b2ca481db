"""A TLS handshake that fails on the HTTP listener is counted and said: the event loop (asyncio and uvloop alike)
dropped it without a word, so an operator whose clients refused the certificate (a wrong CA), or whose client
certificates `client_ca` refused, saw nothing in the log nor in /metrics. Now a warning names the client's
address and OpenSSL's reason, at most one every `wire.HANDSHAKE_LOG_S` (saying how many failed in between), and
`lineage_proxy_tls_handshake_failures_total{reason}` counts each. Real certificates, real TLS clients, on both
event loops; a handshake that succeeds is served as before."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop

from proxy.config import Limits, Tls
from proxy.ingress import wire
from proxy.ingress.wire import HttpConnection, HttpServer, Request
from proxy.tls import ListenerTls
from tests.certs import Authority

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("pki")
    ca, stranger = Authority(directory), Authority(directory, "stranger CA")
    return {
        "ca": ca,
        "stranger": stranger,
        "server": ca.issue("server", common_name="lineage-proxy", server=True),
        "client": ca.issue("client", common_name="batch-job"),
        "outsider": stranger.issue("outsider", common_name="outsider"),
    }


def client_context(pki, trusted: str, who: str | None = None) -> ssl.SSLContext:  # type: ignore[no-untyped-def]
    context = ssl.create_default_context(cafile=str(pki[trusted].pair.cert))
    if who is not None:
        context.load_cert_chain(str(pki[who].cert), str(pki[who].key))
    return context


async def handshake(port: int, context: ssl.SSLContext) -> tuple[int, bytes]:
    """A TLS client's connection (Python's ssl sockets, which end a handshake they refuse with an alert, as curl,
    Go's and Java's clients do): its own port, and the reply to one request (b"" when the handshake failed)."""
    return await asyncio.to_thread(_client, port, context)


def _client(port: int, context: ssl.SSLContext) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        own = raw.getsockname()[1]
        try:
            conn = context.wrap_socket(raw, server_hostname="127.0.0.1")
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = b""
            while piece := conn.recv(65536):
                reply += piece
        except (ssl.SSLError, ConnectionError):
            return own, b""
        return own, reply


@pytest.mark.parametrize("loop_name", LOOPS)
def test_failed_handshakes_are_counted_and_said_rate_limited(
    pki: dict[str, Any], loop_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    tls = Tls(str(pki["server"].cert), str(pki["server"].key), str(pki["ca"].pair.cert), False)
    clock = [1000.0]
    reasons: list[str] = []

    async def handler(request: Request, conn: HttpConnection) -> None:
        conn.reply(request, 200, b"text/plain", b"served")

    async def main() -> list[tuple[int, bytes]]:
        server = HttpServer(handler, Limits())
        failed = asyncio.Queue[str]()
        server.on_handshake_failure = failed.put_nowait
        sock = socket.create_server(("127.0.0.1", 0))
        sock.setblocking(False)
        await server.start(sock, ListenerTls(tls).context)
        server.now = lambda: clock[0]  # the warnings' rate limit reads this clock (the sweep too: nothing idles out)
        port = sock.getsockname()[1]
        seen = []
        try:
            # a client that does not trust the listener's CA; the same again at once (counted, not said); a client
            # certificate from a CA client_ca does not hold, once the rate limit's interval has passed
            for context, later in (
                (client_context(pki, "stranger"), 0.0),
                (client_context(pki, "stranger"), 1.0),
                (client_context(pki, "ca", "outsider"), None),  # None: the interval
            ):
                clock[0] += later if later is not None else wire.HANDSHAKE_LOG_S
                seen.append(await handshake(port, context))
                reasons.append(await asyncio.wait_for(failed.get(), 10))
            seen.append(await handshake(port, client_context(pki, "ca", "client")))  # a good one is served
            await asyncio.gather(*(conn.closed for conn in server.connections))  # its connection is gone
        finally:
            await server.shutdown(1)
        assert server.handshake_failures == 3
        return seen

    loop = LOOPS[loop_name]()
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.http"):
        try:
            seen = loop.run_until_complete(main())
        finally:
            loop.close()
    assert [reply for _, reply in seen[:3]] == [b"", b"", b""]
    assert seen[3][1].startswith(b"HTTP/1.1 200 ") and seen[3][1].endswith(b"served")
    assert reasons == ["tlsv1_alert_unknown_ca", "tlsv1_alert_unknown_ca", "certificate_verify_failed"]
    lines = [r.getMessage() for r in caplog.records if r.name == "lineage_proxy.http"]
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"TLS handshake from 127.0.0.1:{seen[0][0]} failed: [SSL: TLSV1_ALERT_UNKNOWN_CA]")
    assert "the client does not trust the CA that issued listen.tls.cert" in lines[0]
    assert lines[1].startswith(f"TLS handshake from 127.0.0.1:{seen[2][0]} failed: [SSL: CERTIFICATE_VERIFY_FAILED]")
    assert lines[1].endswith("(1 more failed since the last such warning)")


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_handshake_never_completed_is_counted_a_health_check_is_not(pki: dict[str, Any], loop_name: str) -> None:
    """A client that connects and says nothing is cut at `limits.header_timeout_s` and counted (`timeout`); one
    that connects and closes at once (a TCP health check, a port scan) is not a failed handshake."""
    tls = Tls(str(pki["server"].cert), str(pki["server"].key), None, False)

    async def handler(request: Request, conn: HttpConnection) -> None:
        raise AssertionError("no request comes")

    async def main() -> tuple[str, int]:
        server = HttpServer(handler, Limits(header_timeout_s=0.2))
        failed = asyncio.Queue[str]()
        server.on_handshake_failure = failed.put_nowait
        sock = socket.create_server(("127.0.0.1", 0))
        sock.setblocking(False)
        await server.start(sock, ListenerTls(tls).context)
        port = sock.getsockname()[1]
        try:
            socket.create_connection(("127.0.0.1", port)).close()  # the health check, first
            with socket.create_connection(("127.0.0.1", port)):  # then one silent until it is cut
                reason = await asyncio.wait_for(failed.get(), 10)
        finally:
            await server.shutdown(1)
        return reason, server.handshake_failures

    loop = LOOPS[loop_name]()
    try:
        assert loop.run_until_complete(main()) == ("timeout", 1)
    finally:
        loop.close()


CONFIG = """
listen:
  http: 127.0.0.1:0
  tls:
    cert: ${CERT}
    key: ${KEY}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
lineage:
  store: ${STORE}
"""


def test_failed_handshakes_in_metrics(vllm, make_proxy, pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, CERT=str(pki["server"].cert), KEY=str(pki["server"].key))
    port = proxy.bound.http.port
    with (
        pytest.raises(ssl.SSLCertVerificationError),  # a client with the wrong CA
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
    ):
        client_context(pki, "stranger").wrap_socket(raw, server_hostname="127.0.0.1")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:  # plain HTTP to the TLS listener
        raw.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = _whole_reply(raw).split(b"\r\n\r\n", 1)  # answered (400, saying https://), then closed
        assert head.startswith(b"HTTP/1.1 400 "), head
        assert json.loads(body)["error"]["code"] == "invalid_request"
    context = client_context(pki, "ca")
    text = ""
    for _ in range(100):  # the server counts the failure on its loop: the first scrape may precede it (no sleep)
        text = httpx.get(f"https://{proxy.bound.http}/metrics", verify=context, timeout=10).text
        if "http_request" in text and "unknown_ca" in text:
            break
    failures = sorted(line for line in text.splitlines() if line.startswith("lineage_proxy_tls_handshake_failures"))
    assert failures == [
        'lineage_proxy_tls_handshake_failures_total{reason="http_request"} 1',
        'lineage_proxy_tls_handshake_failures_total{reason="tlsv1_alert_unknown_ca"} 1',
    ]


def _whole_reply(raw: socket.socket) -> bytes:
    reply = b""
    while piece := raw.recv(65536):
        reply += piece
    return reply


def _plain(port: int, request: bytes) -> bytes:
    """A plain HTTP client (curl with http://) to the TLS listener: what it gets back, until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(request)
        return _whole_reply(raw)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_plain_http_to_the_tls_listener_is_answered_400(pki: dict[str, Any], loop_name: str) -> None:
    """http:// to the TLS listener got an empty reply (curl: 52, "Empty reply from server"): the TLS stack closed
    it unanswered. Now a plain HTTP/1.1 400 (`invalid_request`, in the error shape of the path's API) says to use
    https://, and the connection closes; it is still counted as a failed handshake (`http_request`). TLS clients
    are served as before, on the same listener."""
    tls = Tls(str(pki["server"].cert), str(pki["server"].key), None, False)

    async def handler(request: Request, conn: HttpConnection) -> None:
        conn.reply(request, 200, b"text/plain", b"served")

    async def main() -> tuple[list[bytes], list[str], bytes]:
        server = HttpServer(handler, Limits())
        failed = asyncio.Queue[str]()
        server.on_handshake_failure = failed.put_nowait
        sock = socket.create_server(("127.0.0.1", 0))
        sock.setblocking(False)
        await server.start(sock, ListenerTls(tls).context)
        port = sock.getsockname()[1]
        replies, reasons = [], []
        try:
            for request in (
                b"GET /v1/models HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
                b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
            ):
                replies.append(await asyncio.to_thread(_plain, port, request))
                reasons.append(await asyncio.wait_for(failed.get(), 10))
            _, served = await handshake(port, client_context(pki, "ca"))
            await asyncio.gather(*(conn.closed for conn in server.connections))
        finally:
            await server.shutdown(1)
        return replies, reasons, served

    loop = LOOPS[loop_name]()
    try:
        replies, reasons, served = loop.run_until_complete(main())
    finally:
        loop.close()
    assert reasons == ["http_request", "http_request"]
    bodies = []
    for reply in replies:
        head, body = reply.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 400 Bad Request", reply
        assert b"Connection: close" in lines and b"Content-Type: application/json" in lines, reply
        assert f"Content-Length: {len(body)}".encode() in lines, reply
        bodies.append(json.loads(body))
    openai, oip = bodies
    assert openai["error"]["code"] == "invalid_request" and "use https://" in openai["error"]["message"]
    assert oip["code"] == "invalid_request" and "use https://" in oip["error"]  # OIP v2 REST's shape on /v2/...
    assert served.startswith(b"HTTP/1.1 200 ") and served.endswith(b"served")
