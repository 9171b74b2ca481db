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

from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
  default_purpose: assistant
lineage:
  store: ${STORE}
"""
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
