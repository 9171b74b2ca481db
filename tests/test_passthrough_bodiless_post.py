"""A POST with no body to a path no adapter reads. Its request is its path and query: Triton's
`POST /v2/repository/models/{m}/load` loads a model from the repository (new weights serve later calls), vLLM's
`/sleep?level=2` drops the weights and `/start_profile` traces the engine, llama.cpp's `/slots/{id}?action=erase`
drops a slot's cache. The gRPC twins (`RepositoryModelLoad`, ...) are opaque, refused while zones are configured
or a route limits its model's purposes; over HTTP, with no body, they were forwarded as if they carried nothing."""

from __future__ import annotations

import httpx
import pytest
from aiohttp import web

from tests.harness import proxy_error, serving

# the config's start: one upstream, `up`, every model's
UP = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: up
    url: ${UPSTREAM}
    checkpoint: base@1
routes:
  - model: "*"
    upstream: up
"""
CONFIG = (
    UP
    + """zones:
  - name: health
    labels: [health]
    allow_purposes: [assistant]
policy:
  anonymous: allow
lineage:
  store: ${STORE}
"""
)
# no zone, a route that limits its model's purposes
ROUTED = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: up
    url: ${UPSTREAM}
    checkpoint: base@1
routes:
  - model: medical-lora
    upstream: up
    purposes: [clinical]
  - model: "*"
    upstream: up
policy:
  anonymous: allow
lineage:
  store: ${STORE}
"""

PATHS = ["/v2/repository/models/iris/load", "/sleep?level=2", "/start_profile", "/slots/0?action=erase"]


@pytest.fixture
def upstream(loop_thread):  # type: ignore[no-untyped-def]
    reached: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        await request.read()
        reached.append(f"{request.method} {request.path_qs}")
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    with serving(loop_thread, app) as url:
        yield url, reached


@pytest.mark.parametrize("config", [CONFIG, ROUTED], ids=["zones", "route-purposes"])
def test_a_bodiless_post_to_an_unread_path_is_refused_as_its_grpc_twin_is(upstream, make_proxy, config: str) -> None:  # type: ignore[no-untyped-def]
    url, reached = upstream
    proxy = make_proxy(config, wait="started", UPSTREAM=url)
    for path in PATHS:
        reply = httpx.post(f"{proxy.url}{path}", headers={"x-purpose": "ads"}, timeout=30)
        assert reply.status_code == 403, (path, reply.status_code, reply.headers.get("x-lineage-decision"))
        assert proxy_error(reply)["code"] == "endpoint_denied", reply.text
    assert not [line for line in reached if line.startswith("POST")], reached
    # what carries no data still passes: a GET, and Triton's repository index (gRPC's RepositoryIndex is data-free)
    assert httpx.get(f"{proxy.url}/slots", headers={"x-purpose": "ads"}, timeout=30).status_code == 200
    index = httpx.post(f"{proxy.url}/v2/repository/index", headers={"x-purpose": "ads"}, timeout=30)
    assert index.status_code == 200, index.text


def test_a_bodiless_post_passes_where_passthrough_forwards(upstream, make_proxy) -> None:  # type: ignore[no-untyped-def]
    url, reached = upstream
    proxy = make_proxy(CONFIG.replace("  anonymous: allow\n", "  anonymous: allow\n  passthrough: forward\n"),
                       wait="started", UPSTREAM=url)  # fmt: skip
    reply = httpx.post(f"{proxy.url}/v2/repository/models/iris/load", headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 200 and reply.headers["x-lineage-decision"] == "allow", reply.text
    assert "POST /v2/repository/models/iris/load" in reached
