"""KServe's Hugging Face runtime (and any `kserve` OpenAI model) serves OpenAI's API under `/openai`
(`/openai/v1/chat/completions`, `/openai/v1/models`; KServe's `KSERVE_OPENAI_ROUTE_PREFIX`), beside KServe V1's own
`/v1/models`. The README's setup: the upstream's url holds the prefix (`url: http://host:8080/openai`, `protocol:
openai`) and clients use the proxy's `/v1`, so calls are read as OpenAI's, and the checkpoint is discovered from
`/openai/v1/models`. (KServe's OpenAI endpoints need vLLM installed, so this upstream is a stand-in serving the same
paths and shapes.)"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from aiohttp import web

from proxy.record.store import SqliteStore
from tests.harness import LoopThread, ProxyHandle, serving
from tests.servers.vllm_like import ROOT, SERVED, VllmLike

ADDRESS = "alice@example.com"


def kserve_hf(seen: list[Any]) -> web.Application:
    async def v1_models(request: web.Request) -> web.Response:  # KServe V1's list, not OpenAI's
        return web.json_response({"models": ["llm"]})

    async def openai_models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "llm", "object": "model", "created": 1,
                                                                "owned_by": ""}]})  # fmt: skip

    async def chat(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response({"id": "c", "object": "chat.completion", "created": 1, "model": "llm", "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}]})  # fmt: skip

    app = web.Application()
    app.router.add_get("/v1/models", v1_models)
    app.router.add_get("/openai/v1/models", openai_models)
    app.router.add_post("/openai/v1/chat/completions", chat)
    return app


def test_kserves_openai_endpoints_behind_the_upstreams_url_prefix(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    seen: list[Any] = []
    with serving(loop_thread, kserve_hf(seen)) as kserve:
        proxy = make_proxy("""
listen: {http: "127.0.0.1:0"}
upstreams: [{name: hf, url: "${KSERVE}/openai", protocol: openai}]
routes: [{model: llm, upstream: hf}]
policy: {anonymous: allow, default_purpose: care}
zones: [{name: personal, labels: ["pii:email"], allow_purposes: [care]}]
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
""", wait="probed", KSERVE=kserve)  # fmt: skip
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
        messages: Any = [{"role": "user", "content": "mail alice@example.com"}]
        with pytest.raises(openai.PermissionDeniedError, match="pii:email"):
            client.chat.completions.create(model="llm", messages=messages, extra_headers={"x-purpose": "ads"})
        assert seen == []
        reply = client.chat.completions.with_raw_response.create(model="llm", messages=messages)
        assert reply.headers["x-lineage-checkpoint"] == "llm" and "pii:email" in reply.headers["x-data-labels"]
        assert [model.id for model in client.models.list()] == ["llm"]
    assert len(seen) == 1


def kserve_openai(server: VllmLike) -> web.Application:
    """KServe's model server with an OpenAI model, as its routes are (`kserve/protocol/rest/openai/endpoints.py`):
    OpenAI's API under `/openai/v1` (chat and text completions, embeddings, the model list; `GET
    /openai/v1/models/{name}` the model's health), KServe V1's model list at `/v1/models` and its models' readiness at
    `/v1/models/{name}`. KServe 0.21's OpenAI data
    plane imports vLLM's protocol types, and `kserve[llm]` pins vllm 0.24.0 with torch and the CUDA libraries (150
    packages): the project's vLLM-like server, mounted at `/openai`, stands in for it."""

    async def v1_models(request: web.Request) -> web.Response:
        return web.json_response({"models": [SERVED]})

    async def v1_ready(request: web.Request) -> web.Response:  # V1's readiness of a model in its repository
        name = request.match_info["name"]
        if name not in {model["id"] for model in server.models}:
            return web.json_response({"error": f"Model with name {name} does not exist."}, status=404)
        return web.json_response({"name": name, "ready": True})

    async def health(request: web.Request) -> web.Response:
        await server._record(request)
        if request.match_info["name"] not in {model["id"] for model in server.models}:
            return web.json_response({"error": "not ready"}, status=503)
        return web.json_response(None)

    openai_api = server.app()
    openai_api.router.add_get("/v1/models/{name}", health)
    app = web.Application()
    app.router.add_get("/v1/models", v1_models)
    app.router.add_get("/v1/models/{name}", v1_ready)
    app.add_subapp("/openai", openai_api)
    return app


PREFIX_CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: hf, url: "${KSERVE}/openai", protocol: openai}]
routes: [{model: "*", upstream: hf}]
policy: {anonymous: allow, default_purpose: care, passthrough: "${PASSTHROUGH}"}
zones: [{name: personal, labels: ["pii:email"], allow_purposes: [care]}]
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.mark.parametrize("passthrough", ["auto", "forward"])
def test_a_client_on_kserves_openai_prefix_is_read_as_on_v1(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], tmp_path: Path, passthrough: str
) -> None:
    """A client whose base URL is KServe's (`http://host/openai/v1`) pointed at the proxy: its calls were a path no
    adapter reads (`auto`: 403 `endpoint_denied` while zones are configured; `forward`: sent unread, an address reaching
    the model for a purpose its zone forbids, to `/openai/openai/v1/...`, a 404). They are read, routed and decided as
    the same calls on `/v1` are, and reach the upstream (whose url holds `/openai`) at KServe's own paths."""
    server = VllmLike()
    with serving(loop_thread, kserve_openai(server)) as kserve:
        proxy = make_proxy(PREFIX_CONFIG, wait="probed", KSERVE=kserve, PASSTHROUGH=passthrough)
        client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key="x", max_retries=0)
        messages: Any = [{"role": "user", "content": f"mail {ADDRESS}"}]
        with pytest.raises(openai.PermissionDeniedError) as denied:
            client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "ads"})
        assert denied.value.code == "purpose_denied" and "pii:email" in denied.value.message, denied.value
        with pytest.raises(openai.PermissionDeniedError, match="pii:email"):
            client.embeddings.create(model=SERVED, input=ADDRESS, extra_headers={"x-purpose": "ads"})
        assert server.data_requests() == []  # nothing reached the model
        reply = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages)
        assert reply.headers["x-lineage-checkpoint"] == ROOT, reply.headers  # named by /openai/v1/models
        assert "pii:email" in reply.headers["x-data-labels"].split(","), reply.headers
        assert reply.parse().choices[0].message.content is not None
        words = [chunk.choices[0].delta.content for chunk in client.chat.completions.create(
            model=SERVED, messages=[{"role": "user", "content": "hi"}], stream=True) if chunk.choices]  # fmt: skip
        assert "echo:" in "".join(word or "" for word in words)
        assert client.completions.create(model=SERVED, prompt="hi").choices[0].text
        assert len(client.embeddings.create(model=SERVED, input="hi").data) == 1
        assert [model.id for model in client.models.list()] == [SERVED, "sql-lora"]  # OpenAI's list, not V1's
        health = httpx.get(f"{proxy.url}/openai/v1/models/{SERVED}", timeout=30)  # KServe's OpenAI model health
        assert health.status_code == 200, health.text
    paths = [(each.method, each.path) for each in server.requests if each.path != "/openai/v1/models"]
    assert paths == [("POST", "/openai/v1/chat/completions"), ("POST", "/openai/v1/chat/completions"),
                     ("POST", "/openai/v1/completions"), ("POST", "/openai/v1/embeddings"),
                     ("GET", f"/openai/v1/models/{SERVED}")], paths  # fmt: skip
    kept = SqliteStore(tmp_path / "lineage.db", readonly=True)
    try:
        rows = {(row.key.purpose, row.key.input_labels, row.key.checkpoint, row.key.decision) for row in kept.rows()}
    finally:
        kept.close()
    assert ("ads", "pii:email", "", "deny") in rows and ("care", "pii:email", ROOT, "allow") in rows, rows


def test_a_prefix_that_is_no_segment_of_its_own_is_no_openai_call(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """`/openai%2Fv1/chat/completions` is `/openai/v1/...` once decoded, but its first segment is not `openai` (KServe's
    router, Starlette's, decodes `%2F` before it routes): it stays a path no adapter reads, refused while zones are
    configured, never forwarded as the call it is not read as."""
    server = VllmLike()
    with serving(loop_thread, kserve_openai(server)) as kserve:
        proxy = make_proxy(PREFIX_CONFIG, wait="probed", KSERVE=kserve, PASSTHROUGH="auto")
        body = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": ADDRESS}]})
        host, port = proxy.url.removeprefix("http://").rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.request("POST", "/openai%2Fv1/chat/completions", body, {"content-type": "application/json"})
            answer = connection.getresponse()
            refused = orjson.loads(answer.read())
        finally:
            connection.close()
        assert answer.status == 403 and refused["error"]["code"] == "endpoint_denied", refused
    assert server.data_requests() == []
