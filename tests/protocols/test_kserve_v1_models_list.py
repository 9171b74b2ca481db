"""`GET /v1/models` in front of KServe model servers. The path is OpenAI's model list (vLLM's, llama.cpp's) and KServe
V1's (`{"models": [name, ...]}`) alike; the proxy answered it from `protocol: openai` upstreams only, so with KServe
upstreams alone a KServe client listing models got an empty OpenAI list, `{"object": "list", "data": []}`. KServe's
model servers' V1 names now come in V1's key, `models` (several: merged, each model once, as OpenAI's are), beside
OpenAI's list (`data`: KServe's OpenAI models, and the `protocol: openai` upstreams'), which the openai SDK reads.
(These stand-ins serve no `/openai` routes, as KServe with no OpenAI model does not: no OpenAI model.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.harness import LoopThread, ProxyHandle, serving
from tests.protocols.test_kserve_v1 import ECHO
from tests.servers.real import kserve_model_server

ONE = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: kserve, url: "${KSERVE}", protocol: kserve}]
routes: [{model: echo, upstream: kserve}]
policy: {anonymous: allow, default_purpose: care}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.fixture(scope="module")
def kserve_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with kserve_model_server(tmp_path_factory.mktemp("kserve-list"), ECHO, "echo") as url:
        yield url


@pytest.mark.realserver
def test_a_kserve_only_config_lists_kserves_models(kserve_echo: str, make_proxy: Callable[..., ProxyHandle]) -> None:
    direct = httpx.get(f"{kserve_echo}/v1/models", timeout=30)
    assert direct.json() == {"models": ["echo"]}, direct.text
    proxy = make_proxy(ONE, KSERVE=kserve_echo)
    listed = httpx.get(f"{proxy.url}/v1/models", timeout=30)
    assert listed.status_code == 200, listed.text
    assert listed.json()["models"] == ["echo"], listed.text  # before: {"object": "list", "data": []}
    assert listed.headers["x-trace-id"]


def kserve_like(models: list[str]) -> web.Application:
    async def listing(request: web.Request) -> web.Response:
        return web.json_response({"models": models})

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"name": request.match_info["name"], "ready": True})

    app = web.Application()
    app.router.add_get("/v1/models", listing)
    app.router.add_get("/v1/models/{name}", ready)
    return app


def openai_like(models: list[str]) -> web.Application:
    async def listing(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in models]})

    app = web.Application()
    app.router.add_get("/v1/models", listing)
    return app


def test_several_kserve_servers_lists_are_merged_each_model_once_by_its_route(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    with serving(loop_thread, kserve_like(["iris", "shared", "stray"])) as a, \
         serving(loop_thread, kserve_like(["shared", "mnist"])) as b:  # fmt: skip
        proxy = make_proxy("""
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: a, url: "${A}", protocol: kserve}
  - {name: b, url: "${B}", protocol: kserve}
routes:
  - {model: iris, upstream: a}
  - {model: shared, upstream: b}
  - {model: mnist, upstream: b}
policy: {anonymous: allow, default_purpose: care}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
""", A=a, B=b)  # fmt: skip
        listed = httpx.get(f"{proxy.url}/v1/models", timeout=30)
    assert listed.status_code == 200, listed.text
    # `shared` once (its route's upstream lists it), `stray` (no route reaches it) left out, as OpenAI lists are merged
    assert listed.json() == {"object": "list", "data": [], "models": ["iris", "shared", "mnist"]}, listed.text


def test_with_an_openai_upstream_too_the_list_is_openais_with_v1s_names_beside(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """The openai SDK's `models.list()` (and vLLM's, llama.cpp's clients) read OpenAI's list: a config that serves both
    answers that, and V1's names beside it, under V1's key (before: OpenAI's list alone)."""
    with serving(loop_thread, kserve_like(["iris"])) as k, serving(loop_thread, openai_like(["llama"])) as o:
        proxy = make_proxy("""
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: k, url: "${K}", protocol: kserve}
  - {name: o, url: "${O}"}
routes:
  - {model: iris, upstream: k}
  - {model: llama, upstream: o}
policy: {anonymous: allow, default_purpose: care}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
""", K=k, O=o)  # fmt: skip
        listed: Any = httpx.get(f"{proxy.url}/v1/models", timeout=30).json()
        import openai

        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
        ids = [model.id for model in client.models.list()]
    assert listed == {"object": "list", "data": [{"id": "llama", "object": "model"}], "models": ["iris"]}, listed
    assert ids == ["llama"]


def test_no_upstream_that_lists_answers_an_empty_openai_list(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    """Neither an OpenAI-compatible nor a KServe upstream (OIP only): OpenAI's empty list, as before."""
    with serving(loop_thread, kserve_like(["iris"])) as up:
        proxy = make_proxy("""
listen: {http: "127.0.0.1:0"}
upstreams: [{name: t, url: "${UP}", protocol: oip}]
routes: [{model: iris, upstream: t}]
policy: {anonymous: allow, default_purpose: care}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
""", UP=up)  # fmt: skip
        listed = httpx.get(f"{proxy.url}/v1/models", timeout=30)
    assert listed.json() == {"object": "list", "data": []}, listed.text
