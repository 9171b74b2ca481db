"""OIP gRPC checkpoint discovery asks ModelMetadata for each model routed to an upstream. One answer that is
no valid ModelMetadataResponse (a cut field, a name that is not UTF-8) raised out of the whole round: every
model's versions were lost and the upstream was called unreachable (`metadata not reachable`, /readyz 503),
though it answered. That model is now skipped with one log line and the round goes on."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from tritonclient.grpc import service_pb2

from proxy.protocols.oip_grpc import MODEL_METADATA

CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams:
  - {name: triton-s9, grpc: "${UPSTREAM}", protocol: oip}
routes:
  - {model: good-s9, upstream: triton-s9}
  - {model: cut-s9, upstream: triton-s9}
  - {model: latin-s9, upstream: triton-s9}
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "${STORE}"}
"""
ANSWERS = {
    "cut-s9": b"\x0a\x05ab",  # field 1 says 5 bytes, 2 follow
    "latin-s9": b"\x0a\x01\xff",  # field 1 (name, a string) is not UTF-8: protobuf parsers refuse it
}


class Metadata(grpc.GenericRpcHandler):  # type: ignore[misc]
    """An OIP server whose ModelMetadata answers for two models are not ModelMetadataResponses."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method != MODEL_METADATA:
            return None
        return grpc.unary_unary_rpc_method_handler(self._answer)

    @staticmethod
    def _answer(request: bytes, context: Any) -> bytes:
        name = service_pb2.ModelMetadataRequest.FromString(request).name
        if name in ANSWERS:
            return ANSWERS[name]
        answer: bytes = service_pb2.ModelMetadataResponse(
            name=name, versions=["1", "3"], platform="onnx"
        ).SerializeToString()
        return answer


@pytest.fixture
def upstream() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((Metadata(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(0)


def test_an_unreadable_metadata_answer_skips_that_model_not_the_round(
    upstream: int, make_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="lineage_proxy.checkpoints"):
        proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=f"127.0.0.1:{upstream}")
    book = proxy.process.book
    served = next(u for u in proxy.config.upstreams if u.name == "triton-s9")
    assert book.reachable["triton-s9"], caplog.text  # was: not reachable (the round raised)
    found = book.resolve(served, "good-s9", learn=False)
    assert found is not None and found.name == "good-s9:3", found  # was: None
    assert book.resolve(served, "cut-s9", learn=False) is None
    assert book.resolve(served, "latin-s9", learn=False) is None
    assert "metadata not reachable" not in caplog.text
    for model in ("cut-s9", "latin-s9"):
        lines = [r.getMessage() for r in caplog.records if repr(model) in r.getMessage()]
        assert len(lines) == 1 and "cannot be read" in lines[0], lines
