"""What the Responses API observer keeps of a streamed reply: bounded, whatever the stream's shape. It kept
every streamed piece of every output item to the end (100,000 one-character deltas: 5.8 MB for 100 KB of
text; 100,000 items: 22 MB; two items streamed interleaved: 11.6 MB); it reads the open item as it comes
and keeps only what waits for it. Read in item order all the same: labels, digest and captured content are
the whole reply's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import ResponsesObserver
from tests.harness import serving
from tests.test_anthropic_stream_bounds import kept, streaming_upstream
from tests.test_reply_aside_bounds import CONFIG, same, sha

# they count or bound what functions run by patching them: with the modules interpreted (tests/conftest.py)
pytestmark = pytest.mark.interpreted


def sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(f"event: {e['type']}\n".encode() + b"data: " + orjson.dumps(e) + b"\n\n" for e in events)


RESPONSE = {"id": "resp_1", "object": "response", "model": "m", "status": "completed",
            "usage": {"input_tokens": 3, "output_tokens": 5}}  # fmt: skip
CREATED = {"type": "response.created", "response": {**RESPONSE, "status": "in_progress", "output": [], "usage": None}}
COMPLETED = {"type": "response.completed", "response": {**RESPONSE, "output": []}}
# an item's kind -> the events of its text
DELTAS = {"message": "response.output_text.delta", "function_call": "response.function_call_arguments.delta",
          "reasoning": "response.reasoning_text.delta"}  # fmt: skip


def added(index: int, kind: str = "message") -> dict[str, Any]:
    item = {"type": kind, "name": "f", "arguments": ""} if kind == "function_call" else {"type": kind}
    return {"type": "response.output_item.added", "output_index": index, "item": item}


def delta(index: int, piece: str, kind: str = "message") -> dict[str, Any]:
    return {"type": DELTAS[kind], "output_index": index, "content_index": 0, "delta": piece}


def done(index: int) -> dict[str, Any]:
    return {"type": "response.output_item.done", "output_index": index, "item": {"type": "message"}}


def whole_reply(items: list[tuple[str, str]]) -> dict[str, Any]:
    """The whole reply of output items (kind, text)."""
    output: list[dict[str, Any]] = []
    for kind, text in items:
        if kind == "function_call":
            output.append({"type": kind, "call_id": "c", "name": "f", "arguments": text})
        else:
            part = "reasoning_text" if kind == "reasoning" else "output_text"
            output.append({"type": kind, "content": [{"type": part, "text": text}]})
    return {**RESPONSE, "output": output}


# -- through the proxy: what the observer holds when the stream ends, and the scans it makes

N = 100_000
SPLIT = ("write to ana@exa", "mple.org ")  # a value split across two deltas of one item
FIRST = "".join(SPLIT)


def one_character_deltas() -> list[dict[str, Any]]:
    pieces = (delta(0, piece) for piece in (*SPLIT, *"a" * N))
    return [CREATED, added(0), *pieces, done(0), COMPLETED]


def an_item_each_character() -> list[dict[str, Any]]:
    first = [added(0), *(delta(0, piece) for piece in SPLIT), done(0)]
    items = (e for i in range(1, N) for e in (added(i), delta(i, "a"), done(i)))
    return [CREATED, *first, *items, COMPLETED]


def items_never_done() -> list[dict[str, Any]]:
    """A server that sends no `response.output_item.done`: every item is open to the end."""
    first = [added(0), *(delta(0, piece) for piece in SPLIT)]
    return [CREATED, *first, *(e for i in range(1, N) for e in (added(i), delta(i, "a"))), COMPLETED]


def a_function_call_each_character() -> list[dict[str, Any]]:
    """Each call's name comes with its item (beside the content: bounded by the room), its arguments after."""
    call = "function_call"
    first = [added(0, call), *(delta(0, piece, call) for piece in SPLIT), done(0)]
    calls = (e for i in range(1, N) for e in (added(i, call), delta(i, "a", call), done(i)))
    return [CREATED, *first, *calls, COMPLETED]


def two_items_interleaved() -> list[dict[str, Any]]:
    """Reasoning text (item 0) and the message (item 1) a character each, in turn, both open to the end."""
    pieces = (e for b in "b" * N for e in (delta(0, "a", "reasoning"), delta(1, b)))
    first = (delta(0, piece, "reasoning") for piece in SPLIT)
    return [CREATED, added(0, "reasoning"), *first, added(1), *pieces, done(0), done(1), COMPLETED]


STREAMS: dict[Callable[[], list[dict[str, Any]]], tuple[tuple[str, ...], frozenset[str]]] = {  # shape -> its items' text, labels
    one_character_deltas: ((FIRST + "a" * N,), frozenset({"pii:email"})),
    an_item_each_character: ((FIRST, *"a" * (N - 1)), frozenset({"pii:email"})),
    items_never_done: ((FIRST, *"a" * (N - 1)), frozenset({"pii:email"})),
    a_function_call_each_character: ((FIRST, *"a" * (N - 1)), frozenset({"pii:email", TRUNCATED})),
    two_items_interleaved: ((FIRST + "a" * N, "b" * N), frozenset({"pii:email"})),
}  # fmt: skip


@pytest.mark.parametrize("shape", list(STREAMS), ids=lambda shape: shape.__name__)
def test_what_a_streamed_reply_leaves_in_memory_and_to_scan_at_its_end_is_bounded(
    loop_thread: Any, make_proxy: Any, monkeypatch: pytest.MonkeyPatch, shape: Callable[[], list[dict[str, Any]]]
) -> None:
    """The observer held 5.8 to 22 MB at the end of each of these, and read all of it there."""
    body = sse(shape())
    items, labels = STREAMS[shape]
    seen: list[tuple[int, int, int, Outcome]] = []
    scans = [0]
    scan = Detectors.scan

    def counting(self: Detectors, *args: Any) -> frozenset[str]:
        scans[0] += 1
        return scan(self, *args)

    finish = ResponsesObserver.finish

    def measured(self: ResponsesObserver) -> None:
        held = kept(self)
        before = scans[0]
        finish(self)
        seen.append((held, scans[0] - before, scans[0], self.outcome))

    monkeypatch.setattr(Detectors, "scan", counting)
    monkeypatch.setattr(ResponsesObserver, "finish", measured)

    app = streaming_upstream("/v1/responses", body)
    request = {"model": "m", "stream": True, "input": "hi"}
    with serving(loop_thread, app) as upstream:
        proxy = make_proxy(CONFIG, UPSTREAM=upstream)
        with httpx.stream("POST", f"{proxy.url}/v1/responses", json=request, timeout=60) as streamed:
            assert streamed.status_code == 200 and streamed.read() == body  # forwarded as it came
    [(held, at_end, scanned, outcome)] = seen
    text = sum(len(item) + 1 for item in items)  # what the scans read of the content: a newline after each item
    # the calls' names (beside the content, kept for the end): 64, then one a 192 characters of the 1M room
    beside = 64 + 1_000_000 // 192 if shape is a_function_call_each_character else 0
    assert len(body) > 9_000_000 and held < 1_500_000  # (it held 5.8 to 22 MB)
    assert at_end <= 3 + beside  # the content was read as it came (it was read at the end: 25 to 49 scans)
    assert scanned <= 2 + 2 * text // 4096 + beside  # in batches of 4,096 characters, as it was
    assert outcome.output_detected == labels
    assert outcome.output_digest == sha(*items)


# -- read in item order: as the whole reply is

EMAIL = Detectors((DetectorSpec("email"),), 100_000)


def observed(detectors: Detectors, events: list[dict[str, Any]] | None = None, whole: dict[str, Any] | None = None,
             every: int = 50, capture: bool = True) -> tuple[Outcome, int]:  # fmt: skip
    """The outcome of a reply streamed (one event a read) or whole, and the most the observer held (looked at
    every `every` reads)."""
    outcome = Outcome(started_ns=1)
    observer = ResponsesObserver(outcome, detectors, capture)
    most = 0
    if whole is not None:
        observer.body(orjson.dumps(whole))
    for at, event in enumerate(events or ()):
        observer.chunk(sse([event]))
        if at % every == 0:
            most = max(most, kept(observer))
    observer.finish()
    return outcome, most


@pytest.mark.parametrize("finishing", [(0, 1, 2), (2, 1, 0), (1, 2, 0), (0, 2, 1)])
@pytest.mark.parametrize(("texts", "labels"), [
    (("first", "second is short", "third to carol@example.org now"), {"pii:email"}),
    (("mail ana@", "example.org", "x"), set()),
], ids=["split", "apart"])  # fmt: skip
def test_interleaved_items_are_read_in_item_order(finishing: tuple[int, ...], texts: tuple[str, ...],
                                                  labels: set[str]) -> None:  # fmt: skip
    """Three items (reasoning text, a message, a call's arguments) streamed three characters at a time,
    interleaved, one done right after its last piece and the others after, in any order: labels, digest and
    captured content are the whole reply's (a value split across an item's deltas is found, none is made
    up across items)."""
    kinds = ("reasoning", "message", "function_call")
    pieces = [[t[at : at + 3] for at in range(0, len(t), 3)] for t in texts]
    events = [CREATED, *(added(index, kind) for index, kind in enumerate(kinds))]
    for step in range(max(map(len, pieces))):
        for index, ps in enumerate(pieces):
            if step < len(ps):
                events.append(delta(index, ps[step], kinds[index]))
                if step == len(ps) - 1 and index == finishing[0]:
                    events.append(done(index))
    events += [*(done(index) for index in finishing[1:]), COMPLETED]
    reference, _ = observed(EMAIL, whole=whole_reply(list(zip(kinds, texts, strict=True))))
    outcome, _ = observed(EMAIL, events)
    same(outcome, reference)
    assert outcome.output_detected == labels


def test_an_item_after_one_done_is_read_as_it_comes() -> None:
    """Once the first item is done, the second's text waits no more: what is held stays small however long
    it is (it was kept whole to the end)."""
    long = ["word " * 20] * 800
    events = [CREATED, added(0), delta(0, "ok"), done(0), added(1), *(delta(1, piece) for piece in long), done(1),
              COMPLETED]  # fmt: skip
    outcome, most = observed(EMAIL, events, every=100, capture=False)
    assert outcome.output_digest == sha("ok", "".join(long)) and outcome.output_detected == frozenset()
    assert most < 20_000  # (80 KB of text: it held 127 KB)


def test_items_that_wait_past_the_room_are_read_in_item_order() -> None:
    """A second item far longer than the room while the first is open: what waits is read once the room is
    full (the first item ends there); the first item's later text is read after it, and the output says so.
    Every character is in the digest; what is held stays within the room."""
    detectors = Detectors((DetectorSpec("email"),), 4_000)
    pieces = ["mail ana@exa", "mple.org ", *("b" * 50 for _ in range(1_000))]
    events = [CREATED, delta(0, "first "), *(delta(1, piece) for piece in pieces), delta(0, "late"), done(0), done(1),
              COMPLETED]  # fmt: skip
    outcome, most = observed(detectors, events, every=20, capture=False)
    assert outcome.output_detected == {"pii:email", TRUNCATED}
    assert outcome.output_digest == sha("first ", "".join(pieces), "late")
    assert most < 20_000  # (what waits: 4,000 characters; it held 109 KB)


def test_items_never_done_past_the_room_are_read_as_the_whole_reply() -> None:
    """Items no `response.output_item.done` ends, far more than may wait: read once the room is full, in item
    order, the last left open; what waits stays within the room (the scan limit), and labels, digest and
    content are the whole reply's; so for a stream cut off before its end."""
    detectors = Detectors((DetectorSpec("email"),), 4_000)
    texts = ["mail ana@example.org"] + [f"item {i} " * 3 for i in range(1, 2000)]
    events = [CREATED]
    for i, text in enumerate(texts):
        events += [added(i), delta(i, text[:9]), delta(i, text[9:])]
    reference, _ = observed(detectors, whole=whole_reply([("message", text) for text in texts]))
    outcome, most = observed(detectors, [*events, COMPLETED])
    same(outcome, reference)
    assert outcome.output_detected == {"pii:email", TRUNCATED}  # the reply is past the scan limit
    assert most < 50_000  # what waits, what is captured (4 KB), what the scan reads next (it held 559 KB)
    outcome, _ = observed(detectors, events)
    same(outcome, reference)


def test_text_of_an_item_before_one_already_read_is_read_and_labelled_unread() -> None:
    """No server streams an item's text after a later item's was done: it is read (digest included), after,
    and the labels say it may not have been read as the reply has it."""
    events = [CREATED, delta(1, "mail ana@example.org"), done(1), delta(0, "later"), done(0), COMPLETED]
    outcome, _ = observed(EMAIL, events)
    assert outcome.output_detected == {"pii:email", TRUNCATED}
    assert outcome.output_digest == sha("mail ana@example.org", "later")


@pytest.mark.parametrize("index", [[1], {"i": 1}, "1", None, 1.5])
def test_an_items_index_of_any_shape_counts_as_0(index: object) -> None:
    """An upstream's indexes, on deltas and on an item's done: a list or an object (unhashable) must not
    fail the reply's observing; anything but a whole number is item 0 (its text run together, as before, and
    its done lets item 1 be read: item 0's text after that is out of order)."""
    events = [CREATED, *({**delta(0, piece), "output_index": index} for piece in SPLIT),
              {**done(0), "output_index": index}, delta(1, "b"), {**delta(0, "late"), "output_index": index}, COMPLETED]  # fmt: skip
    outcome, _ = observed(EMAIL, events)
    assert outcome.output_detected == {"pii:email", TRUNCATED}
    assert outcome.output_digest == sha(FIRST, "b", "late")
