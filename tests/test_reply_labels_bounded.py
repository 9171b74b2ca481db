"""A reply's `x-data-labels` names the labels of its output: a call may hold 256 labels of 128 characters (an OIP
sequence's requests, a stored reply it goes on from), 33 KB. In gRPC metadata a client's channel at grpc's defaults
refused the reply (RESOURCE_EXHAUSTED: at random past 8 KiB, always past 16 KiB) after the model had answered and the
call was recorded OK; in an HTTP head aiohttp's client refuses a header line past 8,190 bytes. The header is cut at
REPLY_LABELS_MAX_CHARS now, with a marker naming how many labels were left out (no label: a hop taking it on as a
request's labels is refused, never given a part of them as whole); the record keeps them all."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import grpc
import grpc.aio
import pytest
from tritonclient.grpc import service_pb2

from proxy.labels import REPLY_LABELS_MAX_CHARS, is_label, parse_labels, reply_labels
from proxy.logs import ACCESS
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc_streams import CONFIG, SERVICE
from tests.servers.otlp_receiver import OtlpReceiver

INFER = SERVICE + "ModelInfer"
BASE = 0x1AB3_0000


def request_labels(request: int) -> list[str]:
    """64 labels no earlier request sent, of 106 characters (a label may have 128)."""
    return [f"r{request}-{n:02d}-" + "x" * 100 for n in range(64)]


def _infer(request: int) -> bytes:
    """The `request`th request of sequence 7, its labels in its `data_labels` parameter (not metadata, which the
    proxy bounds for its upstream's sake: tests/ingress/test_grpc_metadata_limit.py)."""
    message = service_pb2.ModelInferRequest(model_name="held")
    message.inputs.add(name="A", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    message.parameters["sequence_id"].int64_param = 7
    message.parameters["sequence_start"].bool_param = request == 0
    message.parameters["data_labels"].string_param = ",".join(request_labels(request))
    return message.SerializeToString()  # type: ignore[no-any-return]


class Answering(grpc.GenericRpcHandler):  # type: ignore[misc]
    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.unary_unary_rpc_method_handler(self._infer) if details.method == INFER else None

    async def _infer(self, request: bytes, context: Any) -> bytes:
        return service_pb2.ModelInferResponse(model_name="held").SerializeToString()  # type: ignore[no-any-return]


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[Any]:
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Answering()) as handle:
        yield handle


def test_a_grpc_client_at_its_default_metadata_limit_takes_the_reply_of_a_call_of_many_labels(
    proxy: Any, loop_thread: LoopThread, otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)

    async def calls() -> list[tuple[str, str]]:
        got = []
        async with grpc.aio.insecure_channel(proxy.grpc) as channel:  # grpc's defaults: 8 KiB soft, 16 KiB hard
            infer = channel.unary_unary(INFER)
            for request in range(3):  # 64, 128, then 192 labels: ~20 KB of them
                call = infer(_infer(request), timeout=10, metadata=(("traceparent", traced(request, BASE)[1]),))
                try:
                    await call
                except grpc.aio.AioRpcError as exc:
                    got.append((exc.code().name, exc.details() or ""))
                    continue
                trailing = dict(await call.trailing_metadata())
                got.append(("OK", str(trailing.get("x-data-labels", ""))))
        return got

    got = loop_thread.run(calls())
    assert [code for code, _ in got] == ["OK", "OK", "OK"], got
    for request, (_, header) in enumerate(got):
        held = [label for n in range(request + 1) for label in request_labels(n)]
        assert len(header) <= REPLY_LABELS_MAX_CHARS
        kept, _, marker = header.rpartition(",")
        assert marker == f"+{len(held) - len(kept.split(','))} more (cut: the lineage record has them all)"
        assert kept.split(",") == sorted(held)[: len(kept.split(","))]  # the first, in order
        # the record has every label the reply's header left out
        span, line = recorded(otlp, caplog, traced(request, BASE)[0])
        assert sorted(span.attributes["lineage.output.labels"]) == sorted(held)
        assert line.status == 0


def test_an_http_client_at_its_default_limits_takes_the_reply_of_a_call_of_many_labels(
    vllm: Any, make_proxy: Any
) -> None:
    _, upstream = vllm
    proxy = make_proxy(
        "listen: {http: 127.0.0.1:0}\n"
        'upstreams: [{name: vllm, url: "${UPSTREAM}"}]\n'
        'routes: [{model: "*", upstream: vllm}]\n'
        "policy: {anonymous: allow, default_purpose: assistant}\n",
        UPSTREAM=upstream,
    )
    held = frozenset(label for n in range(4) for label in request_labels(n))  # 256: a stored reply of 4 turns
    proxy.process.runtime.stored.remember("resp_1", held)

    async def call() -> tuple[int, str]:
        async with aiohttp.ClientSession() as session:  # aiohttp's defaults: a header line of 8,190 bytes at most
            body = {"model": "llama-3.1-8b", "input": "go on", "previous_response_id": "resp_1"}
            async with session.post(f"{proxy.url}/v1/responses", json=body) as reply:
                await reply.read()
                return reply.status, reply.headers["x-data-labels"]

    status, header = asyncio.run(call())
    assert status == 200 and len(header) <= REPLY_LABELS_MAX_CHARS
    assert header.endswith(" more (cut: the lineage record has them all)")


def test_the_cut_header_is_no_label_set_a_next_hop_would_take() -> None:
    few = frozenset({"health", "pii"})
    assert reply_labels(few) == "health,pii"  # under the bound: whole, as before
    many = frozenset(label for n in range(4) for label in request_labels(n))
    cut = reply_labels(many)
    kept, _, marker = cut.rpartition(",")
    assert len(cut) <= REPLY_LABELS_MAX_CHARS and marker.startswith("+") and not is_label(marker)
    with pytest.raises(Exception, match="invalid label"):
        parse_labels(cut)  # taken on as a request's labels: refused, not a part of them taken as whole
