"""`Expect` is a comma list (RFC 9110 10.1.1), sent on one header line or several: 100-continue entries
alone (any case, spaces around them) get one `100 Continue`; anything else in the list gets 417 in the
proxy's error shape, and nothing reaches the model. At the socket."""

from __future__ import annotations

import socket

import orjson
import pytest

from tests.ingress.test_hostile_http import AUTH, BODY, CONFIG, raw, status

HEAD = f"POST /v1/chat/completions HTTP/1.1\r\nAuthorization: {AUTH}\r\nContent-Type: application/json"


@pytest.fixture
def proxied(vllm, make_proxy):  # type: ignore[no-untyped-def]
    server, upstream = vllm
    return server, make_proxy(CONFIG, UPSTREAM=upstream)


def expect_lines(*values: str) -> str:
    return "".join(f"\r\nExpect: {value}" if value else "\r\nExpect:" for value in values)


@pytest.mark.parametrize(
    "values",
    [
        ("100-continue", "100-continue"),  # joined by the header reader: "100-continue,100-continue"
        ("100-Continue ,  100-CONTINUE",),
        ("100-continue", ""),
        (",100-continue,",),
    ],
)
def test_100_continue_entries_alone_get_one_100_continue(proxied, values: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    """The client waits for `100 Continue` before it sends the body. Two lines were joined into one value
    that was not `100-continue`: no 100 came, and the call was refused (400 "unsupported Expect")."""
    server, proxy = proxied
    reply = raw(proxy.bound.http.port, HEAD + expect_lines(*values), wait_for=b"100 Continue")
    assert reply.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"), reply[:200]
    assert reply.count(b"100 Continue") == 1
    assert len(server.data_requests()) == 1


def test_an_empty_expect_asks_for_nothing(proxied) -> None:  # type: ignore[no-untyped-def]
    server, proxy = proxied
    reply = raw(proxy.bound.http.port, HEAD + expect_lines(""))
    assert status(reply) == 200 and b"100 Continue" not in reply, reply[:200]
    assert len(server.data_requests()) == 1


def refusal(reply: bytes) -> dict[str, object]:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 417 Expectation Failed\r\n"), reply[:300]
    assert b"\r\ncontent-type: application/json" in head.lower()
    error = orjson.loads(body)["error"]
    assert error["code"] == "invalid_request" and error["type"] == "invalid_request_error"
    assert error["param"] == "expect" and str(error["message"]).startswith("unsupported Expect: ")
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "values", [("foo",), ("100-continue", "foo"), ("100-continue, foo=bar",), ("100-continue=1",), ("100-continues",)]
)
def test_any_other_expectation_gets_417(proxied, values: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    """The client sends its body without waiting. It got 400 for these; 417 says the expectation is what
    cannot be met."""
    server, proxy = proxied
    refusal(raw(proxy.bound.http.port, HEAD + expect_lines(*values)))
    assert server.data_requests() == []


def test_a_client_waiting_for_100_gets_417_and_the_connection_closes(proxied) -> None:  # type: ignore[no-untyped-def]
    """A client that waits for `100 Continue` and never sends its body gets the 417 and the end of the
    connection (its unsent body cannot be told from a next request), with no 100 before it."""
    server, proxy = proxied
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        head = f"{HEAD}{expect_lines('100-continue', 'foo')}\r\nHost: x\r\nContent-Length: {len(BODY)}\r\n\r\n"
        sock.sendall(head.encode())
        reply = b""
        while piece := sock.recv(65536):
            reply += piece
    refusal(reply)
    assert b"\r\nconnection: close\r\n" in reply.partition(b"\r\n\r\n")[0].lower() + b"\r\n"
    assert server.data_requests() == []
