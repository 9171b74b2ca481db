"""The httptools ingress (proxy/ingress/wire.py, http.py) at the socket, from a review of it: pipelining
and back-pressure, head and body limits and timeouts, trailers, upgrades, HEAD and HTTP/1.0 framing, TLS
handshakes, lingering close and the SIGTERM drain.

Each test drives a proxy started in-process with raw sockets. The first part held a finding of the review
(each failed before its fix); the second, behaviour verified to work. No sleeps: socket timeouts only
bound a failure."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from proxy.ingress.wire import HeaderTooLarge
from tests.harness import LoopThread, ProxyHandle, serving, start_proxy
from tests.servers.vllm_like import SERVED

BIG = 4 * 1024 * 1024  # a reply body the proxy reads whole (under limits.buffer_max_bytes) and writes at once

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: origin
    url: ${UPSTREAM}
    protocol: ${PROTOCOL:-passthrough}
routes:
  - model: "*"
    upstream: origin
policy:
  anonymous: allow
  default_purpose: assistant
  passthrough: forward
limits:
  idle_timeout_s: ${IDLE:-30}
  header_timeout_s: ${HEADER:-30}
  drain_timeout_s: ${DRAIN:-5}
lineage:
  store: ${STORE}
"""


class Origin:
    """An upstream whose replies the tests choose by path; it notes what reached it."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.arrived: asyncio.Event | None = None
        self.cancelled: asyncio.Event | None = None
        self.gate: asyncio.Queue[None] | None = None

    def app(self) -> web.Application:
        self.arrived, self.cancelled, self.gate = asyncio.Event(), asyncio.Event(), asyncio.Queue()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def marked(self) -> list[tuple[str, str, dict[str, str], bytes]]:
        return [r for r in self.requests if "x-test" in {k.lower() for k in r[2]}]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.method, request.path_qs, dict(request.headers), body))
        assert self.arrived is not None and self.cancelled is not None and self.gate is not None
        self.arrived.set()
        path = request.path
        if path == "/big":
            return web.Response(body=b"<" + b"x" * (BIG - 2) + b">", content_type="application/octet-stream")
        if path == "/nocontent":
            return web.Response(status=204)
        if path == "/notmodified":
            return web.Response(status=304, headers={"ETag": '"v1"'})
        if path in ("/stream", "/gated"):
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            try:
                for piece in (b"one,", b"two,", b"three"):
                    if path == "/gated":
                        await self.gate.get()
                    await response.write(piece)
                await response.write_eof()
            except (asyncio.CancelledError, ConnectionResetError):
                self.cancelled.set()
                raise
            return response
        if path == "/never":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        return web.Response(body=b"ok:" + request.path_qs.encode() + b":" + body, content_type="text/plain")


@pytest.fixture
def origin(loop_thread: LoopThread) -> Iterator[tuple[Origin, str]]:
    server = Origin()
    with serving(loop_thread, server.app()) as url:
        yield server, url


@pytest.fixture
def proxy(origin, make_proxy) -> ProxyHandle:  # type: ignore[no-untyped-def]
    return make_proxy(CONFIG, UPSTREAM=origin[1])


# -- sockets


def connect(proxy: ProxyHandle, *, rcvbuf: int | None = None, timeout: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect, so the window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", proxy.bound.http.port))
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the proxy closes (a reset ends it too)."""
    out = b""
    try:
        while piece := sock.recv(1 << 20):
            out += piece
    except ConnectionResetError:
        pass
    return out


class Replies:
    """Reads replies off a socket one at a time, framed as RFC 9112 §6.3 says (so a body a HEAD reply
    should not have is taken as the start of the next reply, as a real client would)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        piece = self.sock.recv(1 << 20)
        self.buffer += piece
        return bool(piece)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            assert self._fill(), f"closed inside a line: {self.buffer[:200]!r}"
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            assert self._fill(), f"closed {n - len(self.buffer)} bytes short"
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def next(self, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        status_line = self._line()
        assert status_line.startswith(b"HTTP/1."), f"not a status line: {status_line[:200]!r}"
        status = int(status_line.split(b" ", 2)[1])
        fields: dict[str, str] = {}
        while line := self._line():
            name, _, value = line.decode("latin-1").partition(":")
            fields[name.strip().lower()] = value.strip()
        if status < 200:
            return status, fields, b""
        if method == "HEAD" or status in (204, 304):
            return status, fields, b""
        if fields.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int(self._line().split(b";")[0], 16):
                body += self._take(size)
                assert self._take(2) == b"\r\n"
            while self._line():  # trailer section
                pass
            return status, fields, body
        if "content-length" in fields:
            return status, fields, self._take(int(fields["content-length"]))
        while self._fill():  # close-delimited
            pass
        body, self.buffer = self.buffer, b""
        return status, fields, body


def ask_once(proxy: ProxyHandle, wire: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `wire` on a new connection; the first reply's status, fields and body."""
    with connect(proxy) as sock:
        sock.sendall(wire)
        return Replies(sock).next()


def on_loop(loop_thread: LoopThread, fn: Any) -> Any:
    """Run a plain function on the proxy's loop and return what it returns."""

    async def call() -> Any:
        return fn()

    return loop_thread.run(call())


def only_connection(proxy: ProxyHandle) -> Any:
    servers = proxy.process._servers
    connections = [c for server in servers for c in server.connections]
    assert len(connections) == 1, connections
    return connections[0]


def get(path: str, *extra: str, version: str = "1.1", method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: x", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chat_body(content: str) -> bytes:
    return orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": content}]})


# ======================================================================================================
# Findings of the review (each failed before its fix)
# ======================================================================================================


def test_an_error_reply_to_head_has_no_body(proxy) -> None:  # type: ignore[no-untyped-def]
    """RFC 9110 §9.3.2: a reply to HEAD has no content. The proxy's own error replies (error_reply) write
    the JSON body anyway, on a kept-alive connection, so the next reply is misread (response desync)."""
    with connect(proxy) as sock:
        sock.sendall(get("http://elsewhere/x", method="HEAD") + get("/healthz", "Connection: close"))
        replies = Replies(sock)
        status, fields, _ = replies.next("HEAD")
        assert status == 400 and fields.get("connection") != "close"
        second, _, body = replies.next("GET")  # a real client reads the 400's body as this status line
        assert second == 200 and body == b'{"status":"ok"}'


def test_trailer_fields_are_not_merged_into_the_forwarded_header_section(proxy, origin) -> None:  # type: ignore[no-untyped-def]
    """httptools reports a chunked body's trailer fields through on_header, which appends them to
    request.headers: they reach the upstream as header fields the client never sent in the head (RFC 9110
    §6.5.1: a trailer field MUST NOT be merged into the header section), and the policy may read them too."""
    server, _ = origin
    body = b"payload"
    wire = (b"POST /echo HTTP/1.1\r\nHost: x\r\nX-Test: 1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"%x\r\n%s\r\n0\r\nX-Smuggled: from-the-trailer\r\n\r\n" % (len(body), body))  # fmt: skip
    status, _, reply = ask_once(proxy, wire)
    assert status == 200 and reply == b"ok:/echo:payload"
    ((_, _, headers, _),) = server.marked()
    assert "x-smuggled" not in {name.lower() for name in headers}, headers


@pytest.mark.parametrize("part", ["value", "name"])
def test_one_endless_header_line_is_refused_at_the_head_limit(proxy, part: str) -> None:  # type: ignore[no-untyped-def]
    """max_header_bytes is checked in on_header, which httptools calls only once a field line has ended;
    until then httptools concatenates the pieces itself (`_current_header_value += val`: unbounded memory,
    quadratic copying). A client streaming one header line that never ends is never refused (only the
    header timeout, 10 s by default, stops it: gigabytes on a fast link)."""
    limit = proxy.config.limits.max_header_bytes
    start = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + (b"X-Big: " if part == "value" else b"")
    with connect(proxy, timeout=3) as sock:
        try:
            sock.sendall(start)
            for _ in range(64):  # 64 x the head limit, no CRLF
                sock.sendall(b"a" * limit)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed: the reply below says why
        try:
            reply = read_all(sock)
        except TimeoutError:
            pytest.fail(f"no answer after {64 * limit} bytes of one header {part}: the proxy is still buffering it")
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]


@pytest.mark.parametrize("expect", [False, True], ids=["plain", "expect-100"])
def test_a_request_body_that_stops_coming_does_not_pin_the_connection(origin, make_proxy, expect: bool) -> None:  # type: ignore[no-untyped-def]
    """Slowloris on the body: once a head is complete the connection's deadline is disarmed and
    `conn.body()` waits for the rest with no bound, so a client that announces a body and sends (almost)
    none of it holds the connection (and a slot of limits.max_connections) for ever; the idle and header
    timeouts never apply."""
    proxy = make_proxy(CONFIG, UPSTREAM=origin[1], IDLE="0.3", HEADER="0.3")
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n" + (
        b"Expect: 100-continue\r\n" if expect else b""
    )
    with connect(proxy, timeout=3) as sock:
        sock.sendall(head + b"\r\n" + (b"" if expect else b"only-some"))
        try:
            reply = read_all(sock)  # the proxy should give up (408, or just close)
        except TimeoutError:
            pytest.fail("a body that stopped coming still holds the connection after 3 s (idle_timeout_s 0.3)")
    assert (
        reply in (b"", b"HTTP/1.1 100 Continue\r\n\r\n")
        or b" 408 " in reply.split(b"\r\n", 1)[0]
        or (reply.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 408"))
    ), reply[:200]


def test_replies_to_pipelined_requests_are_not_buffered_without_bound(proxy, origin, loop_thread) -> None:  # type: ignore[no-untyped-def]
    """Back-pressure across requests: a reply read whole is written with `conn.write` and never drained, and
    `_serve` goes on to the next request at once. A client that pipelines requests and reads nothing makes
    the proxy hold every reply in the transport's buffer (here 6 x 4 MB; with more requests or larger
    replies, any amount: limits.buffer_max_bytes bounds one reply, not a connection)."""
    server, _ = origin
    n = 6  # under PIPELINE_DEPTH, so the queue's own pause never comes into it
    with connect(proxy, rcvbuf=4096, timeout=10) as sock:
        sock.sendall(b"".join(get("/big", f"X-Test: {i}") for i in range(n)))
        stats = proxy.process.runtime.stats

        def state() -> tuple[int, int, int]:
            conn = only_connection(proxy)
            return conn.transport.get_write_buffer_size(), stats.in_flight, len(server.marked())

        worst, forwarded, deadline = 0, 0, time.monotonic() + 20  # the deadline only bounds a failure
        while True:
            assert time.monotonic() < deadline, f"undecided: {worst} bytes buffered, {forwarded} calls forwarded"
            buffered, in_flight, forwarded = on_loop(loop_thread, state)
            worst = max(worst, buffered)
            if buffered > 3 * BIG:
                break  # the bug: replies pile up for a client that reads nothing
            if buffered > BIG // 4 and in_flight == 0:
                break  # honoured: a reply waits for the client and no further call was started
        assert worst <= 3 * BIG, (
            f"{worst} bytes of replies buffered for one client that reads nothing ({forwarded} calls forwarded)"
        )
        replies = Replies(sock)
        for _ in range(n):
            status, _, body = replies.next()
            assert status == 200 and len(body) == BIG


def test_shutdown_does_not_cut_a_reply_still_in_the_write_buffer(origin, loop_thread, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM drain: a call whose handler has finished is not "in flight" for HttpServer.shutdown, but its
    reply may still sit in the transport's buffer (a slow reader). `_close()` asked the transport to close
    after flushing, then shutdown calls `conn.abort()` on every connection still in the set, which discards
    the unsent bytes: the client gets a truncated reply although the drain timeout was far off."""
    _, upstream = origin
    handle = loop_thread.run(start_proxy(CONFIG, env={"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db"),
                                                      "DRAIN": "10"}))  # fmt: skip
    with connect(handle, rcvbuf=4096, timeout=10) as sock:
        sock.sendall(get("/big", "X-Test: 1", "Connection: close"))

        def handed_over() -> bool:  # the reply is written to the transport and the handler is done
            conns = [c for s in handle.process._servers for c in s.connections]
            return bool(conns) and conns[0].transport.get_write_buffer_size() > BIG // 4

        deadline = time.monotonic() + 10
        while not on_loop(loop_thread, handed_over):
            assert time.monotonic() < deadline, "the reply never reached the proxy's write buffer"
        stopping = asyncio.run_coroutine_threadsafe(handle.process.stop(), loop_thread.loop)
        replies = Replies(sock)
        try:
            status, _, body = replies.next()
        except (AssertionError, ConnectionResetError) as exc:
            pytest.fail(f"the reply was cut by the shutdown: {exc}")
        finally:
            stopping.result(15)
    assert status == 200 and len(body) == BIG


def test_a_request_asking_to_upgrade_is_served_with_its_body(proxy, origin) -> None:  # type: ignore[no-untyped-def]
    """`Upgrade: h2c` (curl --http2 on http://) may be ignored by a server, which then serves the request as
    it is (RFC 9110 §7.8). llhttp stops at the head of a request naming an upgrade, as if it had no body, so
    the proxy forwards a POST with an empty body (and drops the real one while lingering)."""
    server, _ = origin
    body = b'{"hello": "world"}'
    wire = (b"POST /echo HTTP/1.1\r\nHost: x\r\nX-Test: 1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
    status, _, reply = ask_once(proxy, wire)
    assert [r[3] for r in server.marked()] == [body], "the upstream got another body than the client sent"
    assert status == 200 and reply == b"ok:/echo:" + body


def test_calls_cut_by_the_drain_timeout_are_finished_before_stop_returns(origin, loop_thread, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Past limits.drain_timeout_s, shutdown aborts the connections and returns at once: their handlers are
    only cancelled on a later turn of the loop (connection_lost), after ProxyProcess.stop went on to close
    the pool and the record sinks. The calls cut off must be finished (recorded) before the sinks stop."""
    server, upstream = origin
    handle = loop_thread.run(start_proxy(CONFIG, env={"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db"),
                                                      "DRAIN": "0.2"}))  # fmt: skip
    with connect(handle, timeout=10) as sock:
        sock.sendall(get("/never", "X-Test: 1"))
        assert server.arrived is not None
        loop_thread.run(asyncio.wait_for(server.arrived.wait(), 5))
        stats = handle.process.runtime.stats
        assert stats.in_flight == 1

        async def stop_then_count() -> int:
            await handle.process.stop()
            return int(stats.in_flight)

        left = loop_thread.run(stop_then_count())
        assert read_all(sock) == b""
    assert left == 0, f"{left} call(s) still in flight when stop() returned (sinks already stopped)"


def test_http_1_0_host_less_request_is_fine_but_1_1_needs_host(proxy) -> None:  # type: ignore[no-untyped-def]
    """RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without a Host field, or with two."""
    with connect(proxy) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        no_host = read_all(sock)
    with connect(proxy) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n")
        two_hosts = read_all(sock)
    with connect(proxy) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        old = read_all(sock)
    assert old.startswith(b"HTTP/1.1 200")
    assert no_host.startswith(b"HTTP/1.1 400"), no_host[:100]
    assert two_hosts.startswith(b"HTTP/1.1 400"), two_hosts[:100]


def test_http_1_0_keep_alive_is_confirmed_on_the_proxys_own_replies(proxy) -> None:  # type: ignore[no-untyped-def]
    """An HTTP/1.0 client keeps the connection only when the reply says `Connection: keep-alive`. Forwarded
    replies say it (`_head`); the proxy's own (simple_reply: admin endpoints, errors, listings) do not, so
    the client closes while the proxy holds its side open until the idle timeout."""
    with connect(proxy) as sock:
        sock.sendall(get("/healthz", "Connection: keep-alive", version="1.0")
                     + get("/echo", "Connection: keep-alive", version="1.0"))  # fmt: skip
        replies = Replies(sock)
        _, admin, _ = replies.next()
        _, forwarded, _ = replies.next()
    assert forwarded.get("connection", "").lower() == "keep-alive"
    assert admin.get("connection", "").lower() == "keep-alive", admin


def test_a_pipelined_request_asking_to_upgrade_is_answered_too(proxy) -> None:  # type: ignore[no-untyped-def]
    """On HttpParserUpgrade, data_received sets `self.closing` for the whole connection instead of closing
    after the request that asked: when that request is pipelined behind another, `_serve` stops after the
    first reply (which now says close) and the upgrade request is never answered."""
    with connect(proxy) as sock:
        sock.sendall(get("/healthz") + get("/echo", "Connection: Upgrade", "Upgrade: h2c"))
        replies = Replies(sock)
        first, _, _ = replies.next()
        try:
            second, _, body = replies.next()
        except AssertionError as exc:
            pytest.fail(f"the pipelined upgrade request got no reply: {exc}")
    assert first == 200 and second == 200 and body == b"ok:/echo:"


@pytest.mark.interpreted  # patches a Final constant, which the compiled module has inlined (tests/conftest.py)
def test_lingering_close_does_not_cut_a_reply_the_client_is_still_reading(proxy, loop_thread, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`_close()` on a connection whose client may still send (here: it asked to upgrade; also 413, framing
    errors, a body left unread) does write_eof and schedules abort() LINGER_S later, counted from when the
    reply was handed to the transport, not from when it was sent: a reply still in the write buffer then
    (a large one, a slow reader) is discarded by the abort. LINGER_S is shortened here to keep this fast."""
    import proxy.ingress.wire as wire

    monkeypatch.setattr(wire, "LINGER_S", 0.05)
    with connect(proxy, rcvbuf=4096) as sock:
        sock.sendall(get("/big", "Connection: Upgrade", "Upgrade: h2c"))

        def gone() -> bool:
            return not any(s.connections for s in proxy.process._servers)

        deadline = time.monotonic() + 1.0  # 20 x LINGER_S while the client reads nothing; the pass case waits it out
        while time.monotonic() < deadline and not on_loop(loop_thread, gone):
            pass
        try:
            status, _, body = Replies(sock).next()
        except (AssertionError, ConnectionResetError) as exc:
            pytest.fail(f"the reply was cut by the lingering close: {exc}")
    assert status == 200 and len(body) == BIG


def test_a_client_leaving_while_writing_is_paused_logs_no_error(proxy, loop_thread) -> None:  # type: ignore[no-untyped-def]
    """connection_lost sets an exception on the `_drained` future made by pause_writing; when no handler is
    awaiting it (a reply written whole, never drained), asyncio logs "Future exception was never retrieved"
    at ERROR for each such client."""
    import gc

    errors: list[str] = []
    loop = loop_thread.loop
    previous = loop.get_exception_handler()
    loop.call_soon_threadsafe(loop.set_exception_handler, lambda _loop, ctx: errors.append(str(ctx.get("message"))))
    try:
        with connect(proxy, rcvbuf=4096) as sock:
            sock.sendall(get("/big"))

            def paused() -> bool:
                conns = [c for s in proxy.process._servers for c in s.connections]
                return bool(conns) and conns[0].transport.get_write_buffer_size() > BIG // 4

            deadline = time.monotonic() + 10
            while not on_loop(loop_thread, paused):
                assert time.monotonic() < deadline, "writing never paused"
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset

        async def settle() -> None:
            for _ in range(100):
                if not any(s.connections for s in proxy.process._servers):
                    break
                await asyncio.sleep(0)
            for _ in range(3):
                await asyncio.sleep(0)
            gc.collect()
            await asyncio.sleep(0)

        loop_thread.run(settle())
    finally:
        loop.call_soon_threadsafe(loop.set_exception_handler, previous)
    assert not any("never retrieved" in e for e in errors), errors


def test_a_pipelined_request_head_sent_slowly_gets_the_header_timeout(origin, make_proxy, loop_thread) -> None:  # type: ignore[no-untyped-def]
    """on_message_begin arms limits.header_timeout_s only when nothing is being served; a head that starts
    while an earlier request is in flight is never given that deadline, and once the earlier reply is done
    `_serve` arms the idle timeout instead. So a client can dribble a pipelined head for idle_timeout_s
    (here 30 s) though header_timeout_s is 0.3 s."""
    server, upstream = origin
    assert server.gate is not None and server.arrived is not None
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, IDLE="30", HEADER="0.3")
    with connect(proxy, timeout=3) as sock:
        sock.sendall(get("/gated") + b"GET /next HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and the head never ends
        loop_thread.run(asyncio.wait_for(server.arrived.wait(), 5))
        for _ in range(3):
            loop_thread.loop.call_soon_threadsafe(server.gate.put_nowait, None)
        replies = Replies(sock)
        assert replies.next()[0] == 200
        try:
            rest = read_all(sock)
        except TimeoutError:
            pytest.fail("a pipelined head left unfinished for 3 s is still waited for (header_timeout_s 0.3)")
    assert rest == b"" or rest.startswith(b"HTTP/1.1 408")


TLS_CONFIG = CONFIG.replace(
    "listen: {http: 127.0.0.1:0}", "listen:\n  http: 127.0.0.1:0\n  tls:\n    cert: ${CERT}\n    key: ${KEY}"
)


@pytest.fixture
def tls_proxy(origin, make_proxy, tmp_path):  # type: ignore[no-untyped-def]
    from tests.certs import Authority

    ca = Authority(tmp_path)
    server = ca.issue("server", common_name="lineage-proxy", server=True)
    handle = make_proxy(TLS_CONFIG, UPSTREAM=origin[1], CERT=str(server.cert), KEY=str(server.key), IDLE="0.3",
                        HEADER="0.3")  # fmt: skip
    return handle, ca


def test_a_tls_connection_that_never_handshakes_is_closed_by_the_header_timeout(tls_proxy) -> None:  # type: ignore[no-untyped-def]
    """The protocol only exists once the TLS handshake is done (asyncio/uvloop call connection_made then),
    so a client that opens TCP and sends nothing is not counted by limits.max_connections and no idle or
    header deadline applies: it holds its descriptor for ssl_handshake_timeout (60 s, create_server's
    default). Slowloris below the cap. (aiohttp's server had the same gap.)"""
    proxy, _ = tls_proxy
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=3) as sock:
        try:
            assert sock.recv(100) == b""
        except TimeoutError:
            pytest.fail("a connection that never began its TLS handshake is still open after 3 s (timeouts 0.3 s)")


def test_tls_keep_alive_and_a_refused_body_over_tls(tls_proxy) -> None:  # type: ignore[no-untyped-def]
    """Regression: over TLS (no write_eof) a 413 is still read by the client, and keep-alive works."""
    import ssl

    proxy, ca = tls_proxy
    context = ssl.create_default_context(cafile=str(ca.pair.cert))
    limit = proxy.config.limits.max_body_bytes
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:  # fmt: skip
        sock.sendall(get("/echo") + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (limit + 1))
        replies = Replies(sock)  # type: ignore[arg-type]
        assert replies.next()[0] == 200
        status, fields, _ = replies.next()
        assert status == 413 and fields.get("connection") == "close"


@pytest.mark.interpreted  # patches a Final constant, which the compiled module has inlined (tests/conftest.py)
def test_a_client_that_reads_nothing_is_cut_off_after_the_send_timeout(proxy, loop_thread, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A client that asks and never reads would hold its connection (and, streaming, an upstream
    connection) for ever: after SEND_TIMEOUT_S without progress the proxy cuts it and the call ends."""
    import proxy.ingress.wire as wire

    monkeypatch.setattr(wire, "SEND_TIMEOUT_S", 0.3)
    with connect(proxy, rcvbuf=4096, timeout=10) as sock:
        sock.sendall(get("/big"))

        def settled() -> bool:  # the connection is gone and the call has ended
            return not any(s.connections for s in proxy.process._servers) and not proxy.process.runtime.stats.in_flight

        deadline = time.monotonic() + 10
        while not on_loop(loop_thread, settled):
            assert time.monotonic() < deadline, "a client that reads nothing still holds its connection"


# ======================================================================================================
# Regression tests: behaviour verified to work
# ======================================================================================================


def test_more_pipelined_requests_than_the_pipeline_depth_are_answered_in_order(proxy) -> None:  # type: ignore[no-untyped-def]
    """Reading pauses at PIPELINE_DEPTH queued requests and resumes as they are served: 40 requests in one
    write, bodies included, get 40 replies in order."""
    wire = b"".join(
        b"POST /echo?%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (i, len(str(i)), str(i).encode())
        for i in range(40)
    )
    with connect(proxy) as sock:
        sock.sendall(wire + get("/healthz", "Connection: close"))
        replies = Replies(sock)
        for i in range(40):
            status, _, body = replies.next()
            assert status == 200 and body == b"ok:/echo?%d:%d" % (i, i)
        assert replies.next()[0] == 200
        assert read_all(sock) == b""


def test_204_304_head_and_chunked_framing_on_one_kept_alive_connection(proxy) -> None:  # type: ignore[no-untyped-def]
    """No body on 204, 304 and HEAD replies; an upstream body of unknown length goes chunked to an HTTP/1.1
    client; all on one connection, pipelined."""
    wire = (get("/nocontent") + get("/notmodified") + get("/big", method="HEAD") + get("/stream")
            + get("/healthz", "Connection: close"))  # fmt: skip
    with connect(proxy) as sock:
        sock.sendall(wire)
        replies = Replies(sock)
        status, fields, _ = replies.next()
        assert status == 204 and "content-length" not in fields and "transfer-encoding" not in fields
        status, fields, _ = replies.next()
        assert status == 304 and fields.get("etag") == '"v1"' and "transfer-encoding" not in fields
        status, fields, _ = replies.next("HEAD")
        assert status == 200 and fields.get("content-length") == str(BIG)
        status, fields, body = replies.next()
        assert status == 200 and fields.get("transfer-encoding") == "chunked" and body == b"one,two,three"
        assert replies.next()[0] == 200
        assert read_all(sock) == b""


def test_an_http_1_0_client_gets_a_streamed_reply_delimited_by_close(proxy) -> None:  # type: ignore[no-untyped-def]
    with connect(proxy) as sock:
        sock.sendall(get("/stream", "Connection: keep-alive", version="1.0"))
        reply = read_all(sock)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"Connection: close" in head and b"chunked" not in head.lower() and body == b"one,two,three"


def test_a_client_leaving_mid_stream_cancels_the_upstream_request(proxy, origin, loop_thread) -> None:  # type: ignore[no-untyped-def]
    server, _ = origin
    assert server.gate is not None and server.cancelled is not None
    with connect(proxy) as sock:
        sock.sendall(get("/gated"))
        loop_thread.loop.call_soon_threadsafe(server.gate.put_nowait, None)
        got = b""
        while b"one," not in got:
            piece = sock.recv(4096)
            assert piece
            got += piece
    loop_thread.run(asyncio.wait_for(server.cancelled.wait(), 5))  # the upstream hears of it


def test_a_client_leaving_while_waiting_for_the_head_cancels_the_upstream_request(proxy, origin, loop_thread) -> None:  # type: ignore[no-untyped-def]
    server, _ = origin
    assert server.arrived is not None and server.cancelled is not None
    with connect(proxy) as sock:
        sock.sendall(get("/never"))
        loop_thread.run(asyncio.wait_for(server.arrived.wait(), 5))
    loop_thread.run(asyncio.wait_for(server.cancelled.wait(), 5))
    stats = proxy.process.runtime.stats

    async def settled() -> int:
        for _ in range(100):
            if stats.in_flight == 0:
                break
            await asyncio.sleep(0)
        return int(stats.in_flight)

    assert loop_thread.run(settled()) == 0


def test_shutdown_lets_a_call_in_flight_finish_and_closes_idle_connections(origin, loop_thread, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, upstream = origin
    handle = loop_thread.run(start_proxy(CONFIG, env={"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")}))
    assert server.gate is not None and server.arrived is not None
    with connect(handle) as busy, connect(handle) as idle:
        idle.sendall(get("/healthz"))
        assert Replies(idle).next()[0] == 200
        busy.sendall(get("/gated"))
        loop_thread.run(asyncio.wait_for(server.arrived.wait(), 5))
        stopping = asyncio.run_coroutine_threadsafe(handle.process.stop(), loop_thread.loop)
        assert read_all(idle) == b""  # the idle one is closed at once
        for _ in range(3):
            loop_thread.loop.call_soon_threadsafe(server.gate.put_nowait, None)
        status, fields, body = Replies(busy).next()
        assert status == 200 and body == b"one,two,three"  # its head went out before the stop: it may not say close
        assert read_all(busy) == b""  # but the connection is closed after it
        stopping.result(15)


def test_expect_100_continue_then_keep_alive(proxy) -> None:  # type: ignore[no-untyped-def]
    with connect(proxy) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        replies = Replies(sock)
        assert replies.next()[0] == 100
        sock.sendall(b"abcd" + get("/healthz", "Connection: close"))
        status, _, body = replies.next()
        assert status == 200 and body == b"ok:/echo:abcd"
        assert replies.next()[0] == 200


def test_smuggling_attempts_between_pipelined_requests_are_refused(proxy, origin) -> None:  # type: ignore[no-untyped-def]
    """A body framed two ways, or a chunk size with junk, is refused and the connection closed; the request
    before it is answered, nothing hidden in the bad one reaches the upstream."""
    server, _ = origin
    hidden = get("/hidden", "X-Test: hidden")
    for bad in (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s"
        % (5 + len(hidden), hidden),
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3 ;x\r\nabc\r\n0\r\n\r\n" + hidden,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + hidden,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc" + hidden,
    ):
        with connect(proxy) as sock:
            sock.sendall(get("/first", "X-Test: first") + bad)
            replies = Replies(sock)
            assert replies.next()[0] == 200
            status, fields, _ = replies.next()
            assert status == 400 and fields.get("connection") == "close", bad
            assert read_all(sock) == b""
    assert all(r[1] != "/hidden" for r in server.requests)


def test_a_body_sent_in_tiny_chunks_is_held_in_few_pieces() -> None:
    """A chunked body of one byte a chunk was held as one bytes object a byte (~90 times its size in memory:
    8 MiB took the proxy to 758 MiB); small pieces are joined as they come, large ones kept without a copy."""
    from proxy.ingress.wire import _add

    parts: list[bytes | bytearray] = []
    for _ in range(10_000):
        _add(parts, b"x")
    big = bytes(100_000)
    _add(parts, big)
    _add(parts, b"y")
    assert len(parts) == 2 and parts[0] == b"x" * 10_000 and parts[1] == big + b"y"
    assert b"".join(parts) == b"x" * 10_000 + big + b"y"


def test_a_chunked_body_of_one_byte_chunks_arrives_whole(origin, proxy: ProxyHandle) -> None:  # type: ignore[no-untyped-def]
    """Through the listener: 20,000 one-byte chunks are one body, forwarded intact."""
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "z" * 19_950}]})
    chunked = b"".join(b"1\r\n" + body[i : i + 1] + b"\r\n" for i in range(len(body))) + b"0\r\n\r\n"
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")  # fmt: skip
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(head + chunked)
        reply = b"".join(iter(lambda: sock.recv(65536), b""))
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert [r[3] for r in origin[0].requests if r[0] == "POST"] == [body]


def test_a_head_refused_for_its_fields_keeps_none_of_them(origin, make_proxy, loop_thread) -> None:  # type: ignore[no-untyped-def]
    """Head limits are checked as a head completes and after each read, not per field: a read of tens of
    thousands of fields may come in before the refusal, which drops them, though the connection stays
    open while the request before it is served."""
    server, upstream = origin
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, DRAIN="0.2")  # the stop cuts the held call (was 5 s of drain)
    fields = b"".join(b"%04x:\r\n" % i for i in range(40_000))  # 40k distinct names, ~280 KB (max_headers: 100)
    with connect(proxy) as sock:
        sock.sendall(get("/never"))  # held by the origin: the connection is serving it
        _until(lambda: bool(server.requests), "the first request reaches the origin")
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n" + fields)  # never completes: refused at the limits

        def refused() -> bool:
            return any(isinstance(item, HeaderTooLarge) for item in only_connection(proxy).queue)

        _until(lambda: on_loop(loop_thread, refused), "the head is refused")
        # the refused head is no longer the one being read (since 2026-12-05: it was kept, its fields cleared)
        assert on_loop(loop_thread, lambda: only_connection(proxy).parsing) is None


def _until(predicate: Any, what: str) -> None:
    """Poll `predicate` until it holds (the deadline only bounds a failure)."""
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.005)
