"""A gRPC export reuses its buffers' pages: batch after batch, the request's two ~0.5 MiB copies (ours and
grpc's) no longer fault every page in again (~260 minor faults a batch with glibc's defaults)."""

from __future__ import annotations

import resource
import sys
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from proxy.record.export import OtlpGrpcSink
from proxy.record.otlp import encode_resource, encode_scope

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc, per-thread rusage")

BATCHES = 12
WARM = 4  # the first batches grow the arena: their faults are the pages' first use


@pytest.fixture
def port() -> Iterator[int]:
    """A receiver that takes every export's bytes without decoding them."""
    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(lambda request, context: b"")},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield bound
    server.stop(None)


def test_batch_after_batch_a_grpc_export_does_not_fault_its_pages_in_again(port: int) -> None:
    sink = OtlpGrpcSink(f"http://127.0.0.1:{port}", 5.0, encode_resource({"service.name": "t"}), encode_scope("t", "0"))
    batch = [bytes([n % 251]) * 1100 for n in range(512)]  # a full batch of benchmark-sized spans: ~0.56 MiB
    faults: list[int] = []

    def export() -> None:  # on a thread of its own, as the exporter's: its arena, its faults
        for _ in range(BATCHES):
            before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            sink.send(batch)
            faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)

    thread = threading.Thread(target=export)
    thread.start()
    thread.join()
    sink.close()
    assert len(faults) == BATCHES
    steady = faults[WARM:]
    assert sum(steady) / len(steady) < 32, faults  # 140 pages a copy: each faulted in again was ~260 a batch
