"""Random pipelines on one connection, at the socket (`proxy.ingress.wire`): good requests (Content-Length, chunked,
HTTP/1.0, `Connection: close`), bodies over limits.max_body_bytes (413) or past limits.bodies_max_bytes (503), a GET
carrying a body (400, not read), a head refused as it is parsed (two Host fields, 400), heads the listener cannot read,
requests asking to upgrade, a head cut short at the end; the bytes sent in pieces split at random bytes; the client
reading to the end, half-closing, or leaving at once (or reading to the end and keeping its end open, `run`'s `hold`:
LINGER_S a case, for longer runs than this test's).
Whatever comes, every request whose head the listener read is answered, or recorded unserved (`record_unserved`), or
its handler cancelled (its client gone), exactly once, in the order sent; those before the first that ends the
connection (one that closes it, a head it cannot read) all are, and the PIPELINE_DEPTH first behind a refused body,
none after them; the replies the client gets are the ones written, in order; and the connection always ends (LINGER_S
and the timeouts bound it), holding no body (`HttpServer.held`)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config import Limits
from proxy.errors import InvalidRequest, ProxyError
from proxy.ingress.wire import LINGER_S, PIPELINE_DEPTH, HttpConnection, HttpServer, Request

MAX_BODY: int = 1000
# timeouts past what a loaded machine stalls between the pieces of one send (an idle connection, a head left open, ends
# after them: a case that reads to the end takes idle_timeout_s)
LIMITS = Limits(
    max_body_bytes=MAX_BODY, bodies_max_bytes=3 * MAX_BODY // 2, header_timeout_s=2.0, idle_timeout_s=1.0,
    max_header_bytes=2048,
)  # fmt: skip
# the connection's end, at most: a head or body left to time out, then LINGER_S, with room for a loaded machine
ENDS_WITHIN_S: float = LIMITS.header_timeout_s + LIMITS.idle_timeout_s + 2 * LINGER_S + 5
KINDS = (
    "get", "post", "chunked", "big", "big-chunked", "get-body", "bad-head", "mid", "close", "http10", "upgrade",
    "malformed",
)  # fmt: skip


def request_bytes(kind: str, n: int) -> bytes:
    """Request number `n` of `kind`, its number in `X-Id`."""
    head = b"Host: x\r\nX-Id: %d\r\n" % n
    if kind == "get":
        return b"GET /r HTTP/1.1\r\n" + head + b"\r\n"
    if kind == "post":
        return b"POST /r HTTP/1.1\r\n" + head + b"Content-Length: 20\r\n\r\n" + b"p" * 20
    if kind == "chunked":
        return b"POST /r HTTP/1.1\r\n" + head + b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n3\r\nfgh\r\n0\r\n\r\n"
    if kind == "big":
        return b"POST /r HTTP/1.1\r\n" + head + b"Content-Length: %d\r\n\r\n" % (3 * MAX_BODY) + b"b" * (3 * MAX_BODY)
    if kind == "big-chunked":
        return (b"POST /r HTTP/1.1\r\n" + head + b"Transfer-Encoding: chunked\r\n\r\n"
                + b"%x\r\n" % (3 * MAX_BODY) + b"c" * (3 * MAX_BODY) + b"\r\n0\r\n\r\n")  # fmt: skip
    if kind == "mid":  # under the limit; two held at once are over limits.bodies_max_bytes (503)
        return (
            b"POST /r HTTP/1.1\r\n" + head + b"Content-Length: %d\r\n\r\n" % (MAX_BODY - 100) + b"m" * (MAX_BODY - 100)
        )
    if kind == "get-body":
        return b"GET /r HTTP/1.1\r\n" + head + b"Content-Length: 30\r\n\r\n" + b"g" * 30
    if kind == "bad-head":  # refused as parsed (`failed`): in the serve loop once its body is in, else when asked for
        return b"POST /r HTTP/1.1\r\n" + head + b"Host: y\r\nContent-Length: 30\r\n\r\n" + b"d" * 30
    if kind == "close":
        return b"GET /r HTTP/1.1\r\n" + head + b"Connection: close\r\n\r\n"
    if kind == "http10":
        return b"GET /r HTTP/1.0\r\n" + head + b"\r\n"
    if kind == "upgrade":
        return b"GET /r HTTP/1.1\r\n" + head + b"Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    assert kind == "malformed"
    return b"GET /r HTTP/1.1\r\n" + head + b"Bad Field\r\n\r\n"


@dataclass
class Log:
    """What the listener did with each request, in order: ("answered", id, status), ("cancelled", id),
    ("unserved", id or None, whole), ("refused-head", status)."""

    events: list[tuple[Any, ...]] = field(default_factory=list)


def _id(request: Request) -> int | None:
    value = request.header("x-id")
    return int(value) if value is not None else None


# an error's body imports the API shapes it answers in on its first use (`ProxyError.http_body`: 0.8 s on a loaded
# machine, past the timeouts above), which `serve` has imported at its start: made once now, not in a case
InvalidRequest("").http_body("/")


def make_server(log: Log) -> HttpServer:
    """A listener whose handler answers as the proxy's does, in its terms: a GET carrying a body refused before it is
    read (400), a body over the limit (413) or malformed refused as it is read, the rest 200; what it records, noted."""

    async def handler(request: Request, conn: HttpConnection) -> None:
        n = _id(request)
        try:
            if request.method == "GET" and (request.content_length or request.header("transfer-encoding")):
                raise InvalidRequest("a GET request may not carry a body here")
            await conn.body(request)
        except ProxyError as error:
            log.events.append(("answered", n, error.status))
            conn.error(request, error, [])
            return
        except asyncio.CancelledError:
            log.events.append(("cancelled", n))
            raise
        log.events.append(("answered", n, 200))
        conn.reply(request, 200, b"text/plain", b"ok %d" % (n or 0))

    async def record_refusal(request: Request, error: ProxyError, conn: HttpConnection) -> list[tuple[str, str]]:
        log.events.append(
            ("refused-head", error.status) if not request.method else ("answered", _id(request), error.status)
        )
        return []

    def record_unserved(request: Request, conn: HttpConnection, whole: bool) -> None:
        log.events.append(("unserved", _id(request) if whole else None, whole))

    return HttpServer(handler, LIMITS, record_refusal, record_unserved)


def statuses(replies: bytes) -> list[int]:
    """The statuses of the whole replies in `replies` (each framed by its Content-Length, as the listener's are)."""
    got = []
    while replies.startswith(b"HTTP/1.1 "):
        head, sep, rest = replies.partition(b"\r\n\r\n")
        if not sep:
            break
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) < length:
            break
        got.append(int(head.split(b" ", 2)[1]))
        replies = rest[length:]
    return got


def expected(kinds: Sequence[str]) -> tuple[list[int], list[int]]:
    """The requests that must be accounted for (answered, recorded unserved, or cancelled) when the client reads to the
    end, and those that must not be (dropped unread): by the listener's rules, not by how the bytes fell. What is
    behind a request asking to upgrade is neither (read by a parser of its own, recorded unserved up to what it cannot
    read)."""
    must: list[int] = []
    never: list[int] = []
    behind = -1  # requests still kept behind a refused body (-1: none refused yet)
    soft = False  # that body's refusal may have kept the connection open (a GET's body all in as it was answered)
    state = "served"  # then "loose" (behind an upgrade request), or "stopped"
    for n, kind in enumerate(kinds):
        if state == "loose":
            continue
        if behind == 0 and soft:  # past those behind a GET's body: served, or dropped, as its bytes fell
            continue
        if state == "stopped" or behind == 0:
            never.append(n)
            continue
        if kind == "malformed":
            state = "stopped"
            continue
        must.append(n)
        if behind > 0:
            behind -= 1
            if kind in ("close", "http10"):
                state = "stopped"
            elif kind == "upgrade" or (kind == "bad-head" and soft):
                # the reading stops with its read: what follows it there is recorded; a head refused as parsed is
                # served behind a GET's body all in as it was answered (`soft`): as below
                state = "loose"
        elif kind in ("big", "big-chunked"):
            behind = PIPELINE_DEPTH
        elif kind in ("get-body", "mid"):
            # refused (400; 503 when the bodies held are past their budget), the connection going on if its body was
            # all in, else as behind a 413; or served
            behind, soft = PIPELINE_DEPTH, True
        elif kind in ("close", "http10"):
            state = "stopped"
        elif kind in ("upgrade", "bad-head"):
            # (behind a head refused as parsed: those read before its answer recorded, none after when its body was in
            # as it was answered, the connection closed with it; else read on, as behind a GET's body)
            state = "loose"
    return must, never


async def run_case(kinds: Sequence[str], cuts: Sequence[int], ending: str, partial: int, log: Log) -> list[str]:
    """One connection: `kinds` pipelined (then `partial` bytes of one more head), sent in pieces split at `cuts`, the
    client then reading to the end (`read`; `hold`: then keeping its end open, for the listener to end the connection,
    LINGER_S when it lingers), half-closing first (`half-close`) or leaving at once (`leave`). What broke the
    invariants, said."""
    loop = asyncio.get_running_loop()
    server = make_server(log)
    listening = socket.create_server(("127.0.0.1", 0))
    listening.setblocking(False)
    await server.start(listening)
    wire = b"".join(request_bytes(kind, n) for n, kind in enumerate(kinds))
    wire += request_bytes("post", len(kinds))[:partial]
    points = sorted({c % (len(wire) + 1) for c in cuts})
    pieces = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True) if b > a]
    sock = socket.socket()
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    problems: list[str] = []
    got = b""
    try:
        await loop.sock_connect(sock, listening.getsockname())
        for piece in pieces:
            try:
                await loop.sock_sendall(sock, piece)
            except OSError:  # closed by the listener (a head it cannot read, a reply that closed it, lingering over)
                break
            for _ in range(3):  # a turn or more for the listener to read it: most pieces are reads of their own
                await asyncio.sleep(0)
        if ending == "half-close":
            with contextlib.suppress(OSError):  # (reset by the listener already)
                sock.shutdown(socket.SHUT_WR)
        if ending != "leave":
            async with asyncio.timeout(ENDS_WITHIN_S):
                try:
                    while piece := await loop.sock_recv(sock, 65536):
                        got += piece
                except ConnectionResetError:
                    pass
        if ending == "hold":  # the client keeps its end open: the listener ends the connection (lingering: LINGER_S)
            await ended(server, problems)
    except TimeoutError:
        problems.append(f"the connection did not end within {ENDS_WITHIN_S}s")
    finally:
        sock.close()
    await ended(server, problems)
    await server.shutdown(0.5)
    listening.close()
    if server.held:
        problems.append(f"bodies still held: {server.held}")
    last = request_bytes("post", len(kinds))
    problems += judge(kinds, log, ending, got, partial >= last.index(b"\r\n\r\n") + 4)
    return problems


async def ended(server: HttpServer, problems: list[str]) -> None:
    """Until the listener has let go of its connection (it ends within ENDS_WITHIN_S), polled: what a fuzz waits for."""
    try:
        async with asyncio.timeout(ENDS_WITHIN_S):
            while server.connections:
                await asyncio.sleep(0.01)
    except TimeoutError:
        problems.append("the listener still holds the connection")


def judge(kinds: Sequence[str], log: Log, ending: str, got: bytes, last_head_whole: bool) -> list[str]:
    """What broke the invariants in `log` (and the replies `got`) of `kinds` sent; `last_head_whole`: the head cut short
    at the end came whole (its body did not)."""
    problems = []
    ids = [e[1] for e in log.events if e[0] in ("answered", "cancelled", "unserved") and e[1] is not None]
    if len(ids) != len(set(ids)):
        problems.append(f"a request accounted for twice: {log.events}")
    if ids != sorted(ids):
        problems.append(f"out of order: {log.events}")
    if any(not 0 <= n < len(kinds) + last_head_whole for n in ids):
        problems.append(f"a request never sent whole accounted for: {log.events}")
    cut = [e for e in log.events if e[0] == "unserved" and e[1] is None]
    if len(cut) > 1:
        problems.append(f"more than one head cut: {log.events}")
    answered = [e[-1] for e in log.events if e[0] in ("answered", "refused-head")]
    if ending in ("read", "hold") and statuses(got) != answered:
        problems.append(f"the client got {statuses(got)}, the listener answered {answered}: {log.events}")
    if ending == "half-close" and statuses(got) != answered[: len(statuses(got))]:
        problems.append(f"the client got {statuses(got)}, the listener answered {answered}: {log.events}")
    if ending != "leave":
        must, never = expected(kinds)
        if missing := [n for n in must if n not in ids]:
            problems.append(f"requests {missing} neither answered nor recorded: {log.events}")
        if extra := [n for n in never if n in ids]:
            problems.append(f"requests {extra} dropped by the rules, yet accounted for: {log.events}")
    return problems


def run(kinds: Sequence[str], cuts: Sequence[int], ending: str, partial: int, log: Log | None = None) -> list[str]:
    """`run_case` on a loop of its own (uvloop, as `serve` runs); `log`: what the listener did, kept."""
    return uvloop.run(run_case(kinds, cuts, ending, partial, log if log is not None else Log()))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(KINDS), min_size=1, max_size=14),
    st.lists(st.integers(min_value=0), max_size=6),
    st.sampled_from(["read", "half-close", "leave", "leave"]),
    st.sampled_from([0, 0, 0, 9, 40]),
)
def test_every_request_read_is_answered_or_recorded_once_in_order(
    kinds: list[str], cuts: list[int], ending: str, partial: int
) -> None:
    assert run(kinds, cuts, ending, partial) == []
