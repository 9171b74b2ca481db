"""One question, one record, on either listener: a model's metadata asked over gRPC (ModelMetadata("simple")) was
recorded naming no model (span `metadata`, access line `allow metadata -`), and the same question over REST
(`GET /v2/models/simple`) as `passthrough simple`. Both are now `metadata simple`: the operation gRPC's data-free
RPCs had, and the model the request names (its message over gRPC, its path over REST)."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import httpx
from aiohttp import web
from tritonclient.grpc import service_pb2

from tests.conftest import KEYS, sha
from tests.harness import LoopThread, ProxyHandle, serving

CONFIG = f"""
listen:
  http: 127.0.0.1:0
  grpc: 127.0.0.1:0
upstreams:
  - name: oip
    url: ${{OIP_HTTP}}
    grpc: ${{OIP_GRPC}}
    protocol: oip
    discovery_interval_s: 3600
routes:
  - model: "*"
    upstream: oip
callers:
  - name: lab
    api_key_sha256: {sha(KEYS["ops"])}
    purposes: [evaluation]
    default_purpose: evaluation
telemetry:
  exporter: otlp
  endpoint: ${{OTLP}}
lineage:
  store: ${{STORE}}
"""
AUTH = {"authorization": f"Bearer {KEYS['ops']}"}


def rest_server() -> web.Application:
    async def model_metadata(request: web.Request) -> web.Response:
        name = request.match_info["model"]
        return web.json_response({"name": name, "versions": ["1"], "platform": "python", "inputs": [], "outputs": []})

    async def ready(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_get("/v2/models/{model}", model_metadata)
    app.router.add_get("/v2/health/ready", ready)
    return app


def test_model_metadata_is_one_operation_naming_its_model_over_grpc_and_rest(  # type: ignore[no-untyped-def]
    faithful, otlp, loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    address, _ = faithful
    with serving(loop_thread, rest_server()) as url:
        proxy = make_proxy(CONFIG, OIP_GRPC=address, OIP_HTTP=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        with grpc.insecure_channel(proxy.grpc) as channel:
            ask = channel.unary_unary(
                "/inference.GRPCInferenceService/ModelMetadata",
                request_serializer=service_pb2.ModelMetadataRequest.SerializeToString,
                response_deserializer=service_pb2.ModelMetadataResponse.FromString,
            )
            reply, call = ask.with_call(service_pb2.ModelMetadataRequest(name="simple"), metadata=tuple(AUTH.items()))
        assert reply.name == "simple"
        over_grpc = otlp.by_trace(dict(call.trailing_metadata())["x-trace-id"])
        rest = httpx.get(f"{proxy.url}/v2/models/simple", headers=AUTH, timeout=10)
        assert rest.status_code == 200 and rest.json()["name"] == "simple"
        over_rest = otlp.by_trace(rest.headers["x-trace-id"])
        health = httpx.get(f"{proxy.url}/v2/health/ready", headers=AUTH, timeout=10)  # names no model
        assert health.status_code == 200
        server = otlp.by_trace(health.headers["x-trace-id"])
    for span in (over_grpc, over_rest):
        assert span.name == "metadata simple", span.name
        assert span.attributes["gen_ai.operation.name"] == "metadata"
        assert span.attributes["gen_ai.request.model"] == "simple"
    assert over_grpc.attributes["rpc.method"] == "ModelMetadata"
    assert server.name == "metadata" and "gen_ai.request.model" not in server.attributes
