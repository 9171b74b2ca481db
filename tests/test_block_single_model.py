"""Upstreams that answer model names their metadata does not list, where the model list says so. A
server that loads one model answers every name with it (llama.cpp's llama-server, llama-cpp-python);
Ollama answers `llama3` with the `llama3:latest` it lists. The checkpoint book names the weights that
really serve such a call, so the record names them and `lineage.on_unapproved: block` decides on them:
they were refused as `checkpoint_unknown` for ever (a baseline naming checkpoints), and in `warn` mode
recorded under the name the call made up (llama.cpp echoes it as the reply's `model`). A model list that
does not say so (vLLM, llama.cpp's router, several models) names nothing it does not list."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy import checkpoints
from proxy.config import parse
from proxy.protocols import Fetch
from proxy.record.store import SqliteStore
from tests.harness import LoopThread
from tests.servers.vllm_like import ROOT, SERVED

# -- the book, on the model lists servers write

LLAMA_SERVER = {"id": "org/gemma-3", "object": "model", "created": 1, "owned_by": "llamacpp",
                "meta": {"vocab_type": 1, "n_vocab": 262144, "n_ctx_train": 131072, "n_params": 1}}  # fmt: skip
LLAMA_ROUTER = {"id": "org/gemma-3", "object": "model", "owned_by": "llamacpp", "created": 1,
                "status": {"value": "loaded", "args": ["-m", "/models/gemma-3.gguf"]}}  # fmt: skip
LLAMA_CPP_PYTHON = {"id": "smollm2", "object": "model", "owned_by": "me", "permissions": []}
VLLM = {"id": SERVED, "object": "model", "created": 1, "owned_by": "vllm", "root": ROOT, "parent": None}


UPSTREAM = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: up, url: "http://127.0.0.1:1"}]
routes: [{model: "*", upstream: up}]
"""


def ollama(name: str, owner: str = "library") -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1, "owned_by": owner}


@pytest.mark.parametrize(
    ("listed", "model", "served"),
    [
        ([LLAMA_SERVER], "gpt-4o", "org/gemma-3"),
        ([LLAMA_SERVER], "", "org/gemma-3"),  # a call naming no model: the one it serves
        ([LLAMA_CPP_PYTHON], "gpt-4o", "smollm2"),
        ([ollama("llama3:latest"), ollama("llama3:8b")], "llama3", "llama3:latest"),
        ([ollama("myuser/coder:latest", "myuser")], "myuser/coder", "myuser/coder:latest"),
        # a name it lists is its own entry's, whatever else is listed
        ([{**VLLM, "id": "llama3", "root": "org/llama3"}, ollama("llama3:latest")], "llama3", "org/llama3"),
        ([LLAMA_SERVER], "org/gemma-3", "org/gemma-3"),
        # not said by the model list: nothing is made up
        ([VLLM], "gpt-4o", None),  # vLLM refuses a name it does not serve (404)
        ([LLAMA_ROUTER], "gpt-4o", None),  # llama.cpp's router loads models by name, refuses others
        ([{**LLAMA_ROUTER, "meta": LLAMA_SERVER["meta"]}], "gpt-4o", None),
        ([LLAMA_SERVER, {**LLAMA_SERVER, "id": "org/other"}], "gpt-4o", None),
        ([LLAMA_CPP_PYTHON, {**LLAMA_CPP_PYTHON, "id": "qwen"}], "gpt-4o", None),
        ([{**LLAMA_SERVER, "meta": None}], "gpt-4o", None),
        ([{k: v for k, v in LLAMA_CPP_PYTHON.items() if k != "permissions"}], "gpt-4o", None),
        ([ollama("llama3:8b")], "llama3", None),  # no :latest
        ([ollama("org/tool:latest", "vllm")], "org/tool", None),  # not Ollama's owner for that name
        ([ollama("llama3:latest", "vllm")], "llama3", None),
        ([ollama("llama3:latest")], "llama3:8b", None),
        ([ollama("a/b/c/d:latest", "c")], "a/b/c/d", None),  # a name Ollama would not parse
    ],
    ids=[
        "llama-server", "llama-server-no-model", "llama-cpp-python", "ollama", "ollama-namespace", "listed-wins",
        "llama-server-listed", "vllm-one-model", "llama-router", "llama-router-meta", "two-llama-server", "two-llama-cpp-python",
        "llama-server-no-meta", "llama-cpp-python-no-permissions", "ollama-no-latest", "latest-not-ollama",
        "latest-other-owner", "ollama-other-tag", "ollama-unparsed",
    ],
)  # fmt: skip
def test_the_book_names_what_serves_a_name_the_metadata_does_not_list(listed, model, served) -> None:  # type: ignore[no-untyped-def]
    config = parse(UPSTREAM, source="t.yaml")
    upstream = config.upstreams[0]
    asked: list[str] = []

    async def get_json(_: Any, path: str) -> Any:
        asked.append(path)
        if path == "/v1/models":
            return {"object": "list", "data": listed}
        raise checkpoints.MetadataStatus(404, path)

    book = checkpoints.CheckpointBook(config.upstreams, Fetch(get_json))
    asyncio.run(book.refresh(upstream))
    found = book.resolve(upstream, model, learn=False)
    assert (found.name if found is not None else None) == served
    if found is not None:
        assert found.source == "upstream"
    assert asked.count("/v1/models") == 1  # the list the dialect read: no second request
    if served is None and model:  # refused in block mode as the metadata not listing it, and asked about once
        book.want(upstream, model, "app")
        asyncio.run(book.refresh(upstream))
        assert "does not list model" in book.why_unknown(upstream, model, "app")


# -- through the proxy, with the real llama.cpp server the tests use (llama-cpp-python)

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


def chat(url: str, model: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
        "model": model, "messages": [{"role": "user", "content": "Name one colour."}], "max_tokens": 4,
        "temperature": 0})  # fmt: skip


@pytest.mark.realserver
def test_block_decides_on_the_one_model_llama_cpp_serves_whatever_name_a_call_gives(  # type: ignore[no-untyped-def]
    llama: str, make_proxy, loop_thread: LoopThread, tmp_path: Path
) -> None:
    """llama.cpp lists `smollm2` and answers `gpt-4o` with it (echoing `gpt-4o` as the reply's model).
    A baseline approving `smollm2` admits the call, recorded as reaching `smollm2`; one approving other
    checkpoints refuses it as not approved. Both were 503 `checkpoint_unknown`, whatever the baseline."""
    approved = tmp_path / "approved.yaml"
    approved.write_text("version: 1\nflows:\n  - {caller: anonymous, purpose: assistant, checkpoints: [smollm2]}\n")
    proxy = make_proxy(CONFIG, UPSTREAM=llama, BASELINE=str(approved))
    reply = chat(proxy.url, "gpt-4o")
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == "gpt-4o"  # what the reply says is the name the call gave
    assert reply.headers["x-lineage-checkpoint"] == "smollm2" and reply.headers["x-lineage-decision"] == "allow"
    loop_thread.run(proxy.process.runtime.sinks.flush())
    store = SqliteStore(tmp_path / "lineage.db", readonly=True)
    try:
        assert [(row.key.checkpoint, row.key.decision, row.count) for row in store.rows()] == [("smollm2", "allow", 1)]
    finally:
        store.close()

    other = tmp_path / "other.yaml"
    other.write_text("version: 1\nflows:\n  - {caller: anonymous, purpose: assistant, checkpoints: ['org/*']}\n")
    proxy = make_proxy(CONFIG, UPSTREAM=llama, BASELINE=str(other), STORE=str(tmp_path / "other.db"))
    refused = chat(proxy.url, "gpt-4o")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "flow_not_approved", refused.text
    assert "smollm2" in refused.json()["error"]["message"]
