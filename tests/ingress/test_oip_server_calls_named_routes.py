"""OIP calls about the server rather than a model (`/v2/health/live`, `/v2/health/ready`, `/v2`) name no model, so no
named route sends them anywhere. Over gRPC such calls (ServerLive, ServerReady, ServerMetadata) go to the first gRPC
upstream; over HTTP a config of named routes only, without a `"*"` route, answered them 404 `model_not_found`: the
real tritonclient's `is_server_live()` and `is_server_ready()` said False through the proxy (and a readiness probe of
`/v2/health/ready` failed) while the server was up and its models answered."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import tritonclient.http as httpclient
from aiohttp import web

from tests.harness import LoopThread, ProxyHandle, proxy_error, serving

CONFIG = """
listen:
  http: 127.0.0.1:0
upstreams:
  - name: llm
    url: ${OTHER}
    protocol: openai
    discovery_interval_s: 3600
  - name: triton
    url: ${UPSTREAM}
    protocol: oip
    discovery_interval_s: 3600  # (no metadata round meanwhile: what reaches each server is the test's calls)
routes:
  - model: llama
    upstream: llm
  - model: m
    upstream: triton
policy:
  anonymous: allow
  default_purpose: evaluation
telemetry:
  exporter: none
lineage:
  store: ${STORE}
"""


def oip_server(reached: list[str]) -> web.Application:
    """An OIP REST server up and ready, serving model `m` (its requests' paths go to `reached`)."""

    async def up(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.Response()

    async def server_metadata(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.json_response({"name": "triton", "version": "2.41.0", "extensions": ["binary_tensor_data"]})

    async def model_metadata(request: web.Request) -> web.Response:
        reached.append(request.path)
        if request.match_info["model"] != "m":
            return web.json_response({"error": "unknown model"}, status=400)
        return web.json_response({"name": "m", "versions": ["1"], "platform": "python", "inputs": [], "outputs": []})

    async def index(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.json_response([{"name": "m", "version": "1", "state": "READY"}])

    app = web.Application()
    app.router.add_post("/v2/repository/index", index)
    app.router.add_get("/v2/health/live", up)
    app.router.add_get("/v2/health/ready", up)
    app.router.add_get("/v2/models/{model}/ready", up)
    app.router.add_get("/v2", server_metadata)
    app.router.add_get("/v2/models/{model}", model_metadata)
    return app


def openai_server(reached: list[str]) -> web.Application:
    """Another upstream, first in the config: an OpenAI-compatible one, which no OIP call is for."""

    async def anything(request: web.Request) -> web.Response:
        reached.append(request.path)
        if request.path == "/v1/models":
            return web.json_response({"object": "list", "data": [{"id": "llama", "object": "model"}]})
        return web.json_response({"error": "not found"}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


def test_server_health_and_metadata_reach_the_oip_upstream_without_a_fallback_route(  # type: ignore[no-untyped-def]
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    oip: list[str] = []
    other: list[str] = []
    with serving(loop_thread, oip_server(oip)) as url, serving(loop_thread, openai_server(other)) as other_url:
        proxy = make_proxy(CONFIG, UPSTREAM=url, OTHER=other_url)
        oip.clear()
        other.clear()
        client = httpclient.InferenceServerClient(proxy.url.removeprefix("http://"))
        try:
            assert client.is_model_ready("m")  # (a model's call follows its route, as before)
            assert client.is_server_live()
            assert client.is_server_ready()
            assert client.get_server_metadata()["name"] == "triton"
        finally:
            client.close()
        assert oip == ["/v2/models/m/ready", "/v2/health/live", "/v2/health/ready", "/v2"] and not other
        oip.clear()
        probe = httpx.get(f"{proxy.url}/v2/health/ready", timeout=10)
        assert probe.status_code == 200 and "x-trace-id" in probe.headers
        # a model no route serves is still not found, and a call naming none off the OIP paths has no route either
        for path in ("/v2/models/unrouted", "/health"):
            missing = httpx.get(f"{proxy.url}{path}", timeout=10)
            assert missing.status_code == 404 and proxy_error(missing)["code"] == "model_not_found", path
        assert oip == ["/v2/health/ready"] and not other


def test_the_repository_index_reaches_the_oip_upstream_without_a_fallback_route(  # type: ignore[no-untyped-def]
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """Triton's repository index (`POST /v2/repository/index`, tritonclient's `get_model_repository_index()`) names
    no model either: it was 404 `model_not_found` without a `"*"` route. Without a body it carries no data, as its
    gRPC twin RepositoryIndex: it goes where `/v2/health/ready` goes, its caller's key checked, no purpose needed."""
    oip: list[str] = []
    other: list[str] = []
    with serving(loop_thread, oip_server(oip)) as url, serving(loop_thread, openai_server(other)) as other_url:
        proxy = make_proxy(CONFIG.replace("  default_purpose: evaluation\n", ""), UPSTREAM=url, OTHER=other_url)
        oip.clear()
        other.clear()
        client = httpclient.InferenceServerClient(proxy.url.removeprefix("http://"))
        try:
            assert client.get_model_repository_index() == [{"name": "m", "version": "1", "state": "READY"}]
        finally:
            client.close()
        assert oip == ["/v2/repository/index"] and not other
        index = httpx.post(f"{proxy.url}/v2/repository/index", timeout=10)
        assert index.status_code == 200 and "x-trace-id" in index.headers, index.text
        assert "x-lineage-decision" not in index.headers  # a call that carries no data, as /v2/health/ready
        assert oip == ["/v2/repository/index"] * 2 and not other
