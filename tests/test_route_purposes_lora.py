"""A call that applies its own LoRA adapters (llama.cpp's `lora` field, TGI's `parameters.adapter_id`) runs the
server's base weights with those adapters: other weights than its route's model, recorded as such
(`org/gemma-3+lora:sql.gguf:1`), but made of the base a purpose-limited route's model runs on. No route names the
adapters, so their purposes are not known: the call is held to the purposes of every limited route whose model runs
on that base there. Before 2026-12-05 it was held to its own route's alone, so a caller that may not use the route's
weights for ads reached them for ads by adding an adapter (or dropping the server's default one) to a call for any
other name the server answers."""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web
from huggingface_hub import InferenceClient
from huggingface_hub.errors import TextGenerationError

from proxy import checkpoints
from proxy.baseline import NO_WEIGHTS, load_baseline
from proxy.config import Upstream, parse
from proxy.protocols import Fetch
from proxy.verify import check, read_edges
from tests.harness import LoopThread, ProxyHandle, serving, traced
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.tgi import CHECKPOINT, MODEL_ID, Tgi
from tests.servers.vllm_like import ROOT, SERVED, VllmLike
from tests.test_check_explain import write
from tests.test_llama_lora import BASE, DEFAULT, llama_server
from tests.test_llama_lora_scales_workers import CALLS_MAX, Workers

__all__ = ["llama_server"]  # the fixture, imported

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: up, url: "${UPSTREAM}", protocol: openai}
routes:
  - {model: "${MODEL}", upstream: up, purposes: [care]}
  - {model: "*", upstream: up}
policy: {anonymous: allow}
telemetry: {exporter: otlp, endpoint: "${OTLP}", protocol: grpc}
"""
HI = [{"role": "user", "content": "hi"}]

# the call's own `lora` -> the weights it runs (the server applies /lora/med.gguf at 0.5 by default)
LORAS = {
    "its own adapter": ([{"id": 0, "scale": 1}], f"{DEFAULT}+lora:sql.gguf:1"),
    "none of the server's": ([{"id": 1, "scale": 0}], BASE),
    # read as llama-server's nlohmann json reads them (`get<int>`, `get<float>`); before 2026-12-05 the proxy read no
    # adapter in each, recorded org/gemma-3 (every adapter at 0) where sql.gguf ran
    "an id written as a float": ([{"id": 0.0, "scale": 1}], f"{DEFAULT}+lora:sql.gguf:1"),
    "an id past 32 bits": ([{"id": 4294967296, "scale": 1}], f"{DEFAULT}+lora:sql.gguf:1"),
    "a scale written as true": ([{"id": 0, "scale": True}], f"{DEFAULT}+lora:sql.gguf:1"),
}


@pytest.mark.parametrize("lora", list(LORAS), ids=list(LORAS))
def test_a_llama_call_applying_its_own_adapters_is_held_to_the_route_of_their_base(
    llama_server: tuple[VllmLike, str], otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], lora: str
) -> None:
    server, url = llama_server
    proxy = make_proxy(CONFIG, UPSTREAM=url, MODEL=BASE, OTLP=f"http://127.0.0.1:{otlp.port}")
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", default_headers={"x-purpose": "ads"})
    extra = {"lora": LORAS[lora][0]}
    before = len(server.data_requests())
    with pytest.raises(openai.PermissionDeniedError) as raised:  # was: forwarded for ads
        client.chat.completions.create(model="anything", messages=HI, extra_body=extra)  # type: ignore[arg-type]
    assert raised.value.code == "purpose_denied", raised.value.message
    assert "its own LoRA adapters" in raised.value.message and "route allows: care" in raised.value.message
    # the weights the route's model runs on, which its purposes bind (before 2026-12-05, review revloadlora of 1cf3ca7:
    # the call's own, its adapters applied)
    assert f"the weights of model {BASE!r} ({DEFAULT!r})," in raised.value.message, raised.value.message
    assert len(server.data_requests()) == before  # nothing reached the weights
    care = client.with_options(default_headers={"x-purpose": "care"})
    chat = care.chat.completions.with_raw_response
    reply = chat.create(model="anything", messages=HI, extra_body=extra)  # type: ignore[arg-type]
    assert reply.headers["x-lineage-checkpoint"] == LORAS[lora][1].replace(f"{DEFAULT}+", f"{BASE}+")


@pytest.fixture
def tgi(loop_thread: LoopThread) -> Iterator[Tgi]:
    server = Tgi()
    with serving(loop_thread, server.app()) as url:
        server.url = url
        yield server


def test_a_tgi_call_naming_an_adapter_is_held_to_the_route_of_its_base(
    tgi: Tgi, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    # TGI's native call names no model: sent by the "*" route (held to the route whose model the server runs)
    config = CONFIG.replace("policy: {anonymous: allow}", "policy: {anonymous: allow, passthrough: forward}")
    proxy = make_proxy(config, UPSTREAM=tgi.url, MODEL=MODEL_ID, OTLP=f"http://127.0.0.1:{otlp.port}")
    ads = InferenceClient(base_url=proxy.url, headers={"x-purpose": "ads"})
    with pytest.raises(TextGenerationError) as raised:  # was: forwarded for ads
        ads.text_generation("hi", adapter_id="predibase/customer_support", max_new_tokens=4)
    assert "its own LoRA adapters" in str(raised.value) and "route allows: care" in str(raised.value), raised.value
    assert f"the weights of model {MODEL_ID!r} ({CHECKPOINT!r})," in str(raised.value), raised.value  # (the route's)
    with pytest.raises(TextGenerationError):  # the server's base, without an adapter: held as before
        ads.text_generation("hi", max_new_tokens=4)
    assert tgi.received == []
    trace_id, headers = traced(**{"x-purpose": "care"})
    care = InferenceClient(base_url=proxy.url, headers=headers)
    assert care.text_generation("hi", adapter_id="predibase/customer_support", max_new_tokens=4)
    assert len(tgi.received) == 1
    span = otlp.by_trace(trace_id).attributes
    assert span["lineage.checkpoint"] == f"{CHECKPOINT}+lora:predibase/customer_support", span


# vLLM's listing: the base under its served name (or its root, without --served-model-name) and an adapter listed as a
# model of its own, its `parent` the base's name
_BASE = {"object": "model", "created": 1, "owned_by": "vllm", "root": ROOT, "parent": None}
_ADAPTER = {"id": "sql-lora", "object": "model", "created": 1, "owned_by": "vllm", "root": "/adapters/sql-lora"}
VLLM = {
    "served name": (SERVED, [{"id": SERVED, **_BASE}, {**_ADAPTER, "parent": SERVED}]),
    "root": (ROOT, [{"id": ROOT, **_BASE}, {**_ADAPTER, "parent": ROOT}]),
    # a parent that names neither (a base_model_name written unchecked: vLLM checks it with `is_base_model`, some of
    # its forks do not): a vLLM serves one base, and runs the adapter on it all the same
    "another name": (SERVED, [{"id": SERVED, **_BASE}, {**_ADAPTER, "parent": "meta-llama/Llama-3.1-8B"}]),
}


@pytest.mark.parametrize("named", list(VLLM), ids=list(VLLM))
def test_a_vllm_adapter_listed_on_a_limited_routes_base_is_held_to_its_purposes(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], named: str
) -> None:
    base, models = VLLM[named]
    server = VllmLike(models=models)
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url, MODEL=base, OTLP=f"http://127.0.0.1:{otlp.port}")
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", default_headers={"x-purpose": "ads"})
        with pytest.raises(openai.PermissionDeniedError) as raised:  # was: forwarded for ads, 200
            client.chat.completions.create(model="sql-lora", messages=HI)
        assert raised.value.code == "purpose_denied", raised.value.message
        assert "LoRA adapter on the weights of model" in raised.value.message, raised.value.message
        # the base's weights, which the route's purposes bind (before 2026-12-05 the adapter's own: '/adapters/sql-lora')
        assert f"the weights of model {base!r} ({ROOT!r})" in raised.value.message, raised.value.message
        assert "route allows: care" in raised.value.message
        assert server.data_requests() == []
        care = client.with_options(default_headers={"x-purpose": "care"})
        reply = care.chat.completions.with_raw_response.create(model="sql-lora", messages=HI)
        assert reply.headers["x-lineage-checkpoint"] == "/adapters/sql-lora"
        assert len(server.data_requests()) == 1


def test_a_route_on_a_vllm_adapter_does_not_hold_its_base(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """The adapter's purposes bind the adapter's weights (its root), not the base it runs on: the base, another of
    the server's models, goes on for any purpose."""
    server = VllmLike()
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url, MODEL="sql-lora", OTLP=f"http://127.0.0.1:{otlp.port}")
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", default_headers={"x-purpose": "ads"})
        reply = client.chat.completions.with_raw_response.create(model=SERVED, messages=HI)
        assert reply.headers["x-lineage-checkpoint"] == ROOT
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model="sql-lora", messages=HI)
        assert len(server.data_requests()) == 1


@pytest.mark.parametrize("listed", [True, False], ids=["loaded since the listing was read", "never listed"])
def test_a_vllm_name_its_listing_does_not_hold_is_held_to_the_purposes_of_the_base(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], listed: bool
) -> None:
    """vLLM serves one base and loads a LoRA adapter on it by name at run time (`POST /v1/load_lora_adapter`, or a
    LoRA resolver plugin on the first call naming it): a name its listing did not hold when it was read may run on the
    limited route's base. Refused as one whose checkpoint is not known (503, the metadata asked again) for a purpose
    the route does not allow; before 2026-12-05 forwarded for any purpose, each new name's first call at least."""
    base, models = VLLM["served name"]
    server = VllmLike(models=[models[0]])
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url, MODEL=base, OTLP=f"http://127.0.0.1:{otlp.port}")
        if listed:
            server.models.append(models[1])  # loaded at run time: the proxy read the listing before
        client = openai.OpenAI(
            base_url=f"{proxy.url}/v1", api_key="unused", default_headers={"x-purpose": "ads"}, max_retries=0
        )
        with pytest.raises(openai.InternalServerError) as raised:  # was: forwarded for ads, 200
            client.chat.completions.create(model="sql-lora", messages=HI)
        assert raised.value.status_code == 503 and raised.value.code == "checkpoint_unknown", raised.value.message
        assert "may be served by the weights of model" in raised.value.message, raised.value.message
        assert "route allows: care" in raised.value.message, raised.value.message
        assert server.data_requests() == []
        care = client.with_options(default_headers={"x-purpose": "care"})
        care.chat.completions.create(model="sql-lora", messages=HI)
        assert len(server.data_requests()) == 1


def test_a_name_a_vllm_does_not_list_once_asked_is_not_found(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """A name the vLLM's listing does not hold once asked about (a typo: `llama-3.1-8bb`) is answered 404
    `model_not_found` for a purpose the route on its base forbids, as vLLM answers a name it does not serve: before
    2026-12-05 it was 503 `checkpoint_unknown` (retryable) for as long as the name was not listed, so a client retried
    a typo for ever. Not forwarded: a vLLM with a LoRA resolver plugin loads a name it does not list on its base."""
    base, models = VLLM["served name"]
    server = VllmLike(models=[models[0]])
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url, MODEL=base, OTLP=f"http://127.0.0.1:{otlp.port}")
        ads = openai.OpenAI(
            base_url=f"{proxy.url}/v1", api_key="unused", default_headers={"x-purpose": "ads"}, max_retries=0
        )
        with pytest.raises(openai.InternalServerError) as first:  # not asked about yet: asked now
            ads.chat.completions.create(model="llama-3.1-8bb", messages=HI)
        assert first.value.status_code == 503 and first.value.code == "checkpoint_unknown", first.value.message
        # the round that asks about it (the one the refusal woke, or one after it)
        loop_thread.run(proxy.process.book.refresh(proxy.config.upstreams[0]))
        with pytest.raises(openai.NotFoundError) as raised:  # was: 503 checkpoint_unknown, again and again
            ads.chat.completions.create(model="llama-3.1-8bb", messages=HI)
        assert raised.value.code == "model_not_found", raised.value.message
        message = raised.value.message
        assert "model 'llama-3.1-8bb' is not in upstream 'up''s model list" in message, message
        assert f"model {base!r}, which may not be used for purpose 'ads'" in message, message
        assert server.data_requests() == []
        care = ads.with_options(default_headers={"x-purpose": "care"})  # a purpose the route allows: the vLLM answers
        assert care.chat.completions.with_raw_response.create(model="llama-3.1-8bb", messages=HI).status_code == 200
        assert len(server.data_requests()) == 1


# the load and unload are passthrough calls (their body not read): refused while a route limits purposes, unless so
FORWARD = CONFIG.replace("policy: {anonymous: allow}", "policy: {anonymous: allow, passthrough: forward}")


def test_a_vllm_adapter_loaded_through_the_proxy_is_held_at_once(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """A `POST /v1/load_lora_adapter` (and `/v1/unload_lora_adapter`) relayed to a vLLM changes what it lists: its
    metadata is read again before the reply goes out, as after llama.cpp's `POST /lora-adapters`, so the next call
    for the adapter is held to the route on the base it runs on, and one after the unload is a name not known. Before
    2026-12-05 the listing read before stood until the next round (`discovery_interval_s`): the new adapter's calls
    got a retryable 503 for every purpose, and the unloaded one was forwarded as listed still."""
    server = VllmLike(runtime_lora=True)  # (VLLM_ALLOW_RUNTIME_LORA_UPDATING)
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(FORWARD, UPSTREAM=url, MODEL=SERVED, OTLP=f"http://127.0.0.1:{otlp.port}")
        care = openai.OpenAI(
            base_url=f"{proxy.url}/v1", api_key="unused", default_headers={"x-purpose": "care"}, max_retries=0
        )
        assert care.chat.completions.with_raw_response.create(model="sql-lora", messages=HI).status_code == 200
        loaded = httpx.post(f"{proxy.url}/v1/load_lora_adapter", headers={"x-purpose": "care"}, timeout=10,
                            json={"lora_name": "new-lora", "lora_path": "/adapters/new-lora"})  # fmt: skip
        assert loaded.status_code == 200, loaded.text
        assert loaded.text == "Success: LoRA adapter 'new-lora' added successfully."
        reply = care.chat.completions.with_raw_response.create(model="new-lora", messages=HI)  # was: 503
        assert reply.headers["x-lineage-checkpoint"] == "/adapters/new-lora"
        ads = care.with_options(default_headers={"x-purpose": "ads"})
        with pytest.raises(openai.PermissionDeniedError) as raised:  # was: 503 checkpoint_unknown
            ads.chat.completions.create(model="new-lora", messages=HI)
        assert raised.value.code == "purpose_denied" and "LoRA adapter on" in raised.value.message
        unloaded = httpx.post(f"{proxy.url}/v1/unload_lora_adapter", headers={"x-purpose": "care"}, timeout=10,
                              json={"lora_name": "sql-lora"})  # fmt: skip
        assert unloaded.status_code == 200, unloaded.text
        calls = len(server.data_requests())
        with pytest.raises(openai.InternalServerError) as unknown:  # was: forwarded as listed still
            ads.chat.completions.create(model="sql-lora", messages=HI)
        assert unknown.value.status_code == 503 and unknown.value.code == "checkpoint_unknown", unknown.value.message
        assert len(server.data_requests()) == calls


TWO_VLLMS = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: a, url: "${A}", protocol: openai}
  - {name: b, url: "${B}", protocol: openai}
routes:
  - {model: llama-3.1-8b, upstream: a, purposes: [care]}
  - {model: qwen-sql, upstream: b}
  - {model: "*", upstream: a}
policy: {anonymous: allow, passthrough: forward}
telemetry: {exporter: otlp, endpoint: "${OTLP}", protocol: grpc}
"""


def test_a_vllm_adapter_load_goes_where_the_calls_for_the_adapter_go(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """A `load_lora_adapter` (or `unload_lora_adapter`) goes to the upstream a call for the adapter it names
    (`lora_name`) is routed to, which then serves it: before 2026-12-05 it went to the `"*"` route's upstream whatever
    it named, so with two vLLMs an adapter routed to the other was loaded on the wrong base, and its calls reached a
    server that did not have it. A body naming no adapter goes where the `"*"` route says, as before."""
    a, b = VllmLike(runtime_lora=True), VllmLike(runtime_lora=True, models=[{"id": "qwen", **_BASE, "root": "Qwen/Q"}])
    with serving(loop_thread, a.app()) as url_a, serving(loop_thread, b.app()) as url_b:
        proxy = make_proxy(TWO_VLLMS, A=url_a, B=url_b, OTLP=f"http://127.0.0.1:{otlp.port}")
        care = {"x-purpose": "care"}
        loaded = httpx.post(f"{proxy.url}/v1/load_lora_adapter", headers=care, timeout=10,
                            json={"lora_name": "qwen-sql", "lora_path": "/adapters/qwen-sql"})  # fmt: skip
        assert loaded.status_code == 200, loaded.text
        assert [m["id"] for m in b.models] == ["qwen", "qwen-sql"]  # was: loaded on a, the "*" route's
        assert [m["id"] for m in a.models] == [SERVED, "sql-lora"]
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", default_headers=care, max_retries=0)
        reply = client.chat.completions.with_raw_response.create(model="qwen-sql", messages=HI)
        assert reply.headers["x-lineage-checkpoint"] == "/adapters/qwen-sql"  # b's listing, read again after the load
        unloaded = httpx.post(f"{proxy.url}/v1/unload_lora_adapter", headers=care, timeout=10,
                              json={"lora_name": "qwen-sql"})  # fmt: skip
        assert unloaded.status_code == 200, unloaded.text
        assert [m["id"] for m in b.models] == ["qwen"]
        named_none = httpx.post(f"{proxy.url}/v1/load_lora_adapter", headers=care, timeout=10, json={})
        assert named_none.status_code == 400, named_none.text  # (the "*" route's vLLM refused it)
        assert a.requests[-1].path == "/v1/load_lora_adapter" and not any(
            r.path == "/v1/load_lora_adapter" and r.body == b"{}" for r in b.requests
        )


_QWEN_SQL = '"lora_name": "qwen-sql", "lora_path": "/adapters/qwen-sql"'
# a load body whose adapter the vLLM reads as its FastAPI app does (Starlette's `Request.json()`), -> the status the
# proxy answers: before 2026-12-05 (review revroutes of 768e77e) the proxy read no name in each, and sent it by the "*"
# route, to the other vLLM
LOADS_READ = {
    "a key written twice (the last is read)": (f'{{"lora_name": "decoy", {_QWEN_SQL}}}'.encode(), 200),
    "a UTF-8 byte order mark": (b"\xef\xbb\xbf" + f"{{{_QWEN_SQL}}}".encode(), 200),
    "UTF-16": (f"{{{_QWEN_SQL}}}".encode("utf-16"), 200),
    # its name is not read past 64 KiB: refused, where a name there was decided as the "*" route's call
    "over 64 KiB": (f'{{{_QWEN_SQL}, "pad": "{"p" * 65536}"}}'.encode(), 413),
}


@pytest.mark.parametrize("load", list(LOADS_READ), ids=list(LOADS_READ))
def test_a_vllm_adapter_load_goes_by_the_name_the_vllm_reads(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], load: str
) -> None:
    """The adapter a load names is read as vLLM reads it, so the load goes where that adapter's calls go and is
    decided as its call; one whose name is not read so far is refused, not sent by the `"*"` route: there, with two
    vLLMs, the adapter routed to one was loaded on the other's base."""
    body, status = LOADS_READ[load]
    a, b = VllmLike(runtime_lora=True), VllmLike(runtime_lora=True, models=[{"id": "qwen", **_BASE, "root": "Qwen/Q"}])
    with serving(loop_thread, a.app()) as url_a, serving(loop_thread, b.app()) as url_b:
        proxy = make_proxy(TWO_VLLMS, A=url_a, B=url_b, OTLP=f"http://127.0.0.1:{otlp.port}")
        loaded = httpx.post(f"{proxy.url}/v1/load_lora_adapter", content=body, timeout=10,
                            headers={"x-purpose": "care", "content-type": "application/json"})  # fmt: skip
        assert loaded.status_code == status, loaded.text
        assert [m["id"] for m in a.models] == [SERVED, "sql-lora"]  # was: qwen-sql loaded on a
        assert [m["id"] for m in b.models] == (["qwen", "qwen-sql"] if status == 200 else ["qwen"])
        if status == 413:
            assert loaded.json()["error"]["code"] == "request_too_large", loaded.text
            assert not any(r.path == "/v1/load_lora_adapter" for r in (*a.requests, *b.requests))


def test_a_vllm_adapter_unload_is_decided_by_the_route_of_the_name_the_vllm_reads(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """An unload (or load) is decided by the route of the adapter the vLLM reads in its body: one written twice in it
    does not make it the `"*"` route's call. Before 2026-12-05 (review revroutes of 768e77e) a caller the adapter's
    route forbids (`care`, where `sql-lora` allows `billing`) unloaded it so, and could load other weights under its
    name; a body the vLLM cannot read (nested too deeply) is the `"*"` route's, as before, not an internal error."""
    billing = TWO_VLLMS.replace("  - {model: qwen-sql", "  - {model: sql-lora, upstream: a, purposes: [billing]}\n"
                                "  - {model: qwen-sql")  # fmt: skip
    a, b = VllmLike(runtime_lora=True), VllmLike(runtime_lora=True, models=[{"id": "qwen", **_BASE, "root": "Qwen/Q"}])
    with serving(loop_thread, a.app()) as url_a, serving(loop_thread, b.app()) as url_b:
        proxy = make_proxy(billing, A=url_a, B=url_b, OTLP=f"http://127.0.0.1:{otlp.port}")
        headers = {"x-purpose": "care", "content-type": "application/json"}
        for body in (b'{"lora_name": "sql-lora"}', b'{"lora_name": "decoy", "lora_name": "sql-lora"}'):
            refused = httpx.post(f"{proxy.url}/v1/unload_lora_adapter", content=body, headers=headers, timeout=10)
            assert refused.status_code == 403, refused.text  # was, the second: 200, unloaded
            assert refused.json()["error"]["code"] == "purpose_denied", refused.text
        assert [m["id"] for m in a.models] == [SERVED, "sql-lora"]
        deep = httpx.post(f"{proxy.url}/v1/load_lora_adapter", content=b"[" * 60_000, headers=headers, timeout=10)
        assert deep.status_code == 400 and deep.json()["error"]["message"] == "There was an error parsing the body"
        assert a.requests[-1].path == "/v1/load_lora_adapter"  # was: 500 internal_error, the proxy's


def test_a_vllm_adapter_load_naming_its_adapter_is_its_call_under_auto(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """Under `policy.passthrough: auto` without zones, while a route limits purposes, a load naming its adapter is
    decided as that adapter's call (since 768e77e; the README said `forward` was needed: review revroutes); one naming
    none is refused as a passthrough call that may name any model, as every load was before."""
    server = VllmLike(runtime_lora=True)
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url, MODEL=SERVED, OTLP=f"http://127.0.0.1:{otlp.port}")
        care = {"x-purpose": "care"}
        named = httpx.post(f"{proxy.url}/v1/load_lora_adapter", headers=care, timeout=10,
                           json={"lora_name": "new-lora", "lora_path": "/adapters/new-lora"})  # fmt: skip
        assert named.status_code == 200, named.text
        unnamed = httpx.post(f"{proxy.url}/v1/load_lora_adapter", headers=care, timeout=10, json={"lora_path": "/x"})
        assert unnamed.status_code == 403 and unnamed.json()["error"]["code"] == "endpoint_denied", unnamed.text
        assert [m["id"] for m in server.models] == [SERVED, "sql-lora", "new-lora"]


def test_a_vllm_adapter_load_refused_by_the_server_reads_nothing_again(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """A load the vLLM refuses (a name loaded already: 400) changed nothing: no round is asked for."""
    server = VllmLike(runtime_lora=True)
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(FORWARD, UPSTREAM=url, MODEL=SERVED, OTLP=f"http://127.0.0.1:{otlp.port}")
        listings = sum(1 for r in server.requests if r.path == "/v1/models")
        refused = httpx.post(f"{proxy.url}/v1/load_lora_adapter", headers={"x-purpose": "care"}, timeout=10,
                             json={"lora_name": "sql-lora", "lora_path": "/adapters/sql-lora"})  # fmt: skip
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["message"] == "The lora adapter 'sql-lora' has already been loaded."
        assert sum(1 for r in server.requests if r.path == "/v1/models") == listings


def test_a_vllm_adapter_load_for_a_purpose_its_bases_route_forbids_is_denied(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """A load of a new adapter (listed by nothing but the load) on the base of a route that limits its purposes, for a
    purpose that route forbids, is refused 403 `purpose_denied`: the adapter would run on those weights, and nothing is
    waiting to be known. Until review routes2 (2026-12-05) it was 503 `checkpoint_unknown` ("retry shortly"), then 404
    `model_not_found` once the listing was asked about: retried, it never passed."""
    server = VllmLike(runtime_lora=True)
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(FORWARD, UPSTREAM=url, MODEL=SERVED, OTLP=f"http://127.0.0.1:{otlp.port}")
        load = {"lora_name": "new-lora", "lora_path": "/adapters/new-lora"}
        for _ in range(2):  # was: 503, then 404 after a round
            refused = httpx.post(f"{proxy.url}/v1/load_lora_adapter", headers={"x-purpose": "ads"}, json=load,
                                 timeout=10)  # fmt: skip
            assert refused.status_code == 403, refused.text
            error = refused.json()["error"]
            assert error["code"] == "purpose_denied", refused.text
            assert f"the weights of model {SERVED!r} ({ROOT!r})" in error["message"], error["message"]
            assert "route allows: care" in error["message"], error["message"]
            loop_thread.run(proxy.process.book.refresh(proxy.config.upstreams[0]))
        assert [m["id"] for m in server.models] == [SERVED, "sql-lora"]
        loaded = httpx.post(f"{proxy.url}/v1/load_lora_adapter", headers={"x-purpose": "care"}, json=load, timeout=10)
        assert loaded.status_code == 200, loaded.text
        assert [m["id"] for m in server.models] == [SERVED, "sql-lora", "new-lora"]


def test_a_vllm_adapter_load_or_unload_under_block_runs_no_weights(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    """A load or unload is its adapter's call for its route and purposes, but runs no weights: under
    `lineage.on_unapproved: block` (a baseline approving the caller's purpose for the base's checkpoint) its flow names
    no checkpoint, so it is neither held for the adapter's (which only the load lists) nor judged as the adapter's.
    Until review routes2, 2026-12-05 (a regression of 768e77e), every load of a new adapter was 503
    `checkpoint_unknown` for ever, and an unload of a listed one 403 `flow_not_approved`, recorded as the adapter's
    weights. A call for the adapter runs its weights, and is judged as them. `verify` judges their edges as the
    boundary judged them (since review routes, 2026-12-05: it read them as of no known checkpoint, `''`, which the
    baseline's `checkpoints` did not list: `new-checkpoint`)."""
    server = VllmLike(runtime_lora=True)
    with serving(loop_thread, server.app()) as url:
        config = write(tmp_path, url, checkpoint=ROOT).read_text().replace("store: null", 'store: "${STORE}"')
        proxy = make_proxy(config.replace("anonymous: allow", "anonymous: allow\n  passthrough: forward"))
        loaded = httpx.post(f"{proxy.url}/v1/load_lora_adapter", timeout=10,
                            json={"lora_name": "new-lora", "lora_path": "/adapters/new-lora"})  # fmt: skip
        assert loaded.status_code == 200, loaded.text  # was: 503 checkpoint_unknown, for ever
        assert [m["id"] for m in server.models] == [SERVED, "sql-lora", "new-lora"]
        unloaded = httpx.post(f"{proxy.url}/v1/unload_lora_adapter", json={"lora_name": "sql-lora"}, timeout=10)
        assert unloaded.status_code == 200, unloaded.text  # was: 403 flow_not_approved
        assert [m["id"] for m in server.models] == [SERVED, "new-lora"]
        for reply in (loaded, unloaded):  # recorded with no checkpoint (was, the unload: '/adapters/sql-lora')
            assert "x-lineage-checkpoint" not in reply.headers, reply.headers
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.PermissionDeniedError) as raised:  # the adapter's weights, not approved
            client.chat.completions.create(model="new-lora", messages=HI)
        assert raised.value.code == "flow_not_approved" and "/adapters/new-lora" in raised.value.message
        assert client.chat.completions.with_raw_response.create(model=SERVED, messages=HI).status_code == 200
    rows = read_edges(str(tmp_path / "lineage.db"))
    assert {(row.key.checkpoint, row.key.decision) for row in rows} == {
        (NO_WEIGHTS, "allow"),  # the load and the unload: one flow (was: '', as a failed call's)
        ("", "deny"),  # the call for the adapter
        (ROOT, "allow"),
    }, rows
    verdict = check(rows, load_baseline(tmp_path / "baseline.yaml"))
    assert [(row.key.checkpoint, finding.kind) for row, finding in verdict.unapproved] == [("", "new-denial")]


ONE_VLLM = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: up, url: "http://127.0.0.1:1"}]
routes: [{model: llama-3.1-8b, upstream: up, purposes: [care]}, {model: "*", upstream: up}]
"""


def _two_workers_books(
    listing: list[dict[str, Any]],
) -> tuple[Upstream, Callable[[], tuple[checkpoints.CheckpointBook, checkpoints.CheckpointBook]]]:
    """The one vLLM of `ONE_VLLM` and how to make two workers' books of it (made in the test's loop), sharing their
    change counts as `serve --workers` does, its `/v1/models` answering `listing` as it stands, its route limited to
    `care`."""
    (upstream,) = parse(ONE_VLLM, source="t.yaml").upstreams
    limits = [("up", SERVED, frozenset({"care"}))]

    async def get_json(up: Any, path: str) -> Any:
        if path == "/v1/models":
            return {"object": "list", "data": list(listing)}
        raise checkpoints.MetadataStatus(404, path)

    def books() -> tuple[checkpoints.CheckpointBook, checkpoints.CheckpointBook]:
        changes = checkpoints.Changes()
        one, two = (
            checkpoints.CheckpointBook([upstream], Fetch(get_json), changes=changes, limits=limits) for _ in "12"
        )
        return one, two

    return upstream, books


def test_a_vllm_adapter_loaded_in_one_worker_is_read_again_by_every_worker() -> None:
    """`serve --workers N`: a load relayed by one worker makes what every worker read of that vLLM stale (read again
    before a call of theirs is held to it), as a `POST /lora-adapters` does; before 2026-12-05 the others kept the
    listing read before until their next round (a vLLM's catalog was not watched)."""
    listing = [{"id": SERVED, **_BASE}]
    upstream, books = _two_workers_books(listing)

    async def main() -> None:
        one, two = books()
        for book in (one, two):
            await book.refresh(upstream)
            assert book.resolve(upstream, "new-lora", learn=False) is None and not book.stale("up")
        listing.append({**_ADAPTER, "id": "new-lora", "root": "/adapters/new-lora", "parent": SERVED})
        one.changed(upstream)  # (relayed in one worker: no round runs here)
        assert two.resolve(upstream, SERVED, learn=False) is not None
        assert two.stale("up") and two.incomplete["up"]  # was: neither, until two's next round
        await two.refresh(upstream)
        found = two.resolve(upstream, "new-lora", learn=False)
        assert found is not None and found.name == "/adapters/new-lora" and found.parent == SERVED, found
        assert not two.stale("up")

    asyncio.run(main())


@pytest.fixture
def sglang(loop_thread: LoopThread) -> Iterator[tuple[VllmLike, str]]:
    """SGLang's listing (`owned_by: sglang`; an adapter a model of its own, its `parent` the served name) and its
    run-time LoRA endpoints (`POST /load_lora_adapter` `{"lora_name", "lora_path"}`, `/unload_lora_adapter`
    `{"lora_name"}`), answering `LoRAUpdateOutput` (`success`, `error_message`, `loaded_adapters`), 400 on failure."""
    server = VllmLike(models=[{"id": SERVED, **_BASE, "owned_by": "sglang"}])
    with serving(loop_thread, _sglang(server)) as url:
        yield server, url


def _sglang(
    server: VllmLike, arrived: threading.Event | None = None, gate: asyncio.Event | None = None
) -> web.Application:
    """The `sglang` fixture's app: an update of its weights sets `arrived` once it has come, then waits for `gate`
    (the weights loading) before it answers."""
    app = server.app()

    def answer(error: str = "") -> web.Response:
        loaded = {m["id"]: m["root"] for m in server.models if m.get("parent") is not None}
        reply = {"success": not error, "error_message": error, "loaded_adapters": loaded}
        return web.json_response(reply, status=400 if error else 200)

    async def load(request: web.Request) -> web.Response:
        body = await request.json()
        if any(m["id"] == body["lora_name"] for m in server.models):
            return answer(f"Failed to load LoRA adapter {body['lora_name']}: already loaded")
        server.models.append({**_ADAPTER, "owned_by": "sglang", "id": body["lora_name"], "root": body["lora_path"],
                              "parent": SERVED})  # fmt: skip
        return answer()

    async def unload(request: web.Request) -> web.Response:
        body = await request.json()
        server.models[:] = [m for m in server.models if m["id"] != body["lora_name"] or m.get("parent") is None]
        return answer()

    async def update_weights(request: web.Request) -> web.Response:
        # SGLang's `POST /update_weights_from_disk` (`UpdateWeightFromDiskReqInput`: `model_path`): the weights at the
        # path replace its base's, and its served model name becomes the path (`TokenizerManager`), its listing's id
        # and root (and its adapters' parent); answers `success`, `message`, `num_paused_requests`, 400 on failure
        path = (await request.json())["model_path"]
        if arrived is not None and gate is not None:
            arrived.set()
            await gate.wait()
        if not path.startswith("/ckpt/"):
            reply = {"success": False, "message": f"Failed to load {path}", "num_paused_requests": 0}
            return web.json_response(reply, status=400)
        base = {**server.models[0], "id": path, "root": path}
        server.models[:] = [base, *({**m, "parent": path} for m in server.models[1:])]
        return web.json_response({"success": True, "message": "Succeeded to update model weights.",
                                  "num_paused_requests": 0})  # fmt: skip

    app.router.add_post("/load_lora_adapter", load)
    app.router.add_post("/unload_lora_adapter", unload)
    app.router.add_post("/update_weights_from_disk", update_weights)
    return app


def test_an_sglang_adapter_is_held_as_a_vllm_one(
    sglang: tuple[VllmLike, str], otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """SGLang lists and loads adapters on its one base as vLLM does: a name its listing does not hold is refused for a
    purpose the base's route forbids as one not known yet (before 2026-12-05 forwarded for any purpose: only a vLLM's
    base was `loading`), and one loaded through the proxy is held as listed at once."""
    server, url = sglang
    proxy = make_proxy(FORWARD, UPSTREAM=url, MODEL=SERVED, OTLP=f"http://127.0.0.1:{otlp.port}")
    ads = openai.OpenAI(
        base_url=f"{proxy.url}/v1", api_key="unused", default_headers={"x-purpose": "ads"}, max_retries=0
    )
    with pytest.raises(openai.InternalServerError) as raised:  # was: forwarded for ads, 200
        ads.chat.completions.create(model="sql-lora", messages=HI)
    assert raised.value.status_code == 503 and raised.value.code == "checkpoint_unknown", raised.value.message
    assert server.data_requests() == []
    loaded = httpx.post(f"{proxy.url}/load_lora_adapter", headers={"x-purpose": "care"}, timeout=10,
                        json={"lora_name": "sql-lora", "lora_path": "/adapters/sql-lora"})  # fmt: skip
    assert loaded.status_code == 200 and loaded.json()["success"] is True, loaded.text
    with pytest.raises(openai.PermissionDeniedError) as denied:  # was: 503 until the next round
        ads.chat.completions.create(model="sql-lora", messages=HI)
    assert f"the weights of model {SERVED!r} ({ROOT!r})" in denied.value.message, denied.value.message
    care = ads.with_options(default_headers={"x-purpose": "care"})
    reply = care.chat.completions.with_raw_response.create(model="sql-lora", messages=HI)
    assert reply.headers["x-lineage-checkpoint"] == "/adapters/sql-lora"


def test_an_sglang_weights_update_through_the_proxy_is_read_at_once(
    sglang: tuple[VllmLike, str], otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """SGLang's `POST /update_weights_from_disk` replaces the weights its base serves, listed from then on under their
    path: relayed (a passthrough call), the listing is read again before its reply goes out, as after a
    `load_lora_adapter`, so the calls after it are recorded, and held, with the weights that serve them. Before
    2026-12-05 what was read before stood until the next round (`discovery_interval_s`): a call for the base's old name
    was recorded as the weights it no longer runs, and one for the new name as a name not listed."""
    server, url = sglang
    proxy = make_proxy(FORWARD, UPSTREAM=url, MODEL=SERVED, OTLP=f"http://127.0.0.1:{otlp.port}")
    care = openai.OpenAI(
        base_url=f"{proxy.url}/v1", api_key="unused", default_headers={"x-purpose": "care"}, max_retries=0
    )
    assert care.chat.completions.with_raw_response.create(model=SERVED, messages=HI).headers[
        "x-lineage-checkpoint"
    ] == ROOT  # fmt: skip
    failed = httpx.post(f"{proxy.url}/update_weights_from_disk", headers={"x-purpose": "care"}, timeout=10,
                        json={"model_path": "/elsewhere/step-100"})  # fmt: skip
    assert failed.status_code == 400 and failed.json()["success"] is False, failed.text
    assert proxy.process.book.resolve(proxy.config.upstreams[0], SERVED, learn=False) is not None  # (nothing changed)
    updated = httpx.post(f"{proxy.url}/update_weights_from_disk", headers={"x-purpose": "care"}, timeout=10,
                         json={"model_path": "/ckpt/step-200"})  # fmt: skip
    assert updated.status_code == 200 and updated.json()["success"] is True, updated.text
    old = care.chat.completions.with_raw_response.create(model=SERVED, messages=HI)
    assert old.headers["x-lineage-checkpoint"] != ROOT  # was: ROOT, the weights replaced
    trace_id, headers = traced(**{"x-purpose": "care"})
    new = care.with_options(default_headers=headers).chat.completions.with_raw_response
    assert new.create(model="/ckpt/step-200", messages=HI).headers["x-lineage-checkpoint"] == "/ckpt/step-200"
    span = otlp.by_trace(trace_id).attributes
    assert span["lineage.checkpoint.source"] == "upstream", span  # was: the reply's (not listed when read)


def test_a_model_less_post_for_a_purpose_the_sglang_bases_route_forbids_is_denied(
    sglang: tuple[VllmLike, str], otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """A POST naming no model relayed to an SGLang (a vLLM) whose one base is a purpose-limited route's model, for a
    purpose that route forbids, is refused 403 `purpose_denied`: SGLang's `update_weights_from_disk` replaces those
    weights, a load naming no adapter would load one on them, any other runs, if anything, on them. Nothing is waiting
    to be known: until helper routes3 (2026-12-05) each was 503 `checkpoint_unknown` ("being asked about model ''"),
    retried for ever. One whose upstream's server limits no route's purposes is forwarded, as before."""
    server, url = sglang
    proxy = make_proxy(FORWARD, UPSTREAM=url, MODEL=SERVED, OTLP=f"http://127.0.0.1:{otlp.port}")
    ads = {"x-purpose": "ads"}
    for path, body in (
        ("/update_weights_from_disk", {"model_path": "/ckpt/step-200"}),
        ("/load_lora_adapter", {"lora_path": "/adapters/sql-lora"}),  # (no lora_name: SGLang refuses it)
        ("/flush_cache", {}),
    ):
        for _ in range(2):  # was: 503 checkpoint_unknown each time
            refused = httpx.post(f"{proxy.url}{path}", headers=ads, json=body, timeout=10)
            assert refused.status_code == 403, refused.text
            error = refused.json()["error"]
            assert error["code"] == "purpose_denied", refused.text
            assert f"the weights of model {SERVED!r} ({ROOT!r})" in error["message"], error["message"]
            assert "route allows: care" in error["message"], error["message"]
    assert not any(r.path != "/v1/models" for r in server.requests), [r.path for r in server.requests]
    assert [m["id"] for m in server.models] == [SERVED]
    updated = httpx.post(f"{proxy.url}/update_weights_from_disk", headers={"x-purpose": "care"}, timeout=10,
                         json={"model_path": "/ckpt/step-200"})  # fmt: skip
    assert updated.status_code == 200 and updated.json()["success"] is True, updated.text


def test_a_model_less_post_to_a_server_no_route_limits_is_forwarded_for_any_purpose(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """Beside a purpose-limited route's SGLang, the `"*"` route's other SGLang, whose weights no route limits, takes
    an update of its weights (a POST naming no model) for any purpose."""
    a = VllmLike(models=[{"id": SERVED, **_BASE, "owned_by": "sglang"}])
    b = VllmLike(models=[{"id": "qwen", **_BASE, "root": "Qwen/Q", "owned_by": "sglang"}])
    with serving(loop_thread, _sglang(a)) as url_a, serving(loop_thread, _sglang(b)) as url_b:
        config = TWO_VLLMS.replace('{model: "*", upstream: a}', '{model: "*", upstream: b}')
        proxy = make_proxy(config, A=url_a, B=url_b, OTLP=f"http://127.0.0.1:{otlp.port}")
        updated = httpx.post(f"{proxy.url}/update_weights_from_disk", headers={"x-purpose": "ads"}, timeout=10,
                             json={"model_path": "/ckpt/step-200"})  # fmt: skip
        assert updated.status_code == 200 and updated.json()["success"] is True, updated.text
        assert [m["id"] for m in b.models] == ["/ckpt/step-200"] and [m["id"] for m in a.models] == [SERVED]


def test_a_call_made_while_an_sglang_weights_update_runs_is_not_recorded_as_the_weights_replaced(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """SGLang holds a call that comes while `update_weights_from_disk` runs (its tokenizer manager's writer-preferring
    lock) and runs it on the weights the update loads: from the update's forwarding until its reply, a call is
    recorded and checked as one whose checkpoint is not known yet; after a failed update what is read next is known
    again. Before (review revroutes2, 2026-12-05) such a call was recorded, and held, as the weights being replaced."""
    server = VllmLike(models=[{"id": SERVED, **_BASE, "owned_by": "sglang"}])
    arrived, gate = threading.Event(), asyncio.Event()

    async def closed() -> None:
        arrived.clear()
        gate.clear()

    with serving(loop_thread, _sglang(server, arrived, gate)) as url, ThreadPoolExecutor(1) as pool:
        proxy = make_proxy(FORWARD, UPSTREAM=url, MODEL=SERVED, OTLP=f"http://127.0.0.1:{otlp.port}")
        (upstream,) = proxy.config.upstreams
        care = openai.OpenAI(
            base_url=f"{proxy.url}/v1", api_key="unused", default_headers={"x-purpose": "care"}, max_retries=0
        ).chat.completions.with_raw_response
        assert care.create(model=SERVED, messages=HI).headers["x-lineage-checkpoint"] == ROOT
        for path, status in (("/elsewhere/step-100", 400), ("/ckpt/step-200", 200)):
            loop_thread.run(closed())
            update = pool.submit(httpx.post, f"{proxy.url}/update_weights_from_disk", timeout=10,
                                 headers={"x-purpose": "care"}, json={"model_path": path})  # fmt: skip
            assert arrived.wait(10)  # at the server, loading the weights
            during = care.create(model=SERVED, messages=HI).headers.get("x-lineage-checkpoint")
            assert during != ROOT, path  # was: ROOT, the weights the update replaces (served by those it loads)
            loop_thread.loop.call_soon_threadsafe(gate.set)
            assert update.result().status_code == status, update.result().text
            if status == 400:  # (nothing replaced: read again, the base is known as before)
                loop_thread.run(proxy.process.book.refresh(upstream))
                found = proxy.process.book.resolve(upstream, SERVED, learn=False)
                assert found is not None and found.name == ROOT, found
        new = care.create(model="/ckpt/step-200", messages=HI)
        assert new.headers["x-lineage-checkpoint"] == "/ckpt/step-200"


def test_a_vllm_adapter_changed_in_one_worker_is_not_known_in_another_until_read_again() -> None:
    """A load or unload another worker relayed makes the adapters this worker read unknown until it reads them again,
    as a `POST /lora-adapters` makes the scales unknown (`org/gemma-3+lora:?`): the call that finds the change goes out
    before the round it wakes ends. Before 2026-12-05 (review revloadlora of 1cf3ca7) it resolved to the listing read
    before: an adapter unloaded was forwarded as listed, and one loaded again under its name from another path (vLLM's
    unload then load, or `load_inplace`) was recorded and held as the weights it no longer runs."""
    listing = [{"id": SERVED, **_BASE}, {**_ADAPTER, "parent": SERVED}]
    upstream, books = _two_workers_books(listing)

    async def main() -> None:
        one, two = books()
        for book in (one, two):
            await book.refresh(upstream)
            found = book.resolve(upstream, "sql-lora", learn=False)
            assert found is not None and found.name == "/adapters/sql-lora"
        listing[1] = {**_ADAPTER, "root": "/adapters/sql-lora-v2", "parent": SERVED}  # unloaded, loaded again
        one.changed(upstream)  # (relayed in one worker: no round runs here)
        assert two.resolve(upstream, "sql-lora", learn=False) is None  # was: '/adapters/sql-lora', run no more
        base = two.resolve(upstream, SERVED, learn=False)  # the base a load does not change: known as before
        assert base is not None and base.name == ROOT
        assert two.stale("up")
        await two.refresh(upstream)
        found = two.resolve(upstream, "sql-lora", learn=False)
        assert found is not None and found.name == "/adapters/sql-lora-v2" and found.parent == SERVED, found

    asyncio.run(main())


_SGLANG = [{"id": SERVED, **_BASE, "owned_by": "sglang"}]
_STEP_200 = {"id": "/ckpt/step-200", "root": "/ckpt/step-200"}  # its base once `update_weights_from_disk` replaced it
_LIMITED = ((SERVED, frozenset({"care"})),)  # the route `_two_workers_books` limits


def test_an_sglang_weights_update_in_one_worker_is_not_known_in_another_until_read_again() -> None:
    """SGLang's `update_weights_from_disk` relayed by one worker replaces the weights its base serves: in every worker,
    what was read of that server is not known from then on, its base too, until it is read again, and the route the
    base's name limits waits for it (`unheld`). Before (helper routes2, 2026-12-05) another worker kept its base, as a
    LoRA load leaves it: its next call for the base's old name was recorded and held as the weights replaced."""
    listing = list(_SGLANG)
    upstream, books = _two_workers_books(listing)

    async def main() -> None:
        one, two = books()
        for book in (one, two):
            await book.refresh(upstream)
            found = book.resolve(upstream, SERVED, learn=False)
            assert found is not None and found.name == ROOT and not book.unheld
        listing[0] = {**listing[0], **_STEP_200}
        one.changed(upstream, True)  # (relayed in one worker: no round runs here)
        for book in (one, two):
            assert book.resolve(upstream, SERVED, learn=False) is None  # was, in two: ROOT, the weights replaced
            assert book.stale("up") and book.unheld == {"up": _LIMITED}, book.unheld
        await two.refresh(upstream)
        found = two.resolve(upstream, "/ckpt/step-200", learn=False)
        assert found is not None and found.name == "/ckpt/step-200" and not two.stale("up") and not two.unheld
        assert two.resolve(upstream, SERVED, learn=False) is None  # (listed no more)
        one.changed(upstream)  # a LoRA adapter's load since: the base is kept, as before
        found = two.resolve(upstream, "/ckpt/step-200", learn=False)
        assert found is not None and found.name == "/ckpt/step-200" and two.stale("up")
        await two.refresh(upstream)
        one.changed(upstream, True)  # and an update, then a load two relays before a call there found the update
        two.changed(upstream)
        assert two.resolve(upstream, "/ckpt/step-200", learn=False) is None

    asyncio.run(main())


def test_a_round_begun_before_an_sglang_weights_update_does_not_make_its_base_known_again() -> None:
    """A round that read SGLang's listing before a weights update relayed meanwhile, and answers after it, leaves what
    it read unknown (the update is not read yet): its base is not the weights that serve now (the round read the one
    replaced). Calls meanwhile in the worker that relayed it, before the round it waits for, are the same case."""
    (upstream,) = parse(ONE_VLLM, source="t.yaml").upstreams
    listing = list(_SGLANG)
    read: list[asyncio.Event] = []  # (set: the round after the first has read the listing, and waits for the test)
    answer = asyncio.Event()

    async def get_json(up: Any, path: str) -> Any:
        if path != "/v1/models":
            raise checkpoints.MetadataStatus(404, path)
        data = list(listing)
        if read:
            read[0].set()
            await answer.wait()
        return {"object": "list", "data": data}

    async def main() -> None:
        book = checkpoints.CheckpointBook([upstream], Fetch(get_json), limits=[("up", SERVED, frozenset({"care"}))])
        await book.refresh(upstream)
        read.append(asyncio.Event())
        round_ = asyncio.create_task(book.refresh(upstream))
        await read[0].wait()
        listing[0] = {**listing[0], **_STEP_200}
        book.changed(upstream, True)
        assert book.resolve(upstream, SERVED, learn=False) is None
        answer.set()
        await round_
        assert book.resolve(upstream, SERVED, learn=False) is None  # was: ROOT, the weights replaced
        assert book.stale("up") and book.unheld == {"up": _LIMITED}, book.unheld
        await book.refresh(upstream)
        found = book.resolve(upstream, "/ckpt/step-200", learn=False)
        assert found is not None and found.name == "/ckpt/step-200" and not book.stale("up")

    asyncio.run(main())


def test_an_sglang_weights_update_forwarded_before_a_reload_is_not_read_as_done_after_it() -> None:
    """A reload while SGLang's update runs (forwarded, its reply not back): the new book's rounds meanwhile read the
    weights it replaces, and leave them unknown as the replaced book's would (`CheckpointBook.replacing`), until the
    update's reply (which the new book hears)."""
    (upstream,) = parse(ONE_VLLM, source="t.yaml").upstreams
    listing = list(_SGLANG)

    async def get_json(up: Any, path: str) -> Any:
        if path != "/v1/models":
            raise checkpoints.MetadataStatus(404, path)
        return {"object": "list", "data": list(listing)}

    def book() -> checkpoints.CheckpointBook:
        return checkpoints.CheckpointBook([upstream], Fetch(get_json), limits=[("up", SERVED, frozenset({"care"}))])

    async def main() -> None:
        before = book()
        await before.refresh(upstream)
        before.replacing(upstream)
        assert before.resolve(upstream, SERVED, learn=False) is None
        after = book()
        after.inherit(before)
        await after.refresh(upstream)  # (the listing as it stands while the update runs)
        assert after.resolve(upstream, SERVED, learn=False) is None  # was: ROOT, the weights being replaced
        assert after.unheld == {"up": _LIMITED}, after.unheld
        listing[0] = {**listing[0], **_STEP_200}
        after.replaced(upstream)
        after.changed(upstream, True)
        await after.refresh(upstream)
        found = after.resolve(upstream, "/ckpt/step-200", learn=False)
        assert found is not None and found.name == "/ckpt/step-200" and not after.stale("up")

    asyncio.run(main())


def test_an_sglang_weights_update_forgets_a_server_sharing_its_change_slot_for_one_round() -> None:
    """Two servers whose addresses share a slot of the change counts the workers share (`Changes`, 1 in 4,096 a pair):
    SGLang's update of one makes every worker, the relaying one too, forget the other's base (a vLLM's here) from its
    next call on it until a round of it, asked then, has read it again, as the README and `Changes` say (not told
    apart: review revroutes2's repro_slot_collision). Its limited route is `unheld` meanwhile; nothing else is kept."""
    seen: dict[int, str] = {}
    urls: list[str] = []
    for port in range(1000, 60000):
        url = f"http://localhost:{port}"
        slot = zlib.crc32(url.encode()) % checkpoints.CHANGE_SLOTS
        if slot in seen:
            urls = [seen[slot], url]
            break
        seen[slot] = url
    config = f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: sg, url: "{urls[0]}"}}, {{name: vl, url: "{urls[1]}"}}]
routes: [{{model: {SERVED}, upstream: vl, purposes: [care]}}, {{model: "*", upstream: sg}}]
"""
    listings = {"sg": [{"id": SERVED, **_BASE, "owned_by": "sglang"}], "vl": [{"id": SERVED, **_BASE}]}
    sg, vl = parse(config, source="t.yaml").upstreams

    async def get_json(up: Any, path: str) -> Any:
        if path == "/v1/models":
            return {"object": "list", "data": list(listings[up.name])}
        raise checkpoints.MetadataStatus(404, path)

    async def main() -> None:
        changes = checkpoints.Changes()
        assert changes.slot(checkpoints.server(sg)) == changes.slot(checkpoints.server(vl))
        limits = [("vl", SERVED, frozenset({"care"}))]
        books = [checkpoints.CheckpointBook([sg, vl], Fetch(get_json), changes=changes, limits=limits) for _ in "12"]
        for book in books:
            for upstream in (sg, vl):
                await book.refresh(upstream)
        listings["sg"][0] = {**listings["sg"][0], "id": "/ckpt/step-200", "root": "/ckpt/step-200"}
        books[0].changed(sg, True)  # (SGLang's update, relayed by the first worker: no round runs here)
        for book in books:
            assert book.resolve(vl, SERVED, learn=False) is None and book.stale("vl")
            assert book.unheld == {"vl": ((SERVED, frozenset({"care"})),)}
            await book.refresh(vl)  # (the round asked at once)
            found = book.resolve(vl, SERVED, learn=False)
            assert found is not None and found.name == ROOT and not book.unheld and not book.stale("vl"), found

    asyncio.run(main())


SGLANG_WORKERS = f"""
listen: {{http: 127.0.0.1:0}}
upstreams:
  - {{name: up, url: "%s", protocol: openai, discovery_interval_s: 600}}
routes:
  - {{model: "{SERVED}", upstream: up, purposes: [care]}}
  - {{model: "*", upstream: up}}
policy: {{anonymous: allow, passthrough: forward, default_purpose: care}}
logging: {{format: text, access: true}}
lineage: {{store: "%s"}}
"""


def test_an_sglang_weights_update_through_one_worker_is_not_recorded_as_replaced_by_another(
    sglang: tuple[VllmLike, str], tmp_path: Path
) -> None:
    """`serve --workers 2`: SGLang's `POST /update_weights_from_disk` relayed by one worker; the other worker's next
    call for the base's old name, which comes before its own round, is not recorded as the weights replaced (before:
    ROOT, until its next round, `discovery_interval_s` later)."""
    server, url = sglang
    config = tmp_path / "proxy.yaml"
    config.write_text(SGLANG_WORKERS % (url, tmp_path / "lineage.db"))
    workers = Workers(config)
    chat = {"model": SERVED, "messages": HI}
    try:
        seen: set[int] = set()
        for _ in range(CALLS_MAX):  # until each worker answered one, with the weights it read
            pid, reply = workers.call("POST", "/v1/chat/completions", chat)
            assert reply.status_code == 200 and reply.headers["x-lineage-checkpoint"] == ROOT, reply.headers
            seen.add(pid)
            if seen == workers.pids:
                break
        assert seen == workers.pids, f"{CALLS_MAX} calls on new connections all answered by {seen}"
        relayed, reply = workers.call("POST", "/update_weights_from_disk", {"model_path": "/ckpt/step-200"})
        assert reply.status_code == 200 and reply.json()["success"] is True, reply.text
        (other,) = workers.pids - {relayed}
        named: dict[int, list[str | None]] = {pid: [] for pid in workers.pids}
        for _ in range(CALLS_MAX):  # until the other worker answered one
            pid, reply = workers.call("POST", "/v1/chat/completions", chat)
            assert reply.status_code == 200, reply.text
            named[pid].append(reply.headers.get("x-lineage-checkpoint"))
            if named[other]:
                break
        assert named[other] and ROOT not in named[other] and ROOT not in named[relayed], named  # was: ROOT in other's
        assert workers.serve.stop() == 0, "".join(workers.serve.err)
    finally:
        workers.serve.end()
