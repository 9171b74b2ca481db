"""Two upstream names in one config may reach one llama-server (the same URL: one name per route, say, with its
own timeouts or key). A `POST /lora-adapters` relayed through one name changes the scales every call without its own
`lora` gets on that server, whichever name reaches it: only the name that relayed it read them again (and held them
stale), the other recorded, and checked, its calls with the scales read before until its next discovery round
(`discovery_interval_s`, a minute by default), in one process as across `serve --workers N` (whose shared count was
kept per name). What a change makes stale is now keyed by the server's address: every name reaching it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from proxy import checkpoints
from proxy.config import parse
from proxy.protocols import Fetch
from tests.test_llama_lora import ADAPTERS, BASE, DEFAULT, LLAMA_SERVER
from tests.test_llama_lora_scales_set import llama_server as llama_server
from tests.test_llama_lora_scales_workers import CALLS_MAX, Workers

NEW = "org/gemma-3+lora:sql.gguf:0.25"  # what serves once the POST below set the scales
UNKNOWN = BASE + "+lora:?"  # the scales set, not read since
CHAT = {"model": "gemma-chat", "messages": [{"role": "user", "content": "hi"}]}  # routed to `chat`

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: chat, url: "${UPSTREAM}", discovery_interval_s: 600}
  - {name: other, url: "${UPSTREAM}/", discovery_interval_s: 600}
routes:
  - {model: gemma-chat, upstream: chat}
  - {model: "*", upstream: other}
policy:
  anonymous: allow
  default_purpose: assistant
lineage:
  store: ${STORE}
"""
TWO_NAMES = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: chat, url: "http://127.0.0.1:1"}, {name: other, url: "http://127.0.0.1:1"},
            {name: elsewhere, url: "http://127.0.0.1:2"}]
routes: [{model: "*", upstream: chat}]
"""


def chat(proxy: Any, model: str) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10)
    assert reply.status_code == 200, reply.text
    return str(reply.headers["x-lineage-checkpoint"])


def test_scales_set_through_one_name_are_read_again_by_every_name_of_the_server(
    llama_server: str, make_proxy: Any
) -> None:
    proxy = make_proxy(CONFIG, UPSTREAM=llama_server)
    assert chat(proxy, "gemma-chat") == DEFAULT and chat(proxy, "gemma") == DEFAULT
    set_ = httpx.post(f"{proxy.url}/lora-adapters", json=[{"id": 0, "scale": 0.25}], timeout=10)  # by "*": other
    assert set_.status_code == 200 and set_.json() == {"success": True}, set_.text
    assert chat(proxy, "gemma") == NEW  # the name that relayed it
    assert chat(proxy, "gemma-chat") == NEW  # was the old mix, DEFAULT, for ten minutes


def test_books_sharing_changes_key_them_by_the_server_not_the_name() -> None:
    """`serve --workers N`: a change relayed through one name in one worker makes the scales every name of that
    server read stale in every worker (`+lora:?` until read again), and no other server's."""
    config = parse(TWO_NAMES, source="t.yaml")
    chat_, other, elsewhere = config.upstreams
    scales: list[Any] = [ADAPTERS]

    async def get_json(upstream: Any, path: str) -> Any:
        if path == "/v1/models":
            return {"object": "list", "data": [LLAMA_SERVER]}
        return scales[0]

    async def main() -> None:
        changes = checkpoints.Changes()
        one, two = (checkpoints.CheckpointBook(config.upstreams, Fetch(get_json), changes=changes) for _ in "12")
        for book in (one, two):
            for upstream in config.upstreams:
                await book.refresh(upstream)
        scales[0] = [{**ADAPTERS[0], "scale": 0.25}, {**ADAPTERS[1], "scale": 0.0}]
        one.changed(other)  # (a POST /lora-adapters relayed through `other` in one worker: no round runs here)
        for book in (one, two):  # the worker that relayed it, and another
            for upstream in (chat_, other):
                found = book.resolve(upstream, "x", learn=False)
                assert found is not None and found.name == UNKNOWN and found.unsure, (upstream.name, found)
            assert book.resolve(elsewhere, "x", learn=False).name == DEFAULT  # type: ignore[union-attr]
        await two.refresh(chat_)
        found = two.resolve(chat_, "x", learn=False)
        assert found is not None and found.name == NEW and not found.unsure, found

    asyncio.run(main())


def test_scales_set_through_one_name_in_one_worker_are_read_again_by_the_other_name_in_every_worker(
    llama_server: str, tmp_path: Path
) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(
        CONFIG.replace("${UPSTREAM}", llama_server).replace("${STORE}", str(tmp_path / "lineage.db"))
        + "logging: {format: text, access: true}\n"
    )
    workers = Workers(config)
    try:
        workers.both_read()  # (by "*": other)
        seen: set[int] = set()
        for _ in range(CALLS_MAX):  # and the chat name in each worker
            pid, reply = workers.call("POST", "/v1/chat/completions", CHAT)
            assert reply.status_code == 200 and reply.headers["x-lineage-checkpoint"] == DEFAULT, reply.headers
            seen.add(pid)
            if seen == workers.pids:
                break
        other = workers.set_scales()  # through `other`, in one worker
        after: dict[int, list[str]] = {pid: [] for pid in workers.pids}
        for _ in range(CALLS_MAX):  # until the other worker answered the chat name with the scales set
            pid, reply = workers.call("POST", "/v1/chat/completions", CHAT)
            assert reply.status_code == 200, reply.text
            after[pid].append(reply.headers["x-lineage-checkpoint"])
            if after[other] and after[other][-1] == NEW:
                break
        assert DEFAULT not in after[other] and after[other] and after[other][-1] == NEW, after
        (relayed,) = workers.pids - {other}
        assert set(after[relayed]) <= {NEW}, after  # the worker that relayed it: read again before its reply
        assert workers.serve.stop() == 0, "".join(workers.serve.err)
    finally:
        workers.serve.end()
