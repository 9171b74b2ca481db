"""OIP gRPC discovery while a model is not ready. Triton answers ModelMetadata for a model that is loading, or that
failed to load, with a status of its own (UNAVAILABLE: "Request for unknown model: 'm' has no available versions"),
not NOT_FOUND. The proxy read any status but NOT_FOUND, INVALID_ARGUMENT and UNIMPLEMENTED as the upstream being
down: the round raised, no model of the upstream was named, and /readyz said 503, for as long as one model loaded.
Now the server is asked whether it answers at all: it does, so the ready models are named, and the model that is not
is asked about again soon, as over REST."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from tritonclient.grpc import service_pb2

from proxy.protocols.oip_grpc import MODEL_METADATA
from tests.harness import dead_port

CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams:
  - {name: triton, grpc: "${UPSTREAM}", protocol: oip, discovery_interval_s: 600}
routes:
  - {model: good, upstream: triton}
  - {model: slow, upstream: triton}
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


class Metadata(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Triton's ModelMetadata while `slow` loads (`loaded` ends it)."""

    def __init__(self) -> None:
        self.loaded = False

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method != MODEL_METADATA:
            return None
        return grpc.unary_unary_rpc_method_handler(self._answer)

    def _answer(self, request: bytes, context: Any) -> bytes:
        name = service_pb2.ModelMetadataRequest.FromString(request).name
        if name == "slow" and not self.loaded:
            context.abort(grpc.StatusCode.UNAVAILABLE, "Request for unknown model: 'slow' has no available versions")
        if name not in ("good", "slow"):
            context.abort(grpc.StatusCode.NOT_FOUND, f"Request for unknown model: '{name}' is not found")
        answer: bytes = service_pb2.ModelMetadataResponse(
            name=name, versions=["1"], platform="onnx"
        ).SerializeToString()
        return answer


@pytest.fixture
def upstream() -> Iterator[tuple[int, Metadata]]:
    handler = Metadata()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, handler
    server.stop(0)


def test_a_model_loading_leaves_the_others_named(
    upstream: tuple[int, Metadata], make_proxy: Any, loop_thread: Any
) -> None:
    port, handler = upstream
    proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=f"127.0.0.1:{port}")
    book = proxy.process.book
    served = proxy.config.upstreams[0]
    assert book.reachable["triton"]  # was: not reachable, the round raised at `slow`
    found = book.resolve(served, "good", learn=False)
    assert found is not None and found.name == "good:1", found
    assert book.resolve(served, "slow", learn=False) is None

    async def why() -> str:  # on the proxy's loop, where the book lives
        return book.why_unknown(served, "slow", "app")

    assert "answered that model 'slow' is not ready" in loop_thread.run(why())
    handler.loaded = True  # loaded: the next retry names it, without a call asking (the interval is 600 s)
    deadline = time.monotonic() + 5
    while book.resolve(served, "slow", learn=False) is None:
        assert time.monotonic() < deadline, "slow not named within 5 s"
        loop_thread.run(asyncio.sleep(0.02))


def test_an_upstream_that_does_not_answer_is_still_down(make_proxy: Any) -> None:
    """A status grpc makes itself, with no connection (nothing listens), is no answer: the upstream is down."""
    proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=f"127.0.0.1:{dead_port()}")
    assert not proxy.process.book.reachable["triton"]
