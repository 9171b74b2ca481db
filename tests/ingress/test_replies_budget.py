"""A reply read whole before it is sent (a Content-Length up to `limits.buffer_max_bytes`, 16 MiB) is held in memory
until its client takes it: counted with the request bodies against `limits.bodies_max_bytes`, and, past it, passed
on as it arrives, with back-pressure, as a larger reply is. Uncounted, clients that asked for such replies (an
embeddings call of a few hundred inputs) on many connections and read nothing held 16 MiB of the proxy's memory a
connection, for the send timeout (60 s) each: 20 connections took 515 MB, `limits.max_connections` (4096) 64 GiB,
where the request bodies of all connections together are held to 1 GiB."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.ingress.test_bodies_budget import held  # the metric of what is held
from tests.record.test_store_waits import until
from tests.servers.threads import ConnectionThreads

REPLY = (
    b'{"object":"list","model":"m","data":[{"object":"embedding","index":0,"embedding":"' + b"A" * (12 << 20) + b'"}]}'
)
BUDGET = 16 << 20  # one such reply fits, two do not
REQUEST = b'{"model":"m","input":["x"]}'


class Answering(ConnectionThreads):
    """An HTTP upstream answering every request with `REPLY`; its port."""

    def answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            try:
                while True:
                    while b"\r\n\r\n" not in data:
                        more = conn.recv(65536)
                        if not more:
                            return
                        data += more
                    head, _, data = data.partition(b"\r\n\r\n")
                    fields = head.split(b"\r\n")
                    length = next(
                        (int(f.split(b":")[1]) for f in fields if f.lower().startswith(b"content-length:")), 0
                    )
                    while len(data) < length:
                        data += conn.recv(65536)
                    data = data[length:]
                    body = REPLY if fields[0].startswith(b"POST ") else b'{"object":"list","data":[]}'  # (its metadata)
                    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(
                        body
                    )
                    conn.sendall(head + body)
            except OSError:
                return


@pytest.fixture
def upstream() -> Iterator[Answering]:
    server = Answering()
    yield server
    server.close()


def ask(port: int) -> socket.socket:
    """An embeddings request on a connection of its own whose client reads nothing yet (the kernel's buffers hold a few
    MiB of a reply at most: the rest waits in the proxy)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"POST /v1/embeddings HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(REQUEST), REQUEST)
    )
    return sock


def reply_body(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head[:200]
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        more = sock.recv(1 << 20)
        assert more, "the reply broke off"
        body += more
    return body


def test_replies_held_unread_are_bounded_by_the_bodies_budget(
    upstream: Answering, make_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = make_proxy(
        f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: u, url: "http://127.0.0.1:{upstream.port}", protocol: openai, checkpoint: ck}}]
routes: [{{model: "*", upstream: u}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: null}}
limits: {{bodies_max_bytes: {BUDGET}, max_body_bytes: 1048576}}
""",
        wait="none",
    )
    port = proxy.bound.http.port
    first = ask(port)  # its reply read whole, held while its client reads nothing
    second: socket.socket | None = None
    try:
        try:
            until(lambda: held(proxy) >= len(REPLY), timeout=10)
        except AssertionError:
            pytest.fail(f"a reply held for a client that reads nothing is not counted ({held(proxy)} bytes held)")
        second = ask(port)  # past the budget: passed on as it arrives
        assert reply_body(second) == REPLY
        assert held(proxy) <= BUDGET
        assert "refusing further bodies" not in caplog.text  # a reply passed on as it arrives refuses nothing
        assert reply_body(first) == REPLY
        until(lambda: held(proxy) == 0, timeout=10)  # given back once taken
    finally:
        first.close()
        if second is not None:
            second.close()
