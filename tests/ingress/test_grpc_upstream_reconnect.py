"""A gRPC upstream that was down is reached again within about a second of coming back, as the OTLP exporter's
collector is (`proxy.record.export.GRPC_CHANNEL_OPTIONS`). The proxy's channel to an upstream kept grpc's default
reconnect backoff (1 s, x1.6 per failed attempt, up to 120 s): after an outage its attempts thinned out (0, 1.1, 2.7,
5.4 s, ...), and every call between two attempts was answered UNAVAILABLE with no try, so a model server restarted
beside the sidecar (a rolling update, an OOM kill) stayed unreachable through the proxy for seconds to minutes after
it served again, while it was reachable directly.

The upstream's address is held by a listener that accepts each connection and closes it at once (a server not up
yet): every attempt of the proxy's channel is one accept. Calls go on through the proxy all along; the longest
wait between two attempts is what a client waits after the upstream comes back. Then a real upstream takes the
address, and a call goes through."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from typing import Any

import grpc
import grpc.aio

from tests.harness import LoopThread
from tests.ingress.test_grpc import _request  # a small ModelInferRequest
from tests.ingress.test_grpc_streams import CONFIG, SERVICE
from tests.servers.otlp_receiver import OtlpReceiver

INFER = SERVICE + "ModelInfer"
DOWN_S = 9.0  # how long the upstream stays down: grpc's default backoff has grown past 2.5 s by then
MOST_S = 2.0  # the longest wait between two attempts allowed (a backoff capped at 1 s, with its 20 % jitter, and slack)


class Refusing:
    """A listener on port 0 that accepts every connection and closes it at once, noting when (`accepts`)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.05)  # so that `close` ends the thread
        self.port: int = self.sock.getsockname()[1]
        self.accepts: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepts.append(time.monotonic())
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class Answering(grpc.GenericRpcHandler):  # type: ignore[misc]
    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.unary_unary_rpc_method_handler(self._infer) if details.method == INFER else None

    async def _infer(self, request: bytes, context: Any) -> bytes:
        return b""


def _code(call: Any) -> grpc.StatusCode:
    try:
        call(_request(), timeout=5)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_an_upstream_back_from_an_outage_is_reached_within_a_second_or_so(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any
) -> None:
    down = Refusing()
    server: grpc.aio.Server | None = None
    try:
        proxy = make_proxy(CONFIG, wait="none", UPSTREAM=f"127.0.0.1:{down.port}", OTLP=f"http://127.0.0.1:{otlp.port}")
        with grpc.insecure_channel(proxy.grpc) as channel:
            call = channel.unary_unary(INFER)
            start = time.monotonic()
            codes = set()
            while time.monotonic() - start < DOWN_S:  # a client calling on, ten times a second
                codes.add(_code(call))
                time.sleep(0.1)
            end = time.monotonic()
            down.close()
            assert codes == {grpc.StatusCode.UNAVAILABLE}
            attempts = [start, *down.accepts, end]
            waits = [round(later - earlier, 2) for earlier, later in itertools.pairwise(attempts)]
            assert max(waits) <= MOST_S, f"the proxy's channel tried the upstream after waits of {waits} s"

            async def serve() -> grpc.aio.Server:  # the upstream, back on its address
                up = grpc.aio.server()
                up.add_generic_rpc_handlers((Answering(),))
                assert up.add_insecure_port(f"127.0.0.1:{down.port}") == down.port
                await up.start()
                return up

            server = loop_thread.run(serve())
            back = time.monotonic()
            while _code(call) is not grpc.StatusCode.OK:
                assert time.monotonic() - back <= MOST_S + 1, "the upstream, back, was not reached through the proxy"
                time.sleep(0.05)
            loop_thread.run(proxy.process.stop())
    finally:
        down.close()
        if server is not None:
            loop_thread.run(server.stop(None))
