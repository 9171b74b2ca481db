"""An upstream that answers a call for model `a` with a reply from model `b` (a compromised server, a router
in front of several models, a misconfigured alias), where the upstream's own `/v1/models` lists `a` as weights A
and `b` as weights B: the client's SDK reads `model: "b"`, and the upstream says B served it. The record said
checkpoint A (what a call for `a` would reach, resolved before it was sent): a policy approving A, and `verify`,
never saw B. The checkpoint recorded is now the one the reply's model names, where the upstream's metadata names
it and it is other weights; a reply model the metadata does not list (a name the server reprints) leaves A."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from tests.harness import LoopThread, proxy_before
from tests.servers.raw_origin import request_body

LISTING = orjson.dumps({"object": "list", "data": [
    {"id": "a", "object": "model", "owned_by": "vllm", "root": "org/weights-A", "parent": None},
    {"id": "b", "object": "model", "owned_by": "vllm", "root": "org/weights-B", "parent": None}]})  # fmt: skip
CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: engine
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: engine
policy:
  anonymous: allow
  default_purpose: assistant
lineage:
  store: ${STORE}
"""
REPLYING: dict[str, str] = {}


def _reply(streamed: bool) -> tuple[bytes, bytes]:
    model = REPLYING["model"]
    if not streamed:
        return b"application/json", orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]})  # fmt: skip
    events = [{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}
              for delta, reason in (({"content": "hi"}, None), ({}, "stop"))]  # fmt: skip
    return b"text/event-stream", b"".join(b"data: %s\n\n" % orjson.dumps(e) for e in events) + b"data: [DONE]\n\n"


def origin() -> Any:
    async def start() -> tuple[asyncio.Server, int]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while head := await reader.readuntil(b"\r\n\r\n"):
                    if head.startswith(b"GET"):  # discovery
                        kind, body = b"application/json", LISTING
                    else:
                        kind, body = _reply(bool(orjson.loads(await request_body(head, reader)).get("stream")))
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                                 % (kind, len(body), body))  # fmt: skip
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    return start


@pytest.fixture
def proxy_port(make_proxy, loop_thread: LoopThread) -> Iterator[int]:  # type: ignore[no-untyped-def]
    with proxy_before(loop_thread, make_proxy, CONFIG, origin()) as port:
        yield port


def _checkpoints(store_path: Path) -> dict[str, str]:
    from proxy.record.store import SqliteStore

    store = SqliteStore(store_path, readonly=True)
    try:
        return {r.key.input_labels: r.key.checkpoint for r in store.rows()}
    finally:
        store.close()


@pytest.mark.parametrize(("replied", "recorded"), [("b", "org/weights-B"), ("a", "org/weights-A"),
                                                   ("gpt-alias", "org/weights-A")])  # fmt: skip
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_the_checkpoint_recorded_is_the_one_the_reply_model_names(
    proxy_port: int, make_proxy: Any, tmp_path: Path, stream: bool, replied: str, recorded: str
) -> None:
    REPLYING["model"] = replied
    flow = f"flow-{replied}-{'stream' if stream else 'whole'}"
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{proxy_port}/v1", api_key="unused", max_retries=0, timeout=10)
    raw = client.chat.completions.with_raw_response.create(
        model="a", messages=[{"role": "user", "content": "x"}], stream=stream, extra_headers={"x-data-labels": flow}
    )
    parsed = raw.parse()
    models = [chunk.model for chunk in parsed] if stream else [parsed.model]  # type: ignore[union-attr]
    assert set(models) == {replied}  # what the client read
    if not stream:  # (a stream's head goes out before its first event names the model)
        assert raw.headers["x-lineage-checkpoint"] == recorded
    assert _checkpoints(tmp_path / "lineage.db")[flow] == recorded
