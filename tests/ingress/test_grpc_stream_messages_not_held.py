"""A ModelStreamInfer stream holds no message once it has passed it on: its first request (read before the stream is
decided), the request it last forwarded and the reply it last relayed were kept for as long as the stream stayed open,
so streams a client opens, feeds one large message each and leaves open held up to `limits.max_body_bytes` (and a
reply of any size) each, for their lifetime, where grpc bounds what it buffers by a message in transit."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio
import pytest
from tritonclient.grpc import service_pb2

from tests.configs import ONE_GRPC_UPSTREAM
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied

STREAM = "/inference.GRPCInferenceService/ModelStreamInfer"
CONFIG = (
    ONE_GRPC_UPSTREAM
    + """
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""
)
STREAMS = 6
SIZE = 2 << 20  # a request's and a reply's tensor: under grpc's default receive limit of 4 MiB
UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def request() -> bytes:
    built = service_pb2.ModelInferRequest(model_name="m")
    built.inputs.add(name="A", datatype="UINT8", shape=[SIZE])
    built.raw_input_contents.append(bytes(SIZE))
    data: bytes = built.SerializeToString()
    return data


def reply() -> bytes:
    built = service_pb2.ModelStreamInferResponse()
    built.infer_response.model_name = "m"
    built.infer_response.outputs.add(name="B", datatype="UINT8", shape=[SIZE])
    built.infer_response.raw_output_contents.append(bytes(SIZE))
    data: bytes = built.SerializeToString()
    return data


class Upstream(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Answers each request of a stream with a reply as large, keeping neither, until its client ends it."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.stream_stream_rpc_method_handler(self._stream) if details.method == STREAM else None

    async def _stream(self, requests: Any, context: Any) -> None:
        while await context.read() is not grpc.aio.EOF:  # each request dropped as it is read
            await context.write(reply())


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: Any, make_proxy: Any) -> Iterator[Any]:
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Upstream(), UNLIMITED) as handle:
        yield handle


async def exchange(call: Any) -> None:
    """One request to the stream and its reply, neither kept."""
    await call.write(request())
    answer = await call.read()
    assert answer is not grpc.aio.EOF and len(answer) > SIZE


def test_streams_left_open_hold_none_of_the_messages_they_passed_on(proxy: Any, loop_thread: LoopThread) -> None:
    async def run() -> int:
        async with grpc.aio.insecure_channel(proxy.grpc, options=UNLIMITED) as channel:
            await exchange(channel.stream_stream(STREAM)(timeout=30))  # the first call's one-time allocations
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                calls = [channel.stream_stream(STREAM)(timeout=30) for _ in range(STREAMS)]
                for call in calls:  # two requests each, two replies: each stream then waits, left open
                    await exchange(call)
                    await exchange(call)
                gc.collect()
                held = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            for call in calls:
                await call.done_writing()
                assert await call.code() == grpc.StatusCode.OK
            return held

    held = loop_thread.run(run(), timeout=60)
    # what they passed on: STREAMS * 4 messages of SIZE; kept until each stream ended, that was 3 of them a stream
    assert held < STREAMS * SIZE // 2, f"{held / 2**20:.1f} MiB held by {STREAMS} open streams"
