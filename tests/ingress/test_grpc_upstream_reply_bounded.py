"""An upstream's reply message had no size limit on the proxy's channels (`grpc.max_receive_message_length` -1): grpc
reads a message whole before the proxy sees it, so an upstream (buggy or hostile) answering a ModelInfer with a huge
message had the proxy hold all of it. The channels now take a reply message of at most limits.grpc_max_reply_bytes
(max_body_bytes unless set); past it the call ends RESOURCE_EXHAUSTED, as grpc answers a message over its limit, with
a message naming the limit, and is recorded as failed (`reply_too_large`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from tritonclient.grpc import service_pb2

from proxy.config import Limits, parse
from proxy.errors import ConfigError
from proxy.logs import ACCESS
from proxy.transport.grpc_channels import reply_limit
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc_request_arrival_bounded import INFER, STREAM_INFER
from tests.ingress.test_grpc_too_large import CONFIG as TOO_LARGE_CONFIG
from tests.ingress.test_grpc_too_large import LOAD
from tests.servers.otlp_receiver import OtlpReceiver

MIB = 1 << 20
CONFIG = TOO_LARGE_CONFIG.replace("limits: {max_body_bytes: 4096}", "limits: {max_body_bytes: 1048576}")
BIG = b"\x01" * (2 * MIB)  # over max_body_bytes: over the reply limit it sets by default
SMALL = b"\x01" * (MIB // 2)


class Answering(grpc.GenericRpcHandler):  # type: ignore[misc]
    """An OIP upstream answering each call, unary or streaming, with the message its request names: `big` or not."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == INFER:
            return grpc.unary_unary_rpc_method_handler(self._unary)
        if details.method in (STREAM_INFER, LOAD):
            return grpc.stream_stream_rpc_method_handler(self._stream)
        return None

    async def _unary(self, request: bytes, context: Any) -> bytes:
        return BIG if b"big" in request else SMALL

    async def _stream(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            yield BIG if b"big" in request else SMALL


def _asking(big: bool) -> bytes:
    request = service_pb2.ModelInferRequest(model_name="simple", id="big" if big else "small")
    request.inputs.add(name="A", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    data: bytes = request.SerializeToString()
    return data


@pytest.mark.parametrize("method", [INFER, STREAM_INFER, LOAD])
def test_a_reply_message_over_the_limit_ends_the_call_resource_exhausted_recorded(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with (
        proxied(loop_thread, otlp, make_proxy, CONFIG, Answering(), options) as proxy,
        grpc.insecure_channel(proxy.grpc, options=options) as channel,
    ):
        trace_id, traceparent = traced(1, 0xB16_0000)
        metadata = (("traceparent", traceparent),)
        if method == INFER:
            assert channel.unary_unary(method)(_asking(False), timeout=10) == SMALL  # under it: passed on
            with pytest.raises(grpc.RpcError) as refused:
                channel.unary_unary(method)(_asking(True), timeout=10, metadata=metadata)
        else:
            assert list(channel.stream_stream(method)(iter([_asking(False)]), timeout=10)) == [SMALL]
            with pytest.raises(grpc.RpcError) as refused:
                list(channel.stream_stream(method)(iter([_asking(True)]), timeout=10, metadata=metadata))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value
        assert "limits.grpc_max_reply_bytes (1048576 bytes" in (refused.value.details() or ""), refused.value
        span, line = recorded(otlp, caplog, trace_id)
        assert span.attributes["error.type"] == "reply_too_large"
        assert line.status == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


def test_grpc_max_reply_bytes_is_max_body_bytes_unless_set() -> None:
    text = (
        "listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}\nupstreams: [{name: t, grpc: 127.0.0.1:1, protocol: oip}]\n"
        "routes: [{model: m, upstream: t}]\n"
    )
    assert reply_limit(Limits()) == Limits().max_body_bytes
    assert reply_limit(parse(text + "limits: {max_body_bytes: 5000}\n", source="t.yaml").limits) == 5000
    limits = parse(text + "limits: {grpc_max_reply_bytes: 7000}\n", source="t.yaml").limits
    assert limits.grpc_max_reply_bytes == 7000 and reply_limit(limits) == 7000
    for bad in ("0", "2147483648", "x"):
        with pytest.raises(ConfigError, match="grpc_max_reply_bytes"):
            parse(text + f"limits: {{grpc_max_reply_bytes: {bad}}}\n", source="t.yaml")
