"""llama.cpp's native `POST /embeddings` (and `/embedding`'s twin the openai adapter reads at `/embeddings`) answers
with a JSON array, one `{"index", "embedding"}` object an input, not OpenAI's `{"data": [...]}` object: vectors, no
text. The reply was taken for no JSON at all (read as an event stream of one unreadable line) and its output
labelled `scan:truncated`, a label every such call's record carried falsely, while OpenAI's shape of the same
vectors is not labelled."""

from __future__ import annotations

import httpx
import pytest
from aiohttp import web

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver
from tests.harness import serving

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: llama
    url: ${UPSTREAM}
    checkpoint: smollm@1
routes:
  - model: "*"
    upstream: llama
policy:
  anonymous: allow
lineage:
  store: ${STORE}
detectors: [email]
"""

NATIVE = [{"index": 0, "embedding": [[0.125, -0.5, 0.25]]}]  # llama.cpp's `json(responses)`, pooling none: per token
OPENAI = {"object": "list", "model": "m", "data": [{"object": "embedding", "index": 0, "embedding": [0.125, -0.5]}],
          "usage": {"prompt_tokens": 1, "total_tokens": 1}}  # fmt: skip


@pytest.fixture
def upstream(loop_thread):  # type: ignore[no-untyped-def]
    async def native(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(NATIVE)

    async def openai(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(OPENAI)

    app = web.Application()
    app.router.add_post("/embeddings", native)
    app.router.add_post("/v1/embeddings", openai)
    with serving(loop_thread, app) as url:
        yield url


def test_a_native_embeddings_reply_is_not_labelled_unread(upstream, make_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = make_proxy(CONFIG, wait="started", UPSTREAM=upstream)
    body = {"model": "m", "content": "hello"}
    oai = httpx.post(f"{proxy.url}/v1/embeddings", json=body, headers={"x-purpose": "search"}, timeout=30)
    assert oai.status_code == 200 and oai.headers["x-data-labels"] == "", oai.headers
    native = httpx.post(f"{proxy.url}/embeddings", json=body, headers={"x-purpose": "search"}, timeout=30)
    assert native.status_code == 200 and native.json() == NATIVE
    assert native.headers["x-data-labels"] == "", native.headers.get("x-data-labels")


@pytest.mark.parametrize("whole", [True, False])
def test_the_observer_reads_the_array_as_vectors(whole: bool) -> None:
    observer = ReplyObserver(Outcome(started_ns=0), Detectors([DetectorSpec("email")]), False, embeddings=True)
    observer.head(200, lambda name: "application/json")
    if whole:
        observer.body(b'[{"index": 0, "embedding": [[0.125, -0.5]]}]')
    else:  # passed on as it arrives (no Content-Length): kept and read whole at its end
        observer.chunk(b'[{"index": 0, "embedding": [[0.1')
        observer.chunk(b"25, -0.5]]}]")
    observer.finish()
    assert observer.outcome.output_detected == frozenset()
    # a chat reply that is an array is still no reply the adapter reads
    chat = ReplyObserver(Outcome(started_ns=0), Detectors([DetectorSpec("email")]), False)
    chat.head(200, lambda name: "application/json")
    chat.body(b'[{"content": "x"}]')
    chat.finish()
    assert "scan:truncated" in chat.outcome.output_detected
