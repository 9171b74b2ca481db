"""What the upstream is told about the client. A caller's `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`,
`X-Real-IP` and `Forwarded` reached the upstream as the caller wrote them; uvicorn-based model servers (vLLM, MLServer)
trust those from 127.0.0.1 by default (`--forwarded-allow-ips`), so their logs and any address-based logic saw an
address the caller chose. Now, as nginx's usual reverse-proxy config: `X-Forwarded-For` is the caller's list with the
peer's real address appended, `X-Forwarded-Proto` the listener's scheme, the others dropped. At the socket: what the
upstream received."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.certs import Authority
from tests.configs import ONE_GRPC_UPSTREAM
from tests.harness import LoopThread, ProxyHandle
from tests.servers.raw_origin import proxy_in_front, request_body
from tests.test_caller_keys import SERVICE, _infer

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: engine
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: engine
policy:
  anonymous: allow
  default_purpose: assistant
lineage:
  store: ${STORE}
"""
BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
CHAT = (b'{"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0, '
        b'"message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]}')  # fmt: skip
CLAIMS = (b"X-Forwarded-For: 203.0.113.9\r\nx-forwarded-for: 198.51.100.7\r\nX-Forwarded-Proto: https\r\n"
          b"X-Forwarded-Host: evil.example\r\nX-Real-IP: 203.0.113.9\r\nForwarded: for=203.0.113.9;proto=https\r\n")  # fmt: skip

HEADS: list[bytes] = []  # the heads the upstream received


async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    HEADS.append(head)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(CHAT), CHAT)
    )
    await writer.drain()
    return True


def fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """The head's fields, names lower-case."""
    out = []
    for line in head.split(b"\r\n")[1:]:
        if line:
            name, _, value = line.partition(b":")
            out.append((name.strip().lower(), value.strip()))
    return out


def send(port: int, extra: bytes, source: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> bytes:
    """One call from `source`, over a raw socket (TLS with `tls`); the reply's head."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
    with sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
                     b"Content-Length: %d\r\n\r\n%s" % (extra, len(BODY), BODY))  # fmt: skip
        got = b""
        while b"\r\n\r\n" not in got:
            piece = sock.recv(65536)
            assert piece, got
            got += piece
    return got


@pytest.fixture
def proxy(make_proxy: Any, loop_thread: LoopThread) -> Iterator[ProxyHandle]:
    HEADS.clear()
    with proxy_in_front(loop_thread, make_proxy, CONFIG, answer) as handle:
        yield handle


def told(head: bytes) -> dict[bytes, list[bytes]]:
    """What the upstream was told of the client: the values of the fields that say it, by name."""
    out: dict[bytes, list[bytes]] = {}
    for name, value in fields(head):
        if name in (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-real-ip", b"forwarded"):
            out.setdefault(name, []).append(value)
    return out


def test_the_callers_claims_are_not_passed_off_as_the_client(proxy: ProxyHandle) -> None:
    reply = send(proxy.bound.http.port, CLAIMS, source="127.0.0.2")
    assert reply.startswith(b"HTTP/1.1 200 "), reply
    # the caller's list, then the real peer: the rightmost entry a server does not trust is the real one
    assert told(HEADS[-1]) == {b"x-forwarded-for": [b"203.0.113.9, 198.51.100.7, 127.0.0.2"],
                               b"x-forwarded-proto": [b"http"]}  # fmt: skip


def test_a_caller_that_says_nothing_gets_its_address_told(proxy: ProxyHandle) -> None:
    assert send(proxy.bound.http.port, b"").startswith(b"HTTP/1.1 200 ")
    assert send(proxy.bound.http.port, b"X-Real-IP: 10.1.2.3\r\n", source="127.0.0.3").startswith(b"HTTP/1.1 200 ")
    assert told(HEADS[0]) == {b"x-forwarded-for": [b"127.0.0.1"], b"x-forwarded-proto": [b"http"]}
    assert told(HEADS[1]) == {b"x-forwarded-for": [b"127.0.0.3"], b"x-forwarded-proto": [b"http"]}


def test_a_list_the_connection_field_names_is_dropped_whole(proxy: ProxyHandle) -> None:
    """`Connection: X-Forwarded-For` makes the caller's list hop-by-hop: the peer's address alone."""
    sent = b"Connection: keep-alive, X-Forwarded-For\r\nX-Forwarded-For: 203.0.113.9\r\n"
    assert send(proxy.bound.http.port, sent).startswith(b"HTTP/1.1 200 ")
    assert told(HEADS[-1]) == {b"x-forwarded-for": [b"127.0.0.1"], b"x-forwarded-proto": [b"http"]}


def test_over_tls_the_scheme_is_https(make_proxy: Any, loop_thread: LoopThread, tmp_path: Path) -> None:
    authority = Authority(tmp_path)
    pair = authority.issue("proxy", common_name="proxy", server=True)
    config = CONFIG.replace("listen: {http: 127.0.0.1:0}",
                            f'listen:\n  http: 127.0.0.1:0\n  tls: {{cert: "{pair.cert}", key: "{pair.key}"}}')  # fmt: skip
    HEADS.clear()
    with proxy_in_front(loop_thread, make_proxy, config, answer) as proxy:
        context = ssl.create_default_context(cafile=str(authority.pair.cert))
        assert send(proxy.bound.http.port, CLAIMS, tls=context).startswith(b"HTTP/1.1 200 ")
    assert told(HEADS[-1]) == {b"x-forwarded-for": [b"203.0.113.9, 198.51.100.7, 127.0.0.1"],
                               b"x-forwarded-proto": [b"https"]}  # fmt: skip


class _Kept(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A gRPC upstream answering every unary method with an empty message, keeping each call's metadata as a list."""

    def __init__(self) -> None:
        self.metadata: list[list[tuple[str, str | bytes]]] = []

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(self._answer)

    def _answer(self, request: bytes, context: Any) -> bytes:
        self.metadata.append(list(context.invocation_metadata()))
        return b""


@pytest.mark.parametrize("recorded", [True, False])
@pytest.mark.parametrize("handed", [False, True])
def test_over_grpc_the_peer_is_appended_and_the_claims_dropped(make_proxy: Any, handed: bool, recorded: bool) -> None:
    """To a Triton that hands its model no metadata, the caller's list and the peer; to one that hands it all of it
    (`headers_to_model`, the default), no `x-forwarded-for` at all: it would reach the model as data. The peer is the
    one the call's record read (`logging.client_address`), or read for this alone when the record keeps none."""
    upstream = _Kept()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((upstream,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        config = ONE_GRPC_UPSTREAM + "policy: {anonymous: allow, default_purpose: assistant}\n"
        if not recorded:
            config += "logging: {client_address: false}\n"
        if not handed:
            config = config.replace("    protocol: oip\n", "    protocol: oip\n    headers_to_model: false\n")
        proxy = make_proxy(config, wait="none", UPSTREAM=f"127.0.0.1:{port}")
        sent = (("x-forwarded-for", "203.0.113.9, 198.51.100.7"), ("x-real-ip", "203.0.113.9"),
                ("x-forwarded-proto", "https"), ("x-forwarded-host", "evil.example"), ("forwarded", "for=203.0.113.9"))  # fmt: skip
        with grpc.insecure_channel(proxy.grpc) as channel:
            infer = channel.unary_unary(SERVICE + "ModelInfer")
            infer(_infer(), metadata=sent, timeout=10)
            infer(_infer(), timeout=10)
        calls = [one for one in upstream.metadata if any(key == "traceparent" for key, _ in one)]  # not the probes
        claims = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip", "forwarded"}
        told = [[(key, value) for key, value in one if key in claims] for one in calls]
        if handed:
            assert told == [[("x-forwarded-proto", "http")], [("x-forwarded-proto", "http")]]
        else:
            assert told == [
                [("x-forwarded-for", "203.0.113.9, 198.51.100.7, 127.0.0.1"), ("x-forwarded-proto", "http")],
                [("x-forwarded-for", "127.0.0.1"), ("x-forwarded-proto", "http")],
            ]
    finally:
        server.stop(0)


def test_addresses_are_told_as_nginx_tells_them() -> None:
    """An IPv6 peer bare (no brackets, no port), as nginx's `$remote_addr`; one the socket has none for, `unknown`."""
    from proxy.ingress.grpc import _client, _client_address
    from proxy.ingress.wire import forwarded_pieces

    assert forwarded_pieces(("::1", 5000, 0, 0), True) == (
        b"X-Forwarded-For: ::1\r\nX-Forwarded-Proto: https\r\n",
        b", ::1\r\nX-Forwarded-Proto: https\r\n",
        b"X-Forwarded-Proto: https\r\n",  # (to an upstream whose model is handed the fields: no address)
    )
    assert forwarded_pieces(None, False)[0] == b"X-Forwarded-For: unknown\r\nX-Forwarded-Proto: http\r\n"
    assert forwarded_pieces("", False)[1] == b", unknown\r\nX-Forwarded-Proto: http\r\n"
    assert _client_address(_client("ipv4:10.0.0.5:40000")) == "10.0.0.5"
    assert _client_address(_client("ipv6:%5B::1%5D:40000")) == "::1"
    assert _client_address(_client("ipv6:[fe80::1]:40000")) == "fe80::1"
    assert _client_address(_client("unix:/tmp/x.sock")) == "unknown"
