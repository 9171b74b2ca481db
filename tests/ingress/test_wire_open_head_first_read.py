"""A request head still open after the read that began it (no blank line yet) was not counted toward
`limits.max_header_bytes` until more bytes came: llhttp holds a field line it has not seen the end of, and the
open head's bytes were counted only from its second read on (`_head_fed`). A client that sent 70 KB of one field
in one write, then waited, held that memory until the header timeout (30 s here) and got no answer. It is refused
431 once the bytes read are past the limit, whatever comes next, as a head fed over several reads is."""

from __future__ import annotations

import asyncio

import pytest

from proxy.config.model import Limits
from proxy.ingress.wire import MAX_TARGET, HttpConnection, HttpServer, Request
from tests.harness import FakeTransport, ProxyHandle
from tests.ingress.test_wire import connect, origin, proxy, read_all

__all__ = ["origin", "proxy"]  # the fixtures, imported

HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
CASES = {
    "first-field": b"",  # the head's only field is the open one
    "after-a-field": b"Host: x\r\n",
}


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


@pytest.mark.parametrize("ending", [b"\r\n", b"\n"])
def test_a_body_line_like_a_request_line_does_not_count_toward_the_open_head_after_it(
    proxy: ProxyHandle, ending: bytes
) -> None:
    """A body whose last line end follows ` HTTP/1.1` (a text quoting a request line), then more of it than the head
    limit without a line end, pipelined in one write with the first bytes of the next request: the bytes after that
    line end are the body's, not the open head's (whose request line is not whole yet). They were counted toward it,
    and the second request was refused 431 (`_head_read` read the body's line as the head's request line)."""
    limit = proxy.config.limits.max_header_bytes
    body = b"it said GET / HTTP/1.1" + ending + b"x" * (2 * limit + 8192)  # its last line end, then none
    post = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with connect(proxy, timeout=10) as sock:
        sock.sendall(post + b"GET /heal")
        sock.sendall(b"thz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = read_all(sock)
    assert reply.count(b"HTTP/1.1 200") == 2, reply[:400]  # before: 200, then 431


def _served(reads: list[bytes], count: int, limit: int) -> list[str]:
    """The targets of the `count` requests a handler gets, then the errors refused ones are answered with, the bytes
    fed to a connection (`limits.max_header_bytes` = `limit`) in `reads`."""
    seen: list[str] = []

    async def main() -> None:
        done = asyncio.Event()

        async def handler(req: Request, conn: HttpConnection) -> None:
            seen.append(req.target)
            await conn.body(req)
            conn.reply(req, 200, b"text/plain", b"ok")
            if len(seen) == count:
                done.set()

        conn = HttpServer(handler, Limits(max_header_bytes=limit))()
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        for data in reads:
            conn.data_received(data)
        refused = [type(item).__name__ for item in conn.queue if not isinstance(item, Request)]
        await asyncio.wait_for(done.wait(), 10)
        seen.extend(refused)
        conn.connection_lost(None)

    asyncio.run(main())
    return seen


def test_pipelined_heads_up_to_the_limit_are_served_wherever_the_reads_split() -> None:
    """A request whose body quotes a request line then runs on past the limit without a line end, then one whose head
    is exactly `limits.max_header_bytes` (its target and fields as counted): split into two reads at every byte, both
    are served; a byte more in the second head is refused 431 wherever the split falls."""
    limit = 1024
    body = b"it said GET /b HTTP/1.1\r\n" + b"x" * (limit + MAX_TARGET + 1)
    first = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    # as counted: the target "/b" (2), each field's name and value and 4 (`Host: x` 9, `Connection: close` 19), and
    # `X-Pad` (9 and its value) filling the rest
    second = b"GET /b HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\nConnection: close\r\n\r\n" % (b"p" * (limit - 39))
    data = first + second
    for cut in range(1, len(data)):
        assert _served([data[:cut], data[cut:]], 2, limit) == ["/a", "/b"], cut
    over = first + second.replace(b"X-Pad: ", b"X-Pad: p")
    for cut in range(len(first) - 64, len(over), 7):
        assert _served([over[:cut], over[cut:]], 1, limit) == ["/a", "HeaderTooLarge"], cut


@pytest.mark.parametrize("spaces", [1, 2, 3])
@pytest.mark.parametrize("before", [b"", HEALTH], ids=["none", "pipelined"])
@pytest.mark.parametrize("fields", list(CASES))
def test_an_open_head_past_the_limit_is_refused_in_its_first_read_however_many_spaces_its_line_has(
    spaces: int, before: bytes, fields: str
) -> None:
    """Whether the request line of a head still open ended in the read that began it is one decision (`_line_ended`),
    which both its bytes' count (`_head_read`) and its record when the drain cuts it (`_head_cut`) read. The count
    decided apart, looking for the method, one space, the target and the version: with more spaces after the method
    (which llhttp takes), the line was taken as not whole, the field after it in the read not counted, and the head,
    past the limits in that one read (its first field), was refused 431 only once another read came (a client waiting:
    408 after the header timeout)."""
    limit = 1024
    line = b"GET" + b" " * spaces + b"/b HTTP/1.1\r\n"
    head = line + CASES[fields] + b"X-Big: " + b"a" * (limit + MAX_TARGET + 1)  # no line end

    async def main() -> tuple[list[str], int]:
        async def handler(req: Request, conn: HttpConnection) -> None:
            conn.reply(req, 200, b"text/plain", b"ok")

        server = HttpServer(handler, Limits(max_header_bytes=limit))
        conn = server()
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        conn.data_received(before + head)  # one read, nothing after it
        queued = [type(item).__name__ if not isinstance(item, Request) else item.target for item in conn.queue]
        conn.connection_lost(None)
        return queued, server.framing_errors

    queued, errors = asyncio.run(main())
    assert queued[-1:] == ["HeaderTooLarge"] and errors == 1, (queued, errors)


@pytest.mark.parametrize(
    "value", [b"GET /b ", b"GET  /b ", b"x GET /b "], ids=["method-target", "two-spaces", "inside"]
)
@pytest.mark.parametrize("before", [b"", HEALTH], ids=["none", "pipelined"])
def test_an_open_first_field_holding_the_method_and_target_is_refused_in_its_first_read(
    value: bytes, before: bytes
) -> None:
    """The head's one field, still open, past the limits in the read that began the head, its value holding the
    method and the target ("X-Big: GET /b aaaa..."): the last " /b" in the read is the field's, with "GET" before it,
    and was taken for the request line, not whole (`_line_ended`): the field's bytes were not counted and the head was
    refused 431 only once another read came (a waiting client: 408 at the header timeout). A request line still open
    ends the read (its target, a piece of its version after it): the field's bytes after the target say it is none."""
    limit = 1024
    head = b"GET /b HTTP/1.1\r\nX-Big: " + value + b"a" * (limit + MAX_TARGET + 1)  # no line end

    async def main() -> tuple[list[str], int]:
        async def handler(req: Request, conn: HttpConnection) -> None:
            conn.reply(req, 200, b"text/plain", b"ok")

        server = HttpServer(handler, Limits(max_header_bytes=limit))
        conn = server()
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        conn.data_received(before + head)  # one read, nothing after it
        queued = [type(item).__name__ if not isinstance(item, Request) else item.target for item in conn.queue]
        conn.connection_lost(None)
        return queued, server.framing_errors

    queued, errors = asyncio.run(main())
    assert queued[-1:] == ["HeaderTooLarge"] and errors == 1, (queued, errors)
