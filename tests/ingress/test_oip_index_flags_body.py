"""Triton's repository index (`POST /v2/repository/index`) with a body of its flags only: `{"ready": true}` (Triton
reads that flag; tritonclient sends no body) or `{}` (MLServer needs a body and reads only `ready` from it). The
servers hand nothing of it to a model, so it carries no data, as without a body and as gRPC's RepositoryIndex. It
was decided as an unread call of the `"*"` route: 404 `model_not_found` without one (MLServer's listing never
reached through a config of named routes), 403 `endpoint_denied` with zones under `policy.passthrough: auto`. Any
other body is still decided as before."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from aiohttp import web

from tests.harness import LoopThread, ProxyHandle, proxy_error, serving

NAMED = """
listen:
  http: 127.0.0.1:0
upstreams:
  - name: mls
    url: ${UPSTREAM}
    protocol: oip
    discovery_interval_s: 3600
routes:
  - model: iris
    upstream: mls
policy:
  anonymous: allow
telemetry:
  exporter: none
lineage:
  store: ${STORE}
"""

ZONES = """
listen:
  http: 127.0.0.1:0
upstreams:
  - name: up
    url: ${UPSTREAM}
    protocol: oip
    discovery_interval_s: 3600
routes:
  - model: "*"
    upstream: up
zones:
  - name: health
    labels: [health]
    allow_purposes: [assistant]
policy:
  anonymous: allow
telemetry:
  exporter: none
lineage:
  store: ${STORE}
"""

FLAGS = [b'{"ready": true}', b'{"ready":false}', b"{}", b' {\n "ready" : true } ']
# another key, a flag that is not a boolean, a repeated key, not an object, not JSON
OTHERS = [b'{"ready": true, "repository_name": "x"}', b'{"ready": "true"}', b'{"ready": 1}',
          b'{"ready": true, "ready": true}', b"[]", b"true", b"ready"]  # fmt: skip


def test_flags_only_index_body_reaches_mlserver_through_named_routes(  # type: ignore[no-untyped-def]
    iris_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    url, _ = iris_mlserver
    proxy = make_proxy(NAMED, UPSTREAM=url)
    for body in FLAGS:
        reply = httpx.post(f"{proxy.url}/v2/repository/index", content=body,
                           headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
        assert reply.status_code == 200, (body, reply.status_code, reply.text)
        assert "x-lineage-decision" not in reply.headers  # a call that carries no data, as /v2/health/ready
        if body != b'{"ready":false}':
            assert [entry["name"] for entry in reply.json()] == ["iris"], reply.text
    for body in OTHERS:  # as before: an unread call of the '*' route, which there is none of
        reply = httpx.post(f"{proxy.url}/v2/repository/index", content=body, timeout=30)
        assert reply.status_code == 404 and proxy_error(reply)["code"] == "model_not_found", (body, reply.text)


@pytest.fixture
def upstream(loop_thread: LoopThread):  # type: ignore[no-untyped-def]
    reached: list[bytes] = []

    async def anything(request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "POST":  # (not discovery's GETs)
            reached.append(body)
        return web.json_response([])

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    with serving(loop_thread, app) as url:
        yield url, reached


def test_flags_only_index_body_needs_no_purpose_under_zones(upstream, make_proxy) -> None:  # type: ignore[no-untyped-def]
    url, reached = upstream
    proxy = make_proxy(ZONES, UPSTREAM=url)
    for body in FLAGS:
        reply = httpx.post(f"{proxy.url}/v2/repository/index", content=body, headers={"x-purpose": "ads"}, timeout=30)
        assert reply.status_code == 200, (body, reply.status_code, reply.text)
    assert reached == FLAGS  # forwarded as they came
    reached.clear()
    for body in OTHERS:
        reply = httpx.post(f"{proxy.url}/v2/repository/index", content=body, headers={"x-purpose": "ads"}, timeout=30)
        assert reply.status_code == 403 and proxy_error(reply)["code"] == "endpoint_denied", (body, reply.text)
    assert not reached
