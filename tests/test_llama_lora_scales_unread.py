"""A llama-server's LoRA scales set through the proxy (`POST /lora-adapters`, relayed) are read again before the POST's
reply goes out (tests/test_llama_lora_scales_set.py). When that read failed (its /lora-adapters answering 5xx), every
call without its own `lora` went on being recorded, and checked against the baseline (`block` included), as served by
the scales read before the POST: scales known to be stale, an adapter mix the server no longer applied. Now, until a
round reads them again, the upstream is marked metadata-incomplete (`lineage_proxy_upstream_metadata_incomplete`),
such a call is recorded as served by `org/gemma-3+lora:?` (scales not known), and checked as a call whose checkpoint
is not known yet: `block` refuses it (`checkpoint_unknown`, retryable) unless its flow is approved for any checkpoint.
A call naming its own scales (`lora`) goes on as before; the read is retried, backing off, until it succeeds."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from proxy import checkpoints
from proxy.config import parse
from proxy.flow import UPSTREAM as UPSTREAM_SOURCE
from proxy.protocols import Fetch
from tests.harness import LoopThread, proxy_error, serving
from tests.servers.vllm_like import VllmLike
from tests.test_checkpoints import until
from tests.test_llama_lora import ADAPTERS, BASE, DEFAULT, LLAMA_SERVER, UPSTREAM

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: llamacpp, url: "${UPSTREAM}", discovery_interval_s: 600}
routes:
  - {model: "*", upstream: llamacpp}
policy:
  anonymous: allow
  default_purpose: assistant
lineage:
  store: ${STORE}
"""
BLOCK = CONFIG + "  baseline: ${BASELINE}\n  on_unapproved: block\n"
UNKNOWN = BASE + "+lora:?"
BODY = {"model": "gemma", "messages": [{"role": "user", "content": "hi"}]}


class LlamaServer:
    """llama-server's two LoRA endpoints (as tests/test_llama_lora_scales_set.py has them), its GET failing with 500
    while `failing` is set; `reads` counts the GETs answered, each with its status."""

    def __init__(self) -> None:
        self.vllm = VllmLike(models=[LLAMA_SERVER])
        self.adapters = [dict(adapter) for adapter in ADAPTERS]
        self.failing = False
        self.reads: list[int] = []
        self.read = threading.Condition()

    def app(self) -> web.Application:
        app = self.vllm.app()
        app.router.add_get("/lora-adapters", self.listed)
        app.router.add_post("/lora-adapters", self.set_scales)
        return app

    async def listed(self, request: web.Request) -> web.Response:
        reply = web.json_response({"error": "busy"}, status=500) if self.failing else web.json_response(self.adapters)
        with self.read:
            self.reads.append(reply.status)
            self.read.notify_all()
        return reply

    async def set_scales(self, request: web.Request) -> web.Response:
        scales = {entry["id"]: entry["scale"] for entry in await request.json()}
        for adapter in self.adapters:
            adapter["scale"] = scales.get(adapter["id"], 0.0)
        self.failing = True  # from now on its scales cannot be read (until the test says)
        return web.json_response({"success": True})

    def wait_reads(self, count: int, status: int) -> None:
        with self.read:
            assert self.read.wait_for(lambda: self.reads.count(status) >= count, 10), self.reads


@pytest.fixture
def llama(loop_thread: LoopThread) -> Iterator[tuple[LlamaServer, str]]:
    server = LlamaServer()
    with serving(loop_thread, server.app()) as url:
        yield server, url


def test_scales_set_and_not_read_since_are_recorded_as_unknown_until_read(
    llama: tuple[LlamaServer, str], make_proxy: Any, loop_thread: LoopThread
) -> None:
    server, url = llama
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    book = proxy.process.book
    before = httpx.post(f"{proxy.url}/v1/chat/completions", json=BODY, timeout=10)
    assert before.status_code == 200 and before.headers["x-lineage-checkpoint"] == DEFAULT, before.headers
    assert not book.incomplete["llamacpp"]

    set_ = httpx.post(f"{proxy.url}/lora-adapters", json=[{"id": 0, "scale": 0.25}], timeout=10)
    assert set_.status_code == 200, set_.text
    after = httpx.post(f"{proxy.url}/v1/chat/completions", json=BODY, timeout=10)
    assert after.status_code == 200, after.text
    # was org/gemma-3+lora:/lora/med.gguf:0.5, the scales from before the POST, until a read succeeded
    assert after.headers["x-lineage-checkpoint"] == UNKNOWN
    assert book.incomplete["llamacpp"] and book.reachable["llamacpp"]  # the gauge's source: up, read in part
    own = httpx.post(f"{proxy.url}/v1/chat/completions", json={**BODY, "lora": [{"id": 1, "scale": 1}]}, timeout=10)
    assert own.status_code == 200 and own.headers["x-lineage-checkpoint"] == BASE + "+lora:/lora/med.gguf:1"

    server.wait_reads(3, 500)  # asked again (backing off from 50 ms), not only at the next interval (600 s)
    server.failing = False
    server.wait_reads(2, 200)
    until(loop_thread, lambda: not book.incomplete["llamacpp"], "the scales read again")
    read = httpx.post(f"{proxy.url}/v1/chat/completions", json=BODY, timeout=10)
    assert read.status_code == 200 and read.headers["x-lineage-checkpoint"] == BASE + "+lora:sql.gguf:0.25"


def test_block_refuses_a_call_served_by_scales_not_read_since_they_were_set(
    llama: tuple[LlamaServer, str], make_proxy: Any, tmp_path: Path
) -> None:
    server, url = llama
    approved = tmp_path / "approved.yaml"
    approved.write_text(
        f"version: 1\nflows:\n  - {{caller: anonymous, purpose: assistant, checkpoints: ['{DEFAULT}']}}\n"
    )
    proxy = make_proxy(BLOCK, UPSTREAM=url, BASELINE=str(approved))
    before = httpx.post(f"{proxy.url}/v1/chat/completions", json=BODY, timeout=10)
    assert before.status_code == 200 and before.headers["x-lineage-checkpoint"] == DEFAULT, before.text

    # the client sets med.gguf to 0.7 (not approved); the read after it fails: the scales from before are stale
    set_ = httpx.post(f"{proxy.url}/lora-adapters", json=[{"id": 1, "scale": 0.7}], timeout=10)
    assert set_.status_code == 200, set_.text
    reached = len(server.vllm.data_requests())
    refused = httpx.post(f"{proxy.url}/v1/chat/completions", json=BODY, timeout=10)
    assert refused.status_code == 503, refused.text  # was 200: checked as DEFAULT, which med.gguf at 0.7 is not
    error = proxy_error(refused)
    assert error["code"] == "checkpoint_unknown" and refused.headers["retry-after"] == "1", error
    assert "POST /lora-adapters" in error["message"] and "could not be read since" in error["message"], error
    assert len(server.vllm.data_requests()) == reached  # it never reached the model
    # a call naming its own scales depends on none the server keeps: checked as before
    own = httpx.post(f"{proxy.url}/v1/chat/completions", json={**BODY, "lora": [{"id": 1, "scale": 0.5}]}, timeout=10)
    assert own.status_code == 200 and own.headers["x-lineage-checkpoint"] == DEFAULT, own.text


def test_a_reload_keeps_the_scales_unknown_until_read() -> None:
    """The book a reload makes (`inherit`) knows what the one it replaces knew: scales set and not read since stay
    unknown (not the scales from before the POST), and the upstream incomplete, until one of its rounds reads them."""
    config = parse(UPSTREAM, source="t.yaml")
    upstream = config.upstreams[0]
    answers: list[Any] = [ADAPTERS]

    async def get_json(_: Any, path: str) -> Any:
        if path == "/v1/models":
            return {"object": "list", "data": [LLAMA_SERVER]}
        if isinstance(answers[0], int):
            raise checkpoints.MetadataStatus(answers[0], path)
        return answers[0]

    async def main() -> None:
        book = checkpoints.CheckpointBook(config.upstreams, Fetch(get_json))
        await book.refresh(upstream)
        assert book.resolve(upstream, "x", learn=False) == checkpoints.Checkpoint(DEFAULT, UPSTREAM_SOURCE, BASE,
                                                                                  "llama.cpp")  # fmt: skip
        answers[0] = 500  # a POST /lora-adapters relayed set the scales; the read after it fails
        book.changed(upstream)
        await book.refresh(upstream)
        found = book.resolve(upstream, "x", learn=False)
        assert found is not None and found.name == UNKNOWN and found.unsure and found.parent == BASE
        assert book.incomplete[upstream.name] and book.stale(upstream.name)
        reloaded = checkpoints.CheckpointBook(config.upstreams, Fetch(get_json))
        reloaded.inherit(book)
        found = reloaded.resolve(upstream, "x", learn=False)
        assert found is not None and found.name == UNKNOWN and reloaded.incomplete[upstream.name]
        answers[0] = ADAPTERS
        await reloaded.refresh(upstream)
        found = reloaded.resolve(upstream, "x", learn=False)
        assert found is not None and found.name == DEFAULT and not found.unsure
        assert not reloaded.incomplete[upstream.name] and not reloaded.stale(upstream.name)

    asyncio.run(main())
