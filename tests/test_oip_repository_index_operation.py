"""Triton's repository index over REST (`POST /v2/repository/index`, what tritonclient's `get_model_repository_index()`
sends, without a body; or with its `ready` flag only, or `{}` as MLServer needs) carries no data, as gRPC's RepositoryIndex, and is answered so,
but it was recorded as operation `passthrough` (span, access line), where the same question over gRPC is `metadata`:
a dashboard grouped by operation counted one listing as two kinds of call. Both are now `metadata`. Through the proxy to
the real MLServer, over REST and over gRPC."""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc
import httpx
import pytest
from tritonclient.grpc import service_pb2

from tests.harness import ProxyHandle
from tests.servers.otlp_receiver import OtlpReceiver

CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams:
  - {name: mls, url: "${UPSTREAM}", grpc: "${GRPC}", protocol: oip}
routes: [{model: iris, upstream: mls}]
policy: {anonymous: allow}
telemetry: {exporter: otlp, endpoint: "http://127.0.0.1:${OTLP}"}
lineage: {store: "${STORE}"}
"""


@pytest.mark.realserver
def test_the_repository_index_is_metadata_over_rest_as_over_grpc(
    iris_mlserver: tuple[str, str],
    make_proxy: Callable[..., ProxyHandle],
    otlp: OtlpReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, grpc_address = iris_mlserver
    proxy = make_proxy(CONFIG, UPSTREAM=url, GRPC=grpc_address, OTLP=str(otlp.port))
    caplog.set_level(logging.INFO, logger="lineage_proxy.access")
    spans = []
    for body in (b"{}", b'{"ready": true}'):  # (MLServer needs a body: `{}`, or the flag it and Triton read)
        reply = httpx.post(f"{proxy.url}/v2/repository/index", content=body, timeout=30)
        assert reply.status_code == 200 and [entry["name"] for entry in reply.json()] == ["iris"], reply.text
        spans.append(otlp.by_trace(reply.headers["x-trace-id"]))
    with grpc.insecure_channel(proxy.grpc) as channel:
        index = channel.unary_unary(
            "/inference.GRPCInferenceService/RepositoryIndex",
            request_serializer=service_pb2.RepositoryIndexRequest.SerializeToString,
            response_deserializer=service_pb2.RepositoryIndexResponse.FromString,
        )
        listed, call = index.with_call(service_pb2.RepositoryIndexRequest(), timeout=30)
    assert [model.name for model in listed.models] == ["iris"]
    spans.append(otlp.by_trace(dict(call.trailing_metadata())["x-trace-id"]))
    for span in spans:
        assert span.name == "metadata" and span.attributes["gen_ai.operation.name"] == "metadata", span.name
    access = [r.getMessage() for r in caplog.records if r.name == "lineage_proxy.access"]
    assert [line.split()[:2] for line in access] == [["allow", "metadata"]] * 3, access
