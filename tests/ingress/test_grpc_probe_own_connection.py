"""The proxy asks a gRPC upstream's ModelMetadata for its readiness (/readyz, `lineage_proxy_upstream_up`) and its
checkpoints. It asked on the channel its calls take, one HTTP/2 connection: an upstream allowing few streams a
connection (`grpc.max_concurrent_streams`) whose streams all held busy calls kept the probe waiting in the channel
behind them, until it timed out (10 s) and the upstream was called down (/readyz 503) while it served. The probe now
has a connection of its own to each upstream."""

from __future__ import annotations

import asyncio
import threading
from concurrent import futures
from typing import Any

import grpc
import grpc.aio
from tritonclient.grpc import service_pb2

from proxy.protocols.oip_grpc import MODEL_METADATA
from tests.harness import LoopThread
from tests.ingress.test_grpc_request_arrival_bounded import INFER, _request

STREAMS = 2  # the upstream's streams a connection
CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams:
  - {name: triton, grpc: "${UPSTREAM}", protocol: oip, discovery_interval_s: 0.2, timeout_s: 60}
routes:
  - {model: simple, upstream: triton}
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: null}
"""


class Busy(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Triton's ModelMetadata, answered at once and counted; ModelInfer held until `released`."""

    def __init__(self) -> None:
        self.asked = 0
        self.held = 0
        self.cond = threading.Condition()
        self.released = asyncio.Event()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == MODEL_METADATA:
            return grpc.unary_unary_rpc_method_handler(self._metadata)
        if details.method == INFER:
            return grpc.unary_unary_rpc_method_handler(self._infer)
        return None

    async def _metadata(self, request: bytes, context: Any) -> bytes:
        with self.cond:
            self.asked += 1
            self.cond.notify_all()
        name = service_pb2.ModelMetadataRequest.FromString(request).name
        answer: bytes = service_pb2.ModelMetadataResponse(
            name=name, versions=["1"], platform="onnx"
        ).SerializeToString()
        return answer

    async def _infer(self, request: bytes, context: Any) -> bytes:
        with self.cond:
            self.held += 1
            self.cond.notify_all()
        await self.released.wait()
        return b""


def test_busy_calls_holding_every_stream_of_the_connection_leave_the_probe_its_own(
    loop_thread: LoopThread, make_proxy: Any
) -> None:
    upstream = Busy()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(options=[("grpc.max_concurrent_streams", STREAMS)])
        server.add_generic_rpc_handlers((upstream,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = loop_thread.run(start())
    pool = futures.ThreadPoolExecutor(STREAMS)
    try:
        proxy = make_proxy(CONFIG, wait="reachable", UPSTREAM=f"127.0.0.1:{port}")
        with grpc.insecure_channel(proxy.grpc) as channel:
            calls = [pool.submit(channel.unary_unary(INFER), _request(), timeout=60) for _ in range(STREAMS)]
            with upstream.cond:
                assert upstream.cond.wait_for(lambda: upstream.held == STREAMS, 10), upstream.held
                asked = upstream.asked
                # the rounds go on (every 0.2 s), each answered at once: none waits behind the busy calls (it waited
                # until one ended, and timed out at 10 s, the upstream then called down)
                reached = upstream.cond.wait_for(lambda: upstream.asked >= asked + 3, 5)
            assert reached, f"ModelMetadata asked {upstream.asked - asked} time(s) in 5 s while the calls were busy"
            assert proxy.process.book.reachable["triton"]
            loop_thread.loop.call_soon_threadsafe(upstream.released.set)
            for call in calls:
                assert call.result(10) == b""
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        loop_thread.loop.call_soon_threadsafe(upstream.released.set)
        loop_thread.run(server.stop(None))
