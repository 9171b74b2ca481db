"""A request head still open after the read that began it (no blank line yet) was not counted toward
`limits.max_header_bytes` until more bytes came: llhttp holds a field line it has not seen the end of, and the
open head's bytes were counted only from its second read on (`_head_fed`). A client that sent 70 KB of one field
in one write, then waited, held that memory until the header timeout (30 s here) and got no answer. It is refused
431 once the bytes read are past the limit, whatever comes next, as a head fed over several reads is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import LoopThread, ProxyHandle, serving
from tests.ingress.test_wire import CONFIG, Origin, connect, read_all

HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
CASES = {
    "first-field": b"",  # the head's only field is the open one
    "after-a-field": b"Host: x\r\n",
}


@pytest.fixture
def origin(loop_thread: LoopThread) -> Iterator[tuple[Origin, str]]:
    server = Origin()
    with serving(loop_thread, server.app()) as url:
        yield server, url


@pytest.fixture
def proxy(origin, make_proxy) -> ProxyHandle:  # type: ignore[no-untyped-def]
    return make_proxy(CONFIG, UPSTREAM=origin[1])


@pytest.mark.parametrize("before", ["none", "pipelined"])
@pytest.mark.parametrize("fields", list(CASES))
def test_an_open_head_past_the_limit_in_one_write_is_refused_at_once(
    proxy: ProxyHandle, fields: str, before: str
) -> None:
    limit = proxy.config.limits.max_header_bytes
    head = b"GET /healthz HTTP/1.1\r\n" + CASES[fields] + b"X-Big: " + b"a" * (2 * limit + 8192)  # no line end
    with connect(proxy, timeout=5) as sock:
        sock.sendall((HEALTH if before == "pipelined" else b"") + head)
        try:
            reply = read_all(sock)
        except TimeoutError:
            pytest.fail(f"no answer to {len(head)} bytes of an open head sent at once: held until the header timeout")
    if before == "pipelined":  # the request before it is answered first
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        reply = reply[reply.index(b"HTTP/1.1 ", 1) :]
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]


def test_an_open_head_under_the_limit_waits_for_the_rest(proxy: ProxyHandle) -> None:
    """The control: a head under the limit sent in pieces, pipelined after a request, is served once it ends."""
    limit = proxy.config.limits.max_header_bytes
    with connect(proxy, timeout=10) as sock:
        sock.sendall(HEALTH + b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (limit // 2))
        sock.sendall(b"\r\nConnection: close\r\n\r\n")
        reply = read_all(sock)
    assert reply.count(b"HTTP/1.1 200") == 2, reply[:400]


def test_a_body_before_an_open_head_in_the_same_read_is_not_counted_toward_it(proxy: ProxyHandle) -> None:
    """A request whose body has no line end, pipelined in one write with the first bytes of the next request (its
    request line not whole yet): the body is the first request's, not the open head's, and both are served."""
    limit = proxy.config.limits.max_header_bytes
    body = b"x" * (3 * limit)  # no line end
    post = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with connect(proxy, timeout=10) as sock:
        sock.sendall(post + b"GET /heal")
        sock.sendall(b"thz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = read_all(sock)
    assert reply.count(b"HTTP/1.1 200") == 2, reply[:400]
