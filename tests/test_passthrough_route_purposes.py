"""A route's purposes on bodies the proxy does not read. A path no adapter reads goes by the `"*"` route, but its
body names the model that runs: vLLM's `/invocations` (SageMaker's path, a chat, completion or embedding body by
its shape), `/pooling` and `/score` (and Ollama's `/api/chat`, read since 2026-12-04: decided by the route of the
model its body names). With no zone configured, `policy.passthrough: auto` forwarded them, so a model a route keeps to
some purposes ran for any other one named in such a body."""

from __future__ import annotations

import httpx
import pytest
from aiohttp import web

from proxy.protocols import ADAPTERS, HTTP_ADAPTERS
from tests.harness import proxy_error, serving

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
    checkpoint: base@1
routes:
  - model: medical-lora
    upstream: vllm
    purposes: [clinical]
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
  passthrough: ${PASSTHROUGH:-auto}
lineage:
  store: ${STORE}
"""
# the same, without a route that limits purposes
OPEN_CONFIG = CONFIG.replace("    purposes: [clinical]\n", "")

CHAT = {"model": "medical-lora", "messages": [{"role": "user", "content": "summarise my chart"}]}


@pytest.fixture
def upstream(loop_thread):  # type: ignore[no-untyped-def]
    reached: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        await request.read()
        reached.append(request.path)
        return web.json_response({"object": "chat.completion", "model": "medical-lora", "choices": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    with serving(loop_thread, app) as url:
        yield url, reached


@pytest.mark.parametrize("path", ["/invocations", "/pooling", "/score"])
def test_an_unread_body_is_refused_while_a_route_limits_purposes(upstream, make_proxy, path: str) -> None:  # type: ignore[no-untyped-def]
    url, reached = upstream
    proxy = make_proxy(CONFIG, wait="started", UPSTREAM=url)
    read = httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, headers={"x-purpose": "ads"}, timeout=30)
    assert read.status_code == 403 and proxy_error(read)["code"] == "purpose_denied"  # the route, read
    unread = httpx.post(f"{proxy.url}{path}", json=CHAT, headers={"x-purpose": "ads"}, timeout=30)
    assert unread.status_code == 403, (unread.status_code, unread.headers.get("x-lineage-decision"), unread.text)
    assert proxy_error(unread)["code"] == "endpoint_denied"
    assert "route" in proxy_error(unread)["message"]
    assert path not in reached


def test_an_ollama_chat_is_decided_by_the_route_of_the_model_it_names(upstream, make_proxy) -> None:  # type: ignore[no-untyped-def]
    url, reached = upstream
    proxy = make_proxy(CONFIG, wait="started", UPSTREAM=url)
    reply = httpx.post(f"{proxy.url}/api/chat", json=CHAT, headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 403 and proxy_error(reply)["code"] == "purpose_denied", reply.text
    assert "/api/chat" not in reached


def test_unread_bodies_pass_where_no_route_limits_purposes_or_forward_says_so(upstream, make_proxy) -> None:  # type: ignore[no-untyped-def]
    url, reached = upstream
    for config, env in ((OPEN_CONFIG, {}), (CONFIG, {"PASSTHROUGH": "forward"})):
        proxy = make_proxy(config, wait="started", UPSTREAM=url, **env)
        reply = httpx.post(f"{proxy.url}/invocations", json=CHAT, headers={"x-purpose": "ads"}, timeout=30)
        assert reply.status_code == 200 and reply.headers["x-lineage-decision"] == "allow", reply.text
    assert reached.count("/invocations") == 2


def test_an_oip_path_is_decided_by_its_model_s_route(upstream, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """A path naming its model (`/v2/models/{name}/...`) is decided by that model's route, read or not: Triton's
    `/trace/setting`, which no adapter reads (its `/generate` is read since 2026-12-04)."""
    url, reached = upstream
    proxy = make_proxy(CONFIG, wait="started", UPSTREAM=url)
    path = "/v2/models/medical-lora/trace/setting"
    assert next(a for a in HTTP_ADAPTERS if a.match("POST", path)) is ADAPTERS["passthrough"]  # read by none
    setting = {"trace_level": ["TIMESTAMPS"], "trace_file": "summarise-my-chart.json"}
    denied = httpx.post(f"{proxy.url}{path}", json=setting, headers={"x-purpose": "ads"})
    assert denied.status_code == 403 and proxy_error(denied)["code"] == "purpose_denied", denied.text
    allowed = httpx.post(f"{proxy.url}{path}", json=setting, headers={"x-purpose": "clinical"})
    assert allowed.status_code == 200, allowed.text
    assert reached.count(path) == 1
