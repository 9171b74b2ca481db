"""A client that sends `Expect: 100-continue` waits for `100 Continue` before it sends its body (curl does for a body
over 1 MiB). The proxy said `100 Continue` to a call its key alone refuses (none where callers need one, a key no
caller has, an Authorization that is not `Bearer`), read the whole body, and only then refused it: an upload of up to
`limits.max_body_bytes` for nothing, held against `limits.bodies_max_bytes` meanwhile. Such a call is answered at its
head, with no 100, and the connection closes (its body, unsent, cannot be told from a next request); nothing reaches
the upstream. In audit mode nothing is refused: the 100 comes, as before. At the socket."""

from __future__ import annotations

import socket

import orjson
import pytest

from tests.ingress.test_hostile_http import AUTH, BODY, CONFIG

AUDIT = CONFIG.replace("  anonymous: deny\n", "  anonymous: deny\n  mode: audit\n")


def first_answer(port: int, authorization: str | None) -> tuple[bytes, socket.socket]:
    """Send a head asking for `100 Continue` (no body yet); the first answer's head, and the socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = f"Authorization: {authorization}\r\n" if authorization is not None else ""
    sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n{key}Content-Type: application/json\r\n"
                 f"Expect: 100-continue\r\nContent-Length: {len(BODY)}\r\n\r\n".encode())  # fmt: skip
    got = b""
    while b"\r\n\r\n" not in got:
        piece = sock.recv(65536)
        assert piece, f"closed before an answer: {got!r}"
        got += piece
    return got, sock


@pytest.mark.parametrize(
    "authorization, status, code",
    [
        (None, 401, "invalid_api_key"),
        ("Bearer not-a-key", 401, "invalid_api_key"),
        ("Basic eDp5", 400, "invalid_request"),
    ],
    ids=["no-key", "unknown-key", "not-bearer"],
)
def test_a_call_its_key_refuses_is_answered_before_its_body(vllm, make_proxy, authorization, status, code) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    got, sock = first_answer(proxy.bound.http.port, authorization)
    with sock:
        assert got.startswith(b"HTTP/1.1 %d " % status), got[:200]  # not "100 Continue"
        while piece := sock.recv(65536):  # the answer, then the end of the connection
            got += piece
    head, _, body = got.partition(b"\r\n\r\n")
    assert b"\r\nconnection: close" in head.lower()
    assert b"\r\nx-lineage-decision: deny" in head.lower()
    assert orjson.loads(body)["error"]["code"] == code
    assert server.data_requests() == []


def test_a_call_with_a_callers_key_still_gets_100_continue(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    got, sock = first_answer(proxy.bound.http.port, AUTH)
    with sock:
        assert got == b"HTTP/1.1 100 Continue\r\n\r\n", got[:200]
        sock.sendall(BODY)
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    assert len(server.data_requests()) == 1


def test_in_audit_mode_an_unknown_key_still_gets_100_continue(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """Audit mode refuses nothing: the call goes on as `audit-deny`, its body read and forwarded."""
    server, upstream = vllm
    proxy = make_proxy(AUDIT, UPSTREAM=upstream)
    got, sock = first_answer(proxy.bound.http.port, "Bearer not-a-key")
    with sock:
        assert got == b"HTTP/1.1 100 Continue\r\n\r\n", got[:200]
        sock.sendall(BODY)
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200 ") and b"\r\nx-lineage-decision: audit-deny\r\n" in reply, reply[:400]
    assert len(server.data_requests()) == 1
