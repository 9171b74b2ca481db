"""A connection's key is hashed once (`KeyMemo`, `Pipeline.key_digest`), not on each of its calls: a client that sends
another key on the same keep-alive connection is that key's caller from that call on, a malformed key is refused
without taking the place of the one before, and no key is ever compared with one another connection sent."""

from __future__ import annotations

import socket
from typing import Any

import orjson

from tests.conftest import KEYS
from tests.test_caller_keys import CHAT, access, caller_of, keyed  # noqa: F401  (fixtures)
from tests.test_refusals_recorded import AccessLines


def _replies(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """`count` replies read off a keep-alive connection, each by its Content-Length."""
    got: list[tuple[int, dict[str, str], bytes]] = []
    buffer = b""
    while len(got) < count:
        while b"\r\n\r\n" not in buffer:
            piece = sock.recv(65536)
            assert piece, "the connection closed"
            buffer += piece
        top, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = top.split(b"\r\n")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower().decode()] = value.strip().decode("latin-1")
        length = int(fields["content-length"])
        while len(buffer) < length:
            piece = sock.recv(65536)
            assert piece, "the connection closed"
            buffer += piece
        got.append((int(lines[0].split()[1]), fields, buffer[:length]))
        buffer = buffer[length:]
    return got


def _call(sock: socket.socket, authorization: bytes) -> tuple[int, dict[str, str], bytes]:
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: " + authorization + b"\r\nContent-Length: %d\r\n\r\n" % len(CHAT) + CHAT)  # fmt: skip
    return _replies(sock, 1)[0]


def test_a_key_changed_on_a_keep_alive_connection_is_the_new_keys_caller(
    keyed: tuple[Any, Any],  # noqa: F811
    access: AccessLines,  # noqa: F811
) -> None:
    _, proxy = keyed
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        callers = []
        for authorization in (
            b"Bearer " + KEYS["glasses"].encode(),
            b"Bearer " + KEYS["glasses"].encode(),  # the same key again: the same caller
            "Bearer clé-ü".encode(),  # another caller's key, on the same connection
            b"Bearer key-nobody",  # a key no caller owns
            b"Basic " + KEYS["glasses"].encode(),  # malformed: refused, and not kept as the connection's key
            b"Bearer " + KEYS["glasses"].encode(),
        ):
            status, fields, content = _call(sock, authorization)
            code = orjson.loads(content)["error"]["code"] if status != 200 else None
            callers.append((status, code, caller_of(access, fields["x-trace-id"])[0]))
    assert callers == [
        (200, None, "app"),
        (200, None, "app"),
        (200, None, "accented"),
        (401, "invalid_api_key", "(unknown key)"),
        (400, "invalid_request", "anonymous"),  # as before: a malformed key names no caller
        (200, None, "app"),
    ], callers


def test_connections_sending_other_keys_at_once_are_each_their_keys_caller(
    keyed: tuple[Any, Any],  # noqa: F811
    access: AccessLines,  # noqa: F811
) -> None:
    _, proxy = keyed
    port = proxy.bound.http.port
    glasses, accented = b"Bearer " + KEYS["glasses"].encode(), "Bearer clé-ü".encode()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as one,
        socket.create_connection(("127.0.0.1", port), timeout=10) as other,
    ):
        seen = []
        for sock, authorization in ((one, glasses), (other, accented), (one, glasses), (other, accented)):
            status, fields, _ = _call(sock, authorization)
            seen.append((status, caller_of(access, fields["x-trace-id"])[0]))
    assert seen == [(200, "app"), (200, "accented"), (200, "app"), (200, "accented")]
