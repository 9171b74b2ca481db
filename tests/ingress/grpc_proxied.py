"""A grpc.aio upstream on the test loop with the proxy in front of it: what the gRPC ingress tests share."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
import grpc.aio
import pytest
import tritonclient.grpc as grpcclient

from proxy.logs import ACCESS
from tests.harness import LoopThread, ProxyHandle
from tests.record.test_sinks import Sink
from tests.servers.otlp_receiver import OtlpReceiver, ReceivedSpan

INFER = "/inference.GRPCInferenceService/ModelInfer"


class Answering(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A model answering each ModelInfer with `reply` (a serialized ModelInferResponse; none, empty); the requests
    that reached it counted."""

    def __init__(self, reply: bytes = b"") -> None:
        self.reply = reply
        self.reached = 0

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.unary_unary_rpc_method_handler(self._infer) if details.method == INFER else None

    async def _infer(self, request: bytes, context: Any) -> bytes:
        self.reached += 1
        return self.reply


@contextlib.contextmanager
def proxied(
    loop_thread: LoopThread,
    otlp: OtlpReceiver,
    make_proxy: Callable[..., ProxyHandle],
    config: str,
    handler: grpc.GenericRpcHandler,
    options: Sequence[tuple[str, Any]] = (),
) -> Iterator[ProxyHandle]:
    """`handler` served by a grpc.aio server (with `options`) on port 0, and a proxy started on `config` with
    `${UPSTREAM}` its address and `${OTLP}` the receiver's; the proxy stops before its upstream does, so no
    call fails for that reason."""

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(options=list(options))
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = loop_thread.run(start())
    try:
        proxy = make_proxy(config, wait="none", UPSTREAM=f"127.0.0.1:{port}", OTLP=f"http://127.0.0.1:{otlp.port}")
        yield proxy
        loop_thread.run(proxy.process.stop())
    finally:
        loop_thread.run(server.stop(None))


@contextlib.contextmanager
def proxied_recording(
    loop_thread: LoopThread,
    otlp: OtlpReceiver,
    make_proxy: Callable[..., ProxyHandle],
    config: str,
    handler: grpc.GenericRpcHandler,
) -> Iterator[tuple[ProxyHandle, Sink]]:
    """`proxied`, and a sink given each call's record as it ends."""
    with proxied(loop_thread, otlp, make_proxy, config, handler) as handle:
        records = Sink("records", durable=True, holds=False)
        handle.process.runtime.sinks.swap(records.name, records)  # type: ignore[arg-type]
        yield handle, records


@contextlib.contextmanager
def triton_client(
    loop_thread: LoopThread,
    otlp: OtlpReceiver,
    make_proxy: Callable[..., ProxyHandle],
    config: str,
    handler: grpc.GenericRpcHandler,
) -> Iterator[Any]:
    """A tritonclient gRPC client of the proxy `proxied` starts in front of `handler`, closed after."""
    with proxied(loop_thread, otlp, make_proxy, config, handler) as proxy:
        client = grpcclient.InferenceServerClient(proxy.grpc)
        try:
            yield client
        finally:
            client.close()


def traced(n: int, base: int) -> tuple[str, str]:
    """The trace id of a test's `n`th call (a test module's ids start at `base`), and its `traceparent`."""
    trace_id = f"{base + n:032x}"
    return trace_id, f"00-{trace_id}-00000000000000a1-01"


def recorded(otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture, trace_id: str) -> tuple[ReceivedSpan, Any]:
    """The call's span and its one access line (written in the same pass as the span)."""
    span = otlp.by_trace(trace_id)
    lines = [r for r in caplog.records if r.name == ACCESS and getattr(r, "trace_id", None) == trace_id]
    assert len(lines) == 1, lines
    return span, lines[0]
