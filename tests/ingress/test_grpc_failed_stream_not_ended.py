"""A stream whose client cancelled it, left, or sent a message over `limits.max_body_bytes` is cancelled upstream, never
ended: the upstream must not take the messages that came before as all the client meant to send (an upload cut
short read as whole). grpc.aio's `read` gives EOF for such a failed call as for a client's end of its messages, and
the proxy passed that end on (END_STREAM) before it cancelled the upstream's call (RST_STREAM), every time.

The upstream here reads the HTTP/2 frames the proxy's channel sends and answers none of its calls: the wire, not a
gRPC server's reading of it (grpc's Python servers, too, read a cancel as an end at first)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.configs import ONE_GRPC_UPSTREAM
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_grpc import _request  # a small ModelInferRequest
from tests.servers.h2_wire import END, RESET, H2Listener

CONFIG = (
    ONE_GRPC_UPSTREAM
    + """
policy: {anonymous: allow, default_purpose: assistant, passthrough: forward}
limits: {max_body_bytes: 4096}
"""
)
UPLOAD, INFER = "/test.Upload/Put", "/inference.GRPCInferenceService/ModelStreamInfer"
PIECE = b"a" * 100  # a message the proxy passes on: a DATA frame of its 5-byte gRPC prefix and itself


@pytest.fixture
def wire(loop_thread: LoopThread, make_proxy: Any) -> Iterator[tuple[H2Listener, ProxyHandle]]:
    upstream = H2Listener()
    try:
        proxy = make_proxy(CONFIG, wait="none", UPSTREAM=f"127.0.0.1:{upstream.port}")
        yield upstream, proxy
        loop_thread.run(proxy.process.stop())
    finally:
        upstream.close()


def _data(message: bytes) -> str:
    return f"DATA {len(message) + 5}"


def _messages(first: bytes, released: threading.Event, how: str) -> Iterator[bytes]:
    """`first`, then, once `released`, a message over max_body_bytes (grpc fails the call, RESOURCE_EXHAUSTED) when
    `how` says so; then the client's end of them."""
    yield first
    released.wait(10)
    if how == "too-large":
        yield b"b" * 5000


@pytest.mark.parametrize("method", [UPLOAD, INFER], ids=["passthrough", "stream-infer"])
@pytest.mark.parametrize("how", ["cancelled", "too-large", "ended"])
def test_a_stream_its_client_did_not_end_is_cancelled_upstream_never_ended(
    wire: tuple[H2Listener, ProxyHandle], method: str, how: str
) -> None:
    upstream, proxy = wire
    first = PIECE if method == UPLOAD else _request()
    seen: set[int] = set()
    with grpc.insecure_channel(proxy.grpc) as channel:
        for _ in range(5):
            released = threading.Event()
            call = channel.stream_stream(method)(_messages(first, released, how), timeout=10)
            stream = upstream.wait_for_stream(seen, _data(first))
            if how == "cancelled":
                call.cancel()
            released.set()
            if how == "ended":  # the client's own end goes on, then its cancel (the upstream never answers)
                assert upstream.wait_for(stream, END) == ["HEADERS", _data(first), "DATA 0", END]
                call.cancel()
            frames = upstream.wait_for(stream, RESET)
            if how == "too-large":
                assert call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            if how != "ended":
                assert frames == ["HEADERS", _data(first), RESET]
