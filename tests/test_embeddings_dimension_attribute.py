"""An embeddings call's requested `dimensions` is recorded under the OTel GenAI conventions' own attribute,
`gen_ai.embeddings.dimension.count` ("The number of dimensions the resulting output embeddings should have",
Recommended on embeddings spans), not `gen_ai.request.embeddings.dimension.count`, a name the conventions do not
have: a backend's GenAI views, and a query on the conventions' name, never saw it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.configs import ONE_UPSTREAM

TELEMETRY = "telemetry:\n  exporter: otlp\n  endpoint: ${OTLP}\n  protocol: grpc\n"


def test_requested_dimensions_are_gen_ai_embeddings_dimension_count(vllm: Any, otlp: Any, make_proxy: Any) -> None:
    _, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM + TELEMETRY, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    body = {"model": "llama-3.1-8b", "input": "hello", "dimensions": 256, "encoding_format": "float"}
    reply = httpx.post(f"{proxy.url}/v1/embeddings", json=body, timeout=10)
    assert reply.status_code == 200
    attributes = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert attributes.get("gen_ai.embeddings.dimension.count") == 256
    assert "gen_ai.request.embeddings.dimension.count" not in attributes
    assert list(attributes["gen_ai.request.encoding_formats"]) == ["float"]  # a request attribute of the conventions'
