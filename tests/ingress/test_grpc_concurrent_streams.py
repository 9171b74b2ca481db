"""`limits.max_concurrent_streams` bounds the calls one gRPC connection holds at once (HTTP/2's
SETTINGS_MAX_CONCURRENT_STREAMS, which grpc sends in its first SETTINGS): a client's further calls wait in its channel
until one ends. The listener's server was started without a bound: one client connection held 3,000 calls at once,
each with its upstream call and memory, where the HTTP listener serves one call a connection at a time."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc_handshake_bounded import PREFACE
from tests.servers.h2_wire import frame
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_reload import reload

CHECK = "/grpc.health.v1.Health/Check"
SERVING = b"\x08\x01"
HELD = b"\x0a\x04held"  # HealthCheckRequest{service: "held"}: held by the upstream until released
SETTINGS, MAX_CONCURRENT_STREAMS = 4, 3
DEFAULT = 128  # limits.max_concurrent_streams, unset
CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams: [{name: triton, grpc: "${UPSTREAM}", protocol: oip, checkpoint: ck}]
routes: [{model: "*", upstream: triton}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: null}
limits: {idle_timeout_s: 60, header_timeout_s: 60LIMIT}
"""


def advertised(port: int) -> dict[int, int]:
    """The settings of the listener's first SETTINGS frame on a new connection, by identifier."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(10.0)
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0, b""))

        def exactly(n: int) -> bytes:
            data = b""
            while len(data) < n:
                more = sock.recv(n - len(data))
                assert more, "the listener closed the connection"
                data += more
            return data

        head = exactly(9)
        assert head[3] == SETTINGS and head[4] == 0, head  # the server's own SETTINGS come first
        payload = exactly(int.from_bytes(head[:3], "big"))
    return {int.from_bytes(payload[i : i + 2], "big"): int.from_bytes(payload[i + 2 : i + 6], "big")
            for i in range(0, len(payload), 6)}  # fmt: skip


class Holding(grpc.GenericRpcHandler):  # type: ignore[misc]
    """grpc.health.v1's Check: SERVING; a check of the service "held" is held until `release`."""

    def __init__(self) -> None:
        self.arrived = 0
        self.changed = asyncio.Condition()
        self.released = asyncio.Event()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.unary_unary_rpc_method_handler(self._check) if details.method == CHECK else None

    async def _check(self, request: bytes, context: Any) -> bytes:
        if request == HELD:
            async with self.changed:
                self.arrived += 1
                self.changed.notify_all()
            await self.released.wait()
        return SERVING

    async def wait_arrived(self, n: int) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: self.arrived >= n), 10)

    async def release(self) -> None:
        self.released.set()


async def _made() -> Holding:
    return Holding()  # its Condition and Event on the test loop


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[ProxyHandle, Holding]]:
    upstream = loop_thread.run(_made())
    with proxied(loop_thread, otlp, make_proxy, CONFIG.replace("LIMIT", ""), upstream) as handle:
        yield handle, upstream


def test_a_grpc_connection_advertises_max_concurrent_streams(proxy: tuple[ProxyHandle, Holding]) -> None:
    handle, _ = proxy
    assert advertised(handle.bound.grpc.port).get(MAX_CONCURRENT_STREAMS) == DEFAULT


def test_a_call_past_max_concurrent_streams_on_one_connection_waits_for_one_to_end(
    proxy: tuple[ProxyHandle, Holding], loop_thread: LoopThread
) -> None:
    handle, upstream = proxy
    own = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own
    with grpc.insecure_channel(handle.grpc) as channel, grpc.insecure_channel(handle.grpc, options=own) as other:
        check = channel.unary_unary(CHECK)
        calls = [check.future(HELD, timeout=30) for _ in range(DEFAULT + 1)]
        loop_thread.run(upstream.wait_arrived(DEFAULT))
        # a call on another connection goes through meanwhile: the bound is a connection's, not the listener's
        assert other.unary_unary(CHECK)(b"", timeout=10) == SERVING
        assert upstream.arrived == DEFAULT, f"{upstream.arrived} calls ran at once on one connection"
        assert not any(call.done() for call in calls)
        loop_thread.run(upstream.release())  # those running end: the last runs, and ends well
        assert [call.result() for call in calls] == [SERVING] * (DEFAULT + 1)
    assert upstream.arrived == DEFAULT + 1


def test_a_reload_changing_max_concurrent_streams_bounds_new_connections(
    make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    proxy = make_proxy(CONFIG.replace("LIMIT", "").replace("${UPSTREAM}", "127.0.0.1:9"), wait="none")
    port = proxy.bound.grpc.port
    assert advertised(port).get(MAX_CONCURRENT_STREAMS) == DEFAULT
    path = tmp_path / "reloaded.yaml"
    path.write_text(CONFIG.replace("LIMIT", ", max_concurrent_streams: 1").replace("${UPSTREAM}", "127.0.0.1:9"))
    assert reload(proxy, loop_thread, path)

    async def settled() -> None:
        await asyncio.wait_for(proxy.process.settled(), 10)

    loop_thread.run(settled())
    assert advertised(port).get(MAX_CONCURRENT_STREAMS) == 1
