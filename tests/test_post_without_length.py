"""A POST with neither Content-Length nor Transfer-Encoding to a path whose adapter reads a body is answered 411 once,
recorded once, and the connection closes with the answer: by RFC 9112 section 6.3 its body is empty and what follows
it the next request, so before 2026-12-05 the JSON the client meant to send was read as a second, malformed request
(two 400s, both recorded). A passthrough path's POST may carry no body (its path is its request): served, not
refused, and what follows it is the next request."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_refusals_recorded import AUTH, BODY, CONFIG, AccessLines, access_lines, assert_recorded, errors


@pytest.fixture
def access() -> Iterator[AccessLines]:
    yield from access_lines()


@pytest.fixture
def proxy(vllm: Any, otlp: OtlpReceiver, make_proxy: Any) -> Any:
    _, upstream = vllm
    return make_proxy(CONFIG, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")


def exchange(port: int, wire: bytes) -> list[bytes]:
    """The replies to `wire` on one connection, read until the proxy closes it: each reply's status, and all it got."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(wire)
        got = b""
        while piece := sock.recv(65536):
            got += piece
    return re.findall(rb"HTTP/1\.1 \d{3} ", got), got


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v2/models/m/infer"])
def test_a_body_path_without_a_length_is_411_once(
    proxy: Any,
    otlp: OtlpReceiver,
    access: AccessLines,
    path: str,
) -> None:
    wire = f"POST {path} HTTP/1.1\r\nHost: x\r\n{AUTH}\r\nContent-Type: application/json\r\n\r\n".encode() + BODY
    lines, got = exchange(proxy.bound.http.port, wire)
    assert len(lines) == 1 and lines[0].startswith(b"HTTP/1.1 411 "), got
    head, _, body = got.partition(b"\r\n\r\n")
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower().decode()] = value.strip().decode("latin-1")
    assert fields["connection"] == "close"
    error = orjson.loads(body)["error"]  # (OIP's shape: the message alone)
    assert "Content-Length" in (error if isinstance(error, str) else error["message"])
    assert_recorded(otlp, access, fields, 411, "invalid_request", "app")
    assert errors(proxy, "invalid_request") == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_a_passthrough_request_without_a_length_is_served_and_what_follows_it_too(proxy: Any, method: str) -> None:
    """vLLM's `/sleep` takes a POST with no body (curl -X POST sends no length): forwarded, not refused, and the
    request after it is the next request, as RFC 9112 has it (a first version of the 411 closed the connection after
    any such request, so requests pipelined behind a bodiless POST went unserved)."""
    wire = (f"{method} /sleep HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n\r\n"
            "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
    lines, got = exchange(proxy.bound.http.port, wire)
    assert len(lines) == 2 and not lines[0].startswith(b"HTTP/1.1 411 "), got
    assert lines[1] == b"HTTP/1.1 401 ", got  # (the GET carries no key)
    assert errors(proxy, "invalid_request") == 0


def test_a_zero_length_is_a_length(proxy: Any) -> None:
    wire = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n{AUTH}\r\nContent-Length: 0\r\n\r\n".encode()
    lines, got = exchange(
        proxy.bound.http.port, wire + b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert lines == [b"HTTP/1.1 400 ", b"HTTP/1.1 401 "], got  # (the GET carries no key)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/sleep", "/v2/models/m/infer"])
def test_a_delete_with_a_body_and_no_length_is_answered_and_its_body_refused_as_the_next_request(
    proxy: Any, otlp: OtlpReceiver, access: AccessLines, path: str
) -> None:
    """RFC 9112 section 6.3: a DELETE with neither Content-Length nor Transfer-Encoding has no body, and the bytes its
    client meant as one are the next request. The DELETE is answered (forwarded: its upstream's answer), the JSON
    behind it refused once with 400, the connection closed: a client reading one reply has the DELETE's, as the RFC
    has it. The refusal's answer, span and log say why (before 2026-12-05: llhttp's `Invalid method encountered`
    alone, so the record of a second call the client never meant named no cause)."""
    wire = f"DELETE {path} HTTP/1.1\r\nHost: x\r\n{AUTH}\r\nContent-Type: application/json\r\n\r\n".encode() + BODY
    lines, got = exchange(proxy.bound.http.port, wire)
    assert len(lines) == 2 and lines[1] == b"HTTP/1.1 400 " and lines[0] != b"HTTP/1.1 400 ", got
    head, _, body = got[got.index(b"HTTP/1.1 400 ") :].partition(b"\r\n\r\n")
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower().decode()] = value.strip().decode("latin-1")
    assert fields["connection"] == "close"
    message = orjson.loads(body)["error"]["message"]
    said = "after a DELETE sent with neither Content-Length nor Transfer-Encoding, which has no body by RFC 9112"
    assert said in message, message
    assert_recorded(otlp, access, fields, 400, "invalid_request", "anonymous")
    assert said in otlp.by_trace(fields["x-trace-id"]).status_message
    assert errors(proxy, "invalid_request") == 1


def test_a_get_before_a_malformed_request_is_not_named(proxy: Any) -> None:
    """A GET's body has no meaning (RFC 9110 section 9.3.1): bytes after one are not said to be its."""
    wire = f"GET /v1/models HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n\r\n".encode() + BODY
    lines, got = exchange(proxy.bound.http.port, wire)
    assert len(lines) == 2 and lines[1] == b"HTTP/1.1 400 ", got
    assert b"RFC 9112" not in got and b"Invalid method" in got


@pytest.mark.parametrize(
    "second",
    [
        b"POST /v1/chat/completions HTTP/1.1\r\nHost x\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
    ids=["invalid header", "two lengths"],
)
def test_a_malformed_request_with_its_own_request_line_after_a_delete_is_not_named_its_body(
    proxy: Any, second: bytes
) -> None:
    """A request whose line was read (a method and a target: a request of its own, pipelined) but whose fields are
    malformed is refused for them alone: not said to be the DELETE's body (helper revconfigurl)."""
    wire = f"DELETE /v1/chat/completions HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n\r\n".encode() + second
    lines, got = exchange(proxy.bound.http.port, wire)
    assert len(lines) == 2 and lines[1] == b"HTTP/1.1 400 ", got
    assert b"malformed HTTP request" in got and b"RFC 9112" not in got, got
