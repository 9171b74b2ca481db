"""A connection that closes is freed by reference counting as it closes, in every way it closes, not left to the cyclic
garbage collector, which a `serve` process runs rarely (`gc.freeze()`, a young generation of 10,000: workers.py):
neither a client's (`HttpConnection`, with the request it was reading) nor an upstream one (`Connection`, its reply's
parser), nor what they hold (their transport, futures, the task that served them). Each holds an httptools parser
that calls it back (its bound methods): a reference cycle, broken once the connection is over. Before 2026-12-05
(helper records) every closed connection lived until a collection, and with it the request a client left part-way,
its body too."""

from __future__ import annotations

import asyncio
import collections
import gc
import socket
import ssl
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httptools
import pytest

from proxy.ingress import wire
from proxy.ingress.wire import HttpConnection, HttpServer, Request
from proxy.transport import pool as pools
from proxy.transport.connection import Connection
from proxy.transport.http11 import ReplyParser
from proxy.transport.pool import ConnectionPool
from tests.certs import Authority
from tests.configs import ONE_UPSTREAM
from tests.harness import LoopThread, ProxyHandle
from tests.held import until
from tests.ingress.test_wire import connect, read_all
from tests.servers.raw_origin import proxy_in_front, request_body
from tests.servers.vllm_like import SERVED

_LIMITS = "limits: {max_body_bytes: 2000, header_timeout_s: 0.3, idle_timeout_s: 0.3, drain_timeout_s: 5}\n"
_CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hello"}]}'
_POST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
_REPLY = (
    b'{"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0, '
    b'"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}'
)
# the types whose objects a closed connection must not leave in a reference cycle
_KINDS = (HttpConnection, Request, httptools.HttpRequestParser, httptools.HttpResponseParser, Connection, ReplyParser)


def _call(sock: socket.socket) -> bytes:
    """One chat call on `sock`, its reply's head and body (Content-Length)."""
    sock.sendall(_POST % len(_CHAT) + _CHAT)
    got = b""
    while b"\r\n\r\n" not in got:
        got += sock.recv(65536)
    head, _, body = got.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head


def _served_then_left(proxy: ProxyHandle) -> None:
    with connect(proxy) as sock:  # a call answered, then the client's end of the connection
        assert _call(sock).startswith(b"HTTP/1.1 200")


def _left_mid_head(proxy: ProxyHandle) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le")


def _left_mid_body(proxy: ProxyHandle) -> None:
    http = proxy.process._http
    assert http is not None
    with connect(proxy) as sock:  # its handler waits for the rest of the body when the client leaves
        sock.sendall(_POST % 1000 + b'{"model": "m"')
        assert until(lambda: any(c.serving is not None for c in http.connections))


def _refused_mid_body(proxy: ProxyHandle) -> None:
    with connect(proxy) as sock:  # 413, the proxy's end of writing, its reading of what still comes
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"%x\r\n%s\r\n" % (4000, b"y" * 4000))  # fmt: skip
        assert read_all(sock).startswith(b"HTTP/1.1 413")


def _body_timed_out(proxy: ProxyHandle) -> None:
    with connect(proxy) as sock:  # its body stops coming: 408, raised to the handler as the request's `failed`
        sock.sendall(_POST % 1000 + b'{"model": "m"')
        assert read_all(sock).startswith(b"HTTP/1.1 408")


def _malformed_body(proxy: ProxyHandle) -> None:
    with connect(proxy) as sock:  # its chunked framing broken part-way: 400, raised to the handler so too
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"mod\r\nzz\r\n')  # fmt: skip
        assert read_all(sock).startswith(b"HTTP/1.1 400")


def _head_timed_out(proxy: ProxyHandle) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        assert read_all(sock) == b""  # closed by the proxy (header_timeout_s)


def _idle_timed_out(proxy: ProxyHandle) -> None:
    with connect(proxy) as sock:
        assert _call(sock).startswith(b"HTTP/1.1 200")
        assert read_all(sock) == b""  # closed by the proxy (idle_timeout_s)


def _refused_head(proxy: ProxyHandle) -> None:
    with connect(proxy) as sock:  # refused by a parser callback (the target's length): its error raised through it
        sock.sendall(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 414")


def _malformed(proxy: ProxyHandle) -> None:
    with connect(proxy) as sock:  # refused by llhttp, after a request pipelined before it is answered
        sock.sendall(_POST % len(_CHAT) + _CHAT + b"GET / HTTP/1.1\r\nHost: x\r\nBad Field\r\n\r\n")
        assert b"HTTP/1.1 400" in read_all(sock)


def _left_pipelined(proxy: ProxyHandle) -> None:
    with connect(proxy) as sock:  # two requests sent, then the client's end of writing and reading
        sock.sendall((_POST % len(_CHAT) + _CHAT) * 2)


def _upgrade_asked(proxy: ProxyHandle) -> None:
    with connect(proxy) as sock:  # served, then the connection closed, what follows read with a parser of its own
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(_CHAT), _CHAT)
                     + _POST % len(_CHAT) + _CHAT)  # fmt: skip
        assert read_all(sock).startswith(b"HTTP/1.1 200")


_CLIENT_WAYS: dict[str, Callable[[ProxyHandle], None]] = {
    "served-then-left": _served_then_left,
    "left-mid-head": _left_mid_head,
    "left-mid-body": _left_mid_body,
    "refused-mid-body-413": _refused_mid_body,
    "body-timeout-408": _body_timed_out,
    "malformed-body-400": _malformed_body,
    "head-timeout": _head_timed_out,
    "idle-timeout": _idle_timed_out,
    "refused-head-414": _refused_head,
    "malformed-400": _malformed,
    "left-pipelined": _left_pipelined,
    "upgrade-asked": _upgrade_asked,
}


@pytest.mark.parametrize("way", list(_CLIENT_WAYS))
def test_a_client_connection_is_freed_as_it_closes(vllm, make_proxy, way: str) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM + _LIMITS, UPSTREAM=upstream)
    with _collector_off() as left:
        for _ in range(3):
            _CLIENT_WAYS[way](proxy)
        assert left(proxy) == []


def test_a_tls_client_connection_is_freed_as_it_closes(vllm, make_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Over TLS (the listener's own accept and handshake, `HttpServer._handshake`): a call then the client's end, and a
    client leaving mid-body."""
    _, upstream = vllm
    authority = Authority(tmp_path)
    pair = authority.issue("proxy", common_name="proxy", server=True)
    tls = f'listen:\n  http: 127.0.0.1:0\n  tls: {{cert: "{pair.cert}", key: "{pair.key}"}}'
    proxy = make_proxy(ONE_UPSTREAM.replace("listen: {http: 127.0.0.1:0}", tls) + _LIMITS, UPSTREAM=upstream)
    context = ssl.create_default_context(cafile=str(authority.pair.cert))
    with _collector_off() as left:
        for _ in range(3):
            with context.wrap_socket(connect(proxy), server_hostname="127.0.0.1") as sock:
                assert _call(sock).startswith(b"HTTP/1.1 200")
            with context.wrap_socket(connect(proxy), server_hostname="127.0.0.1") as sock:
                sock.sendall(_POST % 1000 + b'{"model": "m"')
        assert left(proxy) == []


def test_a_tls_connection_whose_handshake_fails_is_freed(vllm, make_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Its `HttpConnection` is made before the handshake, and dropped without `connection_made` when it fails (a client
    that does not trust the certificate, a TLS record that is no handshake)."""
    _, upstream = vllm
    authority = Authority(tmp_path)
    pair = authority.issue("proxy", common_name="proxy", server=True)
    tls = f'listen:\n  http: 127.0.0.1:0\n  tls: {{cert: "{pair.cert}", key: "{pair.key}"}}'
    proxy = make_proxy(ONE_UPSTREAM.replace("listen: {http: 127.0.0.1:0}", tls) + _LIMITS, UPSTREAM=upstream)
    http = proxy.process._http
    assert http is not None
    distrusting = ssl.create_default_context()  # (the system's CAs: not the one that issued the proxy's certificate)
    with _collector_off() as left:
        for _ in range(3):
            with connect(proxy) as sock, pytest.raises(ssl.SSLError):
                distrusting.wrap_socket(sock, server_hostname="127.0.0.1")
            with connect(proxy) as sock:
                sock.sendall(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00")  # a ClientHello too short
                read_all(sock)  # (closed by the proxy)
        assert until(lambda: http.handshake_failures == 6)
        assert left(proxy) == []


def test_connections_the_drain_closes_are_freed(  # type: ignore[no-untyped-def]
    vllm, make_proxy, loop_thread: LoopThread
) -> None:
    """Idle, a head part-way, a body part-way, a call its upstream holds (cut at the drain's timeout, its upstream
    connection with it)."""
    server, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM + _LIMITS.replace("0.3", "30").replace("drain_timeout_s: 5", "drain_timeout_s: 0.5"),
                       UPSTREAM=upstream)  # fmt: skip
    http = proxy.process._http
    assert http is not None
    pool = proxy.process.pool.pool(proxy.config.upstreams[0])
    held = b'{"model": "%s", "messages": [{"role": "user", "content": "__slow__"}]}' % SERVED.encode()
    with _collector_off() as left:
        idle, head, body, call = connect(proxy), connect(proxy), connect(proxy), connect(proxy)
        with idle, head, body, call:
            assert _call(idle).startswith(b"HTTP/1.1 200")
            head.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            body.sendall(_POST % 1000 + b'{"model": "m"')
            call.sendall(_POST % len(held) + held)
            assert until(lambda: len(server.data_requests()) == 2)  # (the idle connection's call, and this one)
            assert until(lambda: sum(c.serving is not None for c in http.connections) == 2)
            loop_thread.run(proxy.process.stop())
            for sock in (idle, head, body, call):
                read_all(sock)
        assert left(proxy, pool) == []


async def _then_closes(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """A whole reply that keeps the connection open, which the origin then closes (the pool's idle connection ends)."""
    await request_body(head, reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(_REPLY), _REPLY))  # fmt: skip
    await writer.drain()
    return False


async def _cut_mid_reply(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(_REPLY), _REPLY[:20]))  # fmt: skip
    await writer.drain()
    return False


async def _not_http(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    writer.write(b"HTTP/1.1 999 Weird\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    return True


def _none_open(pool: ConnectionPool) -> bool:
    return pool.open == 0  # (the discovery's connection, idle, carried the first call)


def _none_in_use(pool: ConnectionPool) -> bool:
    return pool.open == len(pool.idle)  # (the failure has the upstream's metadata asked again: a new idle connection)


@pytest.mark.parametrize(
    ("answer", "status", "ended"),
    [(_then_closes, b"200", _none_open), (_cut_mid_reply, b"502", _none_in_use), (_not_http, b"502", _none_in_use)],
    ids=["closed-idle", "cut-mid-reply", "reply-not-http"],
)
def test_an_upstream_connection_is_freed_as_it_ends(  # type: ignore[no-untyped-def]
    make_proxy, loop_thread: LoopThread, answer, status: bytes, ended: Callable[[ConnectionPool], bool]
) -> None:
    with proxy_in_front(loop_thread, make_proxy, ONE_UPSTREAM, answer) as proxy:
        pool = proxy.process.pool.pool(proxy.config.upstreams[0])
        with _collector_off() as left:
            for _ in range(3):
                with connect(proxy) as sock:
                    assert _call(sock).startswith(b"HTTP/1.1 " + status)
                assert until(lambda: ended(pool))  # the call's upstream connection ended
            assert left(proxy, pool) == []


@pytest.mark.interpreted
def test_an_upstream_connection_whose_connect_is_cancelled_once_made_is_freed(  # type: ignore[no-untyped-def]
    vllm, make_proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvloop closes the transport of a connect cancelled once its connection is made, before the connect returns (as
    the call's client leaving then does), and tells the connection nothing."""

    class CancelledOnceMade(Connection):  # (a compiled class takes no interpreted subclass: made here, interpreted)
        def __init__(self, loop: asyncio.AbstractEventLoop, on_idle_lost: Callable[[Connection], None]) -> None:
            super().__init__(loop, on_idle_lost)
            task = asyncio.current_task()
            call = task is not None and task.get_coro().__qualname__ == "HttpConnection._serve"  # (not the discovery's)
            self.connecting = weakref.ref(task) if task is not None and call else None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            task = self.connecting() if self.connecting is not None else None
            if task is not None:
                task.cancel()

    _, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM, UPSTREAM=upstream)
    pool = proxy.process.pool.pool(proxy.config.upstreams[0])
    monkeypatch.setattr(pools, "Connection", CancelledOnceMade)
    monkeypatch.setattr(pools, "IDLE_S", 0.0)  # each call connects (the discovery's connection is not taken)
    with _collector_off() as left:
        for _ in range(3):
            with connect(proxy) as sock:
                sock.sendall(_POST % len(_CHAT) + _CHAT)
                assert read_all(sock) == b""  # its handler cancelled: no answer, the connection closed
        assert left(proxy, pool) == []


@contextmanager
def _collector_off() -> Iterator[Callable[..., list[str]]]:
    """The block runs with the cyclic collector off (what it left before is collected first): it gives what says which
    of a proxy's connections that closed are still alive (see `_alive`), once the proxy has let go of all it would."""
    gc.collect()
    gc.disable()
    try:
        yield _left
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _left(proxy: ProxyHandle, pool: ConnectionPool | None = None) -> list[str]:
    """What is left of `proxy`'s closed connections: waited for (a cancelled handler ends a turn of the loop or two
    later) while anything of them is still alive; then what is alive, and what a collection finds in cycles."""
    http = proxy.process._http
    assert http is not None
    assert until(lambda: not http.connections)
    until(lambda: not _alive(http, pool), timeout=5)
    left = _alive(http, pool)
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    garbage = collections.Counter(type(o).__qualname__ for o in gc.garbage if isinstance(o, _KINDS))
    return left + [f"in a cycle: {count} {kind}" for kind, count in sorted(garbage.items())]


def _alive(http: HttpServer, pool: ConnectionPool | None) -> list[str]:
    """`http`'s client connections still alive; `pool`'s upstream connections that ended, still alive; the parsers alive
    that no open connection holds. With the collector off, alive is held, by a cycle or by a reference."""
    objects = gc.get_objects()
    clients = [o for o in objects if type(o) is HttpConnection]
    upstreams = [o for o in objects if isinstance(o, Connection)]
    held = {id(c.parser) for c in clients} | {id(c.parser) for c in upstreams if not _over(c)} | {id(wire._NO_PARSER)}
    left = [f"client connection {c.client}" for c in clients if c.server is http]
    left += [f"upstream connection ({c.lost!r})" for c in upstreams if _over(c) and _pool_of(c) is pool]
    left += [type(o).__qualname__ for o in objects if isinstance(o, (httptools.HttpRequestParser, ReplyParser))
             and id(o) not in held]  # fmt: skip
    return left


def _over(conn: Connection) -> bool:
    """Whether an upstream connection ended (or its connect did not: its transport closed, or let go of)."""
    return conn.lost is not None or conn.transport is None or conn.transport.is_closing()


def _pool_of(conn: Connection) -> object:
    on_lost = conn.on_idle_lost
    return getattr(on_lost, "__self__", None)
