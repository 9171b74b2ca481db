"""A request asking to upgrade its connection (`Upgrade: h2c`, `CONNECT`) has its Content-Length body read by the
connection itself, not by llhttp (`HttpConnection._take_upgrade_body`). What such a body holds is counted against
`limits.bodies_max_bytes` as any body is, and given back once the request is answered: a client that went on
sending it while the proxy lingered over its answer left it counted for good, and every body after it was refused.
And it is read when its turn comes: behind a full pipeline it never was (408 once `header_timeout_s` passed)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.configs import ONE_UPSTREAM_STORED
from tests.harness import ProxyHandle
from tests.ingress.test_bodies_budget import held
from tests.ingress.test_wire import Replies
from tests.record.test_store_waits import until
from tests.servers.vllm_like import SERVED

CONFIG = ONE_UPSTREAM_STORED + "limits: {max_body_bytes: 1048576, bodies_max_bytes: 2097152, header_timeout_s: 3}\n"
BODY = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "a" * 999_900}]})
UPGRADE = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"


@pytest.fixture
def proxy(vllm, make_proxy) -> Iterator[ProxyHandle]:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    yield make_proxy(CONFIG, UPSTREAM=upstream)


def connections(proxy: ProxyHandle) -> int:
    server = proxy.process._http
    assert server is not None
    return len(server.connections)


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n", 413),  # over max_body_bytes
        (b"GET /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n", 400),  # a body where none is read
    ],
    ids=["too-large", "refused-before-its-body"],
)
def test_an_upgrade_body_sent_after_its_answer_is_not_left_counted(
    proxy: ProxyHandle, head: bytes, status: int
) -> None:
    port = int(proxy.url.rsplit(":", 1)[1])
    for _ in range(2):  # twice past the bound, were it kept counted
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(head + UPGRADE + b"\r\n")
            reply = b""
            while b"\r\n\r\n" not in reply:
                piece = sock.recv(65536)
                assert piece, reply
                reply += piece
            assert int(reply.split(b" ", 2)[1]) == status, reply
            try:  # the rest of the body, while the proxy lingers over its answer (it drops it)
                sock.sendall(b"x" * 1_500_000)
            except OSError:
                pass  # cut already: nothing more was read
        until(lambda: connections(proxy) == 0)
    answer = httpx.post(proxy.url + "/v1/chat/completions", content=BODY, headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text  # not 503 overloaded: the bodies above hold nothing now
    assert held(proxy) == 0


def test_an_upgrade_body_behind_a_full_pipeline_is_read(proxy: ProxyHandle) -> None:
    port = int(proxy.url.rsplit(":", 1)[1])
    body = b'{"model": "%s", "messages": [{"role": "user", "content": "hello"}]}' % SERVED.encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        listings = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n" * 7  # with the upgrade request, the pipeline is full
        sock.sendall(
            listings
            + b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + UPGRADE
            + b"Content-Length: %d\r\n\r\n" % len(body)
        )
        replies = Replies(sock)
        for _ in range(7):
            assert replies.next()[0] == 200
        sock.sendall(body)  # once the requests before it are answered
        status, _, answer = replies.next("POST")
        assert status == 200, answer  # not 408: its body was read
        assert orjson.loads(answer)["model"] == SERVED
