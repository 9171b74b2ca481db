"""The HTTP ingress under malformed and arbitrarily split input, at the socket: every bad request gets a
clear 4xx in the documented error shape (no traceback text), a valid request split at any byte is
served in full, and the proxy keeps serving after each."""

from __future__ import annotations

import itertools
import socket

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.configs import ONE_UPSTREAM_STORED
from tests.servers.vllm_like import SERVED

CONFIG = ONE_UPSTREAM_STORED
BODY = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "hello there"}]})
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


@pytest.fixture(scope="module")
def proxy(loop_thread, tmp_path_factory):  # type: ignore[no-untyped-def]
    from tests.harness import start_app, start_proxy
    from tests.servers.vllm_like import VllmLike

    server = VllmLike()
    runner, port = loop_thread.run(start_app(server.app()))
    store = tmp_path_factory.mktemp("fuzz") / "lineage.db"
    handle = loop_thread.run(start_proxy(CONFIG, env={"UPSTREAM": f"http://127.0.0.1:{port}", "STORE": str(store)}))
    yield handle
    loop_thread.run(handle.process.stop())
    loop_thread.run(runner.cleanup())


def exchange(port: int, pieces: list[bytes], *, half_close: bool = True) -> bytes:
    """Send the pieces, one write each; with `half_close` then say "no more" (an incomplete request
    is then refused or dropped at once instead of waited for)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            for piece in pieces:
                sock.sendall(piece)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the proxy refused and closed before the rest was sent
        reply = b""
        try:
            while piece := sock.recv(65536):
                reply += piece
        except ConnectionResetError:
            pass
        return reply


def assert_serving(port: int) -> None:
    reply = exchange(port, [REQUEST], half_close=False)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, len(REQUEST) - 1), max_size=6, unique=True))
def test_a_valid_request_split_anywhere_is_served(proxy, cuts: list[int]) -> None:  # type: ignore[no-untyped-def]
    bounds = [0, *sorted(cuts), len(REQUEST)]
    reply = exchange(proxy.bound.http.port, [REQUEST[a:b] for a, b in itertools.pairwise(bounds)], half_close=False)
    assert reply.startswith(b"HTTP/1.1 200") and b"echo: hello there" in reply


MALFORMED = {
    "garbage line": b"GARBAGE\r\n\r\n",
    "bad version": b"POST /v1/chat/completions HTTP/9.9\r\nHost: x\r\n\r\n",
    "header without colon": b"POST /v1/chat/completions HTTP/1.1\r\nHost x\r\nContent-Length: 2\r\n\r\n{}",
    "nul in header": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\n{}",
    "length and chunked": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n"
    ),
    "two lengths": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "negative length": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "bad chunk size": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "huge header": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    "bare LF smuggle": b"POST /v1/chat/completions HTTP/1.1\nHost: x\nContent-Length: 2\n\n{}",
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_framing_is_a_clear_4xx_in_the_error_shape(proxy, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    reply = exchange(proxy.bound.http.port, [raw], half_close=False)  # the proxy answers, then closes
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert 400 <= status < 500, reply[:300]
    assert b"application/json" in head.lower()
    error = orjson.loads(body)["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("malformed HTTP request") or (status == 431 and "limits." in error["message"])
    assert b"Traceback" not in reply
    assert_serving(proxy.bound.http.port)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=300))
def test_arbitrary_bytes_never_get_a_5xx_and_never_stop_the_proxy(proxy, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    reply = exchange(proxy.bound.http.port, [raw])
    if reply:
        assert reply.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), reply[:200]
        assert b"Traceback" not in reply
    assert_serving(proxy.bound.http.port)


def test_a_valid_request_pipelined_with_a_malformed_one_gets_both_answers(proxy) -> None:  # type: ignore[no-untyped-def]
    """Both in one write: the valid request is served in full, then the malformed one gets its 400 in the
    error shape (nothing is dropped silently), and the connection closes."""
    reply = exchange(proxy.bound.http.port, [REQUEST.replace(b"Connection: close\r\n", b"") + b"GARBAGE\r\n\r\n"],
                     half_close=False)  # fmt: skip
    first, _, rest = reply.partition(b"HTTP/1.1 400")
    assert first.startswith(b"HTTP/1.1 200") and b"echo: hello there" in first
    assert b'"code":"invalid_request"' in rest


def ask(content: str, *, close: bool = False, extra: bytes = b"") -> bytes:
    body = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": content}]})
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + (b"Connection: close\r\n" if close else b"")
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 2 * len(REQUEST)), max_size=6, unique=True))
def test_pipelined_requests_split_anywhere_are_answered_in_order(proxy, cuts: list[int]) -> None:  # type: ignore[no-untyped-def]
    """Keep-alive and pipelining: three requests sent back to back, cut at any bytes, get three replies
    in the order asked (the last says `Connection: close`, so the proxy then closes)."""
    wire = ask("one") + ask("two") + ask("three", close=True)
    bounds = [0, *sorted(c for c in cuts if c < len(wire)), len(wire)]
    reply = exchange(proxy.bound.http.port, [wire[a:b] for a, b in itertools.pairwise(bounds)], half_close=False)
    assert reply.count(b"HTTP/1.1 200") == 3, reply[:500]
    assert reply.index(b"echo: one") < reply.index(b"echo: two") < reply.index(b"echo: three")


def test_a_chunked_request_body_is_read_and_forwarded(proxy) -> None:  # type: ignore[no-untyped-def]
    body = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "in pieces"}]})
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:20], body[20:])) + b"0\r\n\r\n"
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")  # fmt: skip
    reply = exchange(proxy.bound.http.port, [head, chunks[:10], chunks[10:]], half_close=False)
    assert reply.startswith(b"HTTP/1.1 200") and b"echo: in pieces" in reply


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n", 431),
    ],
    ids=["long target", "too many fields"],
)
def test_oversized_request_heads_get_414_or_431_and_the_connection_closes(proxy, raw: bytes, code: int) -> None:  # type: ignore[no-untyped-def]
    reply = exchange(proxy.bound.http.port, [raw], half_close=False)  # returns once the proxy closed
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % code) and b"Connection: close" in head
    assert orjson.loads(body)["error"]["code"] == "invalid_request"
    assert_serving(proxy.bound.http.port)


def test_http_1_0_and_head_requests(proxy) -> None:  # type: ignore[no-untyped-def]
    """An HTTP/1.0 request is answered and the connection closed (no keep-alive asked); a HEAD reply has
    a head only, so a GET pipelined after it is read correctly."""
    old = exchange(proxy.bound.http.port, [b"GET /v1/models HTTP/1.0\r\n\r\n"], half_close=False)
    assert old.startswith(b"HTTP/1.1 200") and b"Connection: close" in old and SERVED.encode() in old
    both = exchange(
        proxy.bound.http.port,
        [b"HEAD /v1/models HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"],
        half_close=False,
    )
    first, _, second = both.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200"), both[:400]
    assert SERVED.encode() in second.partition(b"\r\n\r\n")[2]


def test_an_oversized_body_gets_413_and_the_connection_closes(proxy) -> None:  # type: ignore[no-untyped-def]
    limit = proxy.config.limits.max_body_bytes
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (limit + 1)
    reply = exchange(proxy.bound.http.port, [head, b"{" * 1024], half_close=False)
    assert reply.startswith(b"HTTP/1.1 413") and b"Connection: close" in reply
    assert b'"code":"request_too_large"' in reply
