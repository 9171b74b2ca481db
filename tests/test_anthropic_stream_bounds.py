"""What the Anthropic Messages observer keeps of a streamed reply: bounded, whatever the stream's shape. It
kept every streamed piece of every content block to the end (100,000 one-character deltas: 5.8 MB for
100 KB of text; 100,000 blocks: 22 MB; a tool input in 4 MiB pieces: all of it); it reads the open block
as it comes and keeps only what waits for it. Read in block order all the same: labels, digest and
captured content are the whole reply's."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from proxy.flow import Outcome
from proxy.protocols.anthropic import MessagesObserver
from tests.harness import serving
from tests.ingress.test_model_output_labels import CONFIG

# they count or bound what functions run by patching them: with the modules interpreted (tests/conftest.py)
pytestmark = pytest.mark.interpreted


def streaming_upstream(path: str, body: bytes) -> web.Application:
    """A vLLM-like upstream: `/v1/models` names model `m`; `path` answers every call with `body` as an
    event stream, in 64 KiB writes."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]})

    async def stream(request: web.Request) -> web.StreamResponse:
        await request.read()
        reply = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await reply.prepare(request)
        for at in range(0, len(body), 1 << 16):
            await reply.write(body[at : at + (1 << 16)])
        await reply.write_eof()
        return reply

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post(path, stream)
    return app


def kept(obj: Any, seen: set[int] | None = None) -> int:
    """The bytes an observer holds (its own state, through its slots; not the outcome or the detectors)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, Detectors | Outcome | type):
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        return size + sum(kept(key, seen) + kept(value, seen) for key, value in obj.items())
    if isinstance(obj, list | tuple | set | frozenset):
        return size + sum(kept(item, seen) for item in obj)
    for klass in type(obj).__mro__:
        for slot in getattr(klass, "__slots__", ()):
            if hasattr(obj, slot):
                size += kept(getattr(obj, slot), seen)
    return size


def sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(f"event: {e['type']}\n".encode() + b"data: " + orjson.dumps(e) + b"\n\n" for e in events)


MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
           "usage": {"input_tokens": 1, "output_tokens": 1}}  # fmt: skip
START = {"type": "message_start", "message": {**MESSAGE, "content": []}}
END = [{"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
       {"type": "message_stop"}]  # fmt: skip
FORMS = {"text": ("text_delta", "text"), "tool_use": ("input_json_delta", "partial_json"),
         "thinking": ("thinking_delta", "thinking")}  # fmt: skip


def start(index: int, kind: str = "text") -> dict[str, Any]:
    block = {"type": kind, "id": "t", "name": "f", "input": {}} if kind == "tool_use" else {"type": kind, kind: ""}
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, piece: str, kind: str = "text") -> dict[str, Any]:
    form, key = FORMS[kind]
    return {"type": "content_block_delta", "index": index, "delta": {"type": form, key: piece}}


def stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def digest(*blocks: str) -> str:
    return "sha256:" + hashlib.sha256("".join(block + "\n" for block in blocks).encode()).hexdigest()


# -- through the proxy: what the observer holds when the stream ends

N = 100_000
SPLIT = [delta(0, "write to ana@exa"), delta(0, "mple.org ")]  # a value split across two deltas
FIRST = "write to ana@example.org "


def one_character_deltas() -> list[dict[str, Any]]:
    return [START, start(0), *SPLIT, *(delta(0, "a") for _ in range(N)), stop(0), *END]


def one_block_after_another() -> list[dict[str, Any]]:
    blocks = (e for i in range(1, N) for e in (start(i), delta(i, "a"), stop(i)))
    return [START, start(0), *SPLIT, stop(0), *blocks, *END]


def blocks_stopped_only_at_the_end() -> list[dict[str, Any]]:
    blocks = (e for i in range(1, N) for e in (start(i), delta(i, "a")))
    return [START, start(0), *SPLIT, *blocks, *(stop(i) for i in range(N)), *END]


def a_tool_input_in_4_mib_pieces() -> list[dict[str, Any]]:
    pieces = (delta(1, "x" * (4 << 20), "tool_use") for _ in range(3))
    return [START, start(0), *SPLIT, stop(0), start(1, "tool_use"), *pieces, stop(1), *END]


STREAMS: dict[Callable[[], list[dict[str, Any]]], tuple[str, ...]] = {  # shape -> its content blocks' text
    one_character_deltas: (FIRST + "a" * N,),
    one_block_after_another: (FIRST, *("a",) * (N - 1)),
    blocks_stopped_only_at_the_end: (FIRST, *("a",) * (N - 1)),
    a_tool_input_in_4_mib_pieces: (FIRST, "x" * (12 << 20)),
}


@pytest.mark.parametrize("shape", list(STREAMS), ids=lambda shape: shape.__name__)
def test_what_a_streamed_reply_leaves_in_memory_is_bounded(loop_thread, make_proxy, monkeypatch, shape) -> None:  # type: ignore[no-untyped-def]
    body = sse(shape())
    blocks = STREAMS[shape]
    seen: list[tuple[int, Outcome]] = []
    finish = MessagesObserver.finish

    def measured(self: MessagesObserver) -> None:
        held = kept(self)
        finish(self)
        seen.append((held, self.outcome))

    monkeypatch.setattr(MessagesObserver, "finish", measured)

    app = streaming_upstream("/v1/messages", body)
    request = {"model": "m", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with serving(loop_thread, app) as upstream:
        proxy = make_proxy(CONFIG, UPSTREAM=upstream)
        with httpx.stream("POST", f"{proxy.url}/v1/messages", json=request, timeout=60) as streamed:
            assert streamed.status_code == 200 and streamed.read() == body  # forwarded as it came
    [(held, outcome)] = seen
    assert len(body) > 9_000_000 and held < 1_500_000  # (it held 5.8 to 25 MB)
    assert outcome.output_digest == digest(*blocks)
    past_limit = sum(map(len, blocks)) > 1_000_000  # limits.scan_max_chars
    assert outcome.output_detected == ({"pii:email", TRUNCATED} if past_limit else {"pii:email"})


# -- read in block order: as the whole reply is

EMAIL = Detectors((DetectorSpec("email"),), 100_000)


def observed(detectors: Detectors, events: list[dict[str, Any]] | None = None,
             whole: dict[str, Any] | None = None) -> tuple[Outcome, int]:  # fmt: skip
    """The outcome of a reply streamed (one event a read) or whole (captured), and the most the observer held
    (looked at every 50 reads)."""
    outcome = Outcome(started_ns=1)
    observer = MessagesObserver(outcome, detectors, True)
    most = 0
    if whole is not None:
        observer.body(orjson.dumps(whole))
    for at, event in enumerate(events or ()):
        observer.chunk(sse([event]))
        if at % 50 == 0:
            most = max(most, kept(observer))
    observer.finish()
    return outcome, most


def same(a: Outcome, b: Outcome) -> None:
    assert (a.output_digest, a.output_detected, a.content) == (b.output_digest, b.output_detected, b.content)


def test_text_after_a_tool_call_is_read_with_its_block() -> None:
    """llama.cpp stops every block at the end, and may stream a block's text after a later block's tool input:
    read in block order, a value split around the tool input is found."""
    tool = orjson.dumps({"to": "bob@example.org"}).decode()
    whole = {**MESSAGE, "content": [{"type": "thinking", "thinking": "hmm", "signature": ""},
                                    {"type": "text", "text": "write to ana@example.org"},
                                    {"type": "tool_use", "id": "t", "name": "f", "input": {"to": "bob@example.org"}}]}  # fmt: skip
    events = [START, start(0, "thinking"), delta(0, "hmm", "thinking"), start(1), delta(1, "write to ana@exa"),
              start(2, "tool_use"), delta(2, tool[:12], "tool_use"), delta(1, "mple.org"),
              delta(2, tool[12:], "tool_use"), stop(0), stop(1), stop(2), *END]  # fmt: skip
    reference, _ = observed(EMAIL, whole=whole)
    assert reference.output_detected == {"pii:email"}
    same(observed(EMAIL, events)[0], reference)


def test_blocks_that_wait_past_the_room_are_read_in_block_order() -> None:
    """Blocks never stopped, far more than may wait: read once the room is full, in block order, the last left
    open; what waits stays within the room (the scan limit), and labels, digest and content are the whole
    reply's."""
    detectors = Detectors((DetectorSpec("email"),), 4_000)
    texts = ["mail ana@example.org"] + [f"block {i} " * 3 for i in range(1, 2000)]
    whole = {**MESSAGE, "content": [{"type": "text", "text": text} for text in texts]}
    events = [START]
    for i, text in enumerate(texts):
        events += [start(i), delta(i, text[:9]), delta(i, text[9:])]
    reference, _ = observed(detectors, whole=whole)
    outcome, most = observed(detectors, [*events, *(stop(i) for i in range(len(texts))), *END])
    same(outcome, reference)
    assert outcome.output_detected == {"pii:email", TRUNCATED}  # the reply is past the scan limit
    assert most < 50_000  # what waits, what is captured (4 KB), what the scan reads next (it held 580 KB)
    outcome, _ = observed(detectors, events)  # a stream cut off before its stops
    same(outcome, reference)


def test_text_of_a_block_before_one_already_read_is_read_and_labelled_unread() -> None:
    """No server streams a block's text after a later block's stopped: it is read (digest included), after,
    and the labels say it may not have been read as the reply has it."""
    events = [START, start(1), delta(1, "mail ana@example.org"), stop(1), start(0), delta(0, "later"), stop(0), *END]
    outcome, _ = observed(EMAIL, events)
    assert outcome.output_detected == {"pii:email", TRUNCATED}
    assert outcome.output_digest == digest("mail ana@example.org", "later")
