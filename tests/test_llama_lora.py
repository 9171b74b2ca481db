"""llama.cpp's LoRA adapters are weights that serve a call: a llama-server started with `--lora` lists them at
`/lora-adapters` with the scale every request gets, and a request's own `lora` (`[{"id": 0, "scale": 1}]`, every
adapter it does not name at 0) picks them per call, on every completion endpoint. The record named the base model
alone, so a baseline approving the base passed calls served by an adapter nobody approved."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from proxy import checkpoints
from proxy.config import parse
from proxy.protocols import Fetch
from proxy.protocols.openai import lora_version
from tests.harness import LoopThread, serving
from tests.servers.vllm_like import VllmLike

LLAMA_SERVER = {"id": "org/gemma-3", "object": "model", "created": 1, "owned_by": "llamacpp",
                "meta": {"vocab_type": 1, "n_vocab": 262144, "n_ctx_train": 131072, "n_params": 1}}  # fmt: skip
ADAPTERS = [{"id": 0, "path": "sql.gguf", "scale": 0.0}, {"id": 1, "path": "/lora/med.gguf", "scale": 0.5}]
BASE = "org/gemma-3"
DEFAULT = "org/gemma-3+lora:/lora/med.gguf:0.5"  # what a request without its own `lora` is served by

UPSTREAM = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: up, url: "http://127.0.0.1:1"}]
routes: [{model: "*", upstream: up}]
"""


def book_with(adapters: Any, listed: list[dict[str, Any]] | None = None) -> tuple[Any, Any]:
    config = parse(UPSTREAM, source="t.yaml")
    upstream = config.upstreams[0]

    async def get_json(_: Any, path: str) -> Any:
        if path == "/v1/models":
            return {"object": "list", "data": listed or [LLAMA_SERVER]}
        if path == "/lora-adapters" and adapters is not None:
            return adapters
        raise checkpoints.MetadataStatus(404, path)

    book = checkpoints.CheckpointBook(config.upstreams, Fetch(get_json))
    asyncio.run(book.refresh(upstream))
    return book, upstream


@pytest.mark.parametrize(
    ("lora", "served"),
    [
        (None, DEFAULT),  # the server's own scales
        ([{"id": 0, "scale": 1}], "org/gemma-3+lora:sql.gguf:1"),  # med.gguf not named: 0 for this request
        ([{"id": 1, "scale": 0.25}, {"id": 0, "scale": 2}], "org/gemma-3+lora:sql.gguf:2+lora:/lora/med.gguf:0.25"),
        ([], DEFAULT),  # none named: llama-server applies its own scales, as without `lora`
        ([{"id": 1, "scale": 0}], BASE),
        # read as llama.cpp's json_value reads them: an id it has not loaded, or one not a number, is no adapter
        # (current servers ignore it, older ones refuse the request); a scale missing or not a number is 0
        ([{"id": 7, "scale": 1}], BASE),
        ([{"id": 7, "scale": 1}, {"id": 0, "scale": 1}], "org/gemma-3+lora:sql.gguf:1"),
        ([{"id": 0}], BASE),
        ([{"id": 0, "scale": "1"}], BASE),
        ([{"id": "0", "scale": 1}], BASE),
        ({"id": 0, "scale": 1}, None),  # not a list: refused
    ],
    ids=["default", "one", "two", "empty", "zero", "unknown-id", "unknown-and-known", "no-scale", "string-scale",
         "string-id", "not-a-list"],
)  # fmt: skip
def test_the_checkpoint_is_the_base_with_the_adapters_a_call_applies(lora: Any, served: str | None) -> None:
    book, upstream = book_with(ADAPTERS)
    found = book.resolve(upstream, "any-name", None if lora is None else lora_version(lora), learn=False)
    assert (found.name if found is not None else None) == served
    if found is not None and served != BASE:
        assert found.parent == BASE and found.provider == "llama.cpp"


@pytest.mark.parametrize(
    "adapters", [None, [], [{"id": 0, "path": "sql.gguf", "scale": 0}]], ids=["404", "none", "at-0"]
)
def test_a_server_without_adapters_applied_serves_its_base(adapters: Any) -> None:
    book, upstream = book_with(adapters)
    found = book.resolve(upstream, "any-name", learn=False)
    assert found is not None and found.name == BASE and found.parent is None


def test_only_a_llama_server_is_asked_and_its_adapters_read_from_lora() -> None:
    vllm = {"id": "m", "object": "model", "owned_by": "vllm", "root": "org/m", "parent": None}
    book, upstream = book_with(ADAPTERS, [vllm])
    found = book.resolve(upstream, "m", lora_version([{"id": 0, "scale": 1}]), learn=False)
    assert found is not None and found.name == "org/m"  # vLLM reads no `lora` field: its adapters are models


# -- through the proxy, a faithful llama-server


@pytest.fixture
def llama_server(loop_thread: LoopThread) -> Iterator[tuple[VllmLike, str]]:
    server = VllmLike(models=[LLAMA_SERVER])
    app = server.app()

    async def adapters(request: web.Request) -> web.Response:
        return web.json_response(ADAPTERS)

    app.router.add_get("/lora-adapters", adapters)
    with serving(loop_thread, app) as url:
        yield server, url


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
  baseline: ${BASELINE}
  on_unapproved: block
"""


def test_a_call_served_by_an_adapter_nobody_approved_is_refused_and_the_default_one_recorded(  # type: ignore[no-untyped-def]
    llama_server, make_proxy, tmp_path: Path
) -> None:
    server, url = llama_server
    approved = tmp_path / "approved.yaml"
    approved.write_text(
        f"version: 1\nflows:\n  - {{caller: anonymous, purpose: assistant, checkpoints: ['{DEFAULT}']}}\n"
    )
    proxy = make_proxy(CONFIG, UPSTREAM=url, BASELINE=str(approved))
    body = {"model": "gemma", "messages": [{"role": "user", "content": "hi"}]}
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-lineage-checkpoint"] == DEFAULT
    before = len(server.data_requests())
    refused = httpx.post(f"{proxy.url}/v1/chat/completions", json={**body, "lora": [{"id": 0, "scale": 1}]}, timeout=10)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "flow_not_approved", refused.text
    assert "org/gemma-3+lora:sql.gguf:1" in refused.json()["error"]["message"]
    assert len(server.data_requests()) == before  # it never reached the model


def test_an_empty_lora_list_does_not_pass_a_baseline_approving_the_base(  # type: ignore[no-untyped-def]
    llama_server, make_proxy, tmp_path: Path
) -> None:
    """llama-server applies a request's own scales only when its list names some (`launch_slot_with_task`: `if
    (!task.params.lora.empty())`), else its own: `"lora": []` was read as every adapter at 0, and a caller whose
    baseline approves the base was served by the adapter nobody approved, recorded as the base (the review)."""
    server, url = llama_server
    approved = tmp_path / "approved.yaml"
    approved.write_text(f"version: 1\nflows:\n  - {{caller: anonymous, purpose: assistant, checkpoints: ['{BASE}']}}\n")
    proxy = make_proxy(CONFIG, UPSTREAM=url, BASELINE=str(approved))
    body = {"model": "gemma", "messages": [{"role": "user", "content": "hi"}], "lora": []}
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10)
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "flow_not_approved", reply.text
    assert DEFAULT in reply.json()["error"]["message"]
    assert server.data_requests() == []  # it never reached the model
    served = httpx.post(f"{proxy.url}/v1/chat/completions", json={**body, "lora": [{"id": 1, "scale": 0}]}, timeout=10)
    assert served.status_code == 200 and served.headers["x-lineage-checkpoint"] == BASE


def test_a_server_keeping_its_adapters_behind_its_key_is_named_by_its_base_and_said_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """llama-server's --api-key keeps /v1/models open and /lora-adapters behind the key: without upstreams[].api_key
    the whole discovery failed (every call's checkpoint unknown, refused under `block`). The base, and one warning."""
    config = parse(UPSTREAM.replace(": up", ": keyed"), source="t.yaml")
    upstream = config.upstreams[0]

    async def get_json(_: Any, path: str) -> Any:
        if path == "/v1/models":
            return {"object": "list", "data": [LLAMA_SERVER]}
        raise checkpoints.MetadataStatus(401 if path == "/lora-adapters" else 404, path)

    book = checkpoints.CheckpointBook(config.upstreams, Fetch(get_json))
    for _ in range(2):
        asyncio.run(book.refresh(upstream))
    found = book.resolve(upstream, "any-name", learn=False)
    assert found is not None and found.name == BASE
    said = [r.getMessage() for r in caplog.records if "/lora-adapters answered 401" in r.getMessage()]
    assert len(said) == 1 and "upstreams[].api_key" in said[0], said


def test_a_lora_list_answering_5xx_keeps_what_was_read_and_is_asked_again(caplog: pytest.LogCaptureFixture) -> None:
    """A llama-server whose /lora-adapters answers 5xx (a server error, a gateway in front of it) says nothing of the
    scales every request gets. The upstream answers (ready: tests/test_llama_lora_unread_ready.py), but what serves
    is not known: never the base alone (a checkpoint that may not serve: the adapters may be applied by default)
    and never a crash of discovery; the checkpoints read before stay, and the next round (soon: asked again backing
    off from 50 ms, as an upstream not answering is) reads the list again."""
    config = parse(UPSTREAM.replace(": up", ": flaky"), source="t.yaml")
    upstream = config.upstreams[0]
    answers: list[Any] = [503]

    async def get_json(_: Any, path: str) -> Any:
        if path == "/v1/models":
            return {"object": "list", "data": [LLAMA_SERVER]}
        if path == "/lora-adapters":
            answer = answers[0]
            if isinstance(answer, int):
                raise checkpoints.MetadataStatus(answer, path)
            return answer
        raise checkpoints.MetadataStatus(404, path)

    book = checkpoints.CheckpointBook(config.upstreams, Fetch(get_json))
    asyncio.run(book.refresh(upstream))  # never raises
    assert book.probed["flaky"] and book.reachable["flaky"] and book.incomplete["flaky"]
    assert book.resolve(upstream, "any-name", learn=False) is None  # not known: not the base alone
    assert any(
        "/lora-adapters) could not be read" in r.getMessage() and "503" in r.getMessage() for r in caplog.records
    )

    answers[0] = ADAPTERS  # the next round reads them
    asyncio.run(book.refresh(upstream))
    found = book.resolve(upstream, "any-name", learn=False)
    assert book.reachable["flaky"] and not book.incomplete["flaky"] and found is not None and found.name == DEFAULT

    answers[0] = 500  # failing again: what was read stays, the base is not taken for it
    asyncio.run(book.refresh(upstream))
    assert book.reachable["flaky"] and book.incomplete["flaky"]
    found = book.resolve(upstream, "any-name", learn=False)
    assert found is not None and found.name == DEFAULT and found.parent == BASE
    found = book.resolve(upstream, "any-name", lora_version([{"id": 0, "scale": 1}]), learn=False)
    assert found is not None and found.name == "org/gemma-3+lora:sql.gguf:1"
