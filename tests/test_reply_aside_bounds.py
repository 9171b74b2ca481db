"""What the reply observers keep, and the work they do, while reading a model's reply to label its outputs:
bounded, whatever the reply's shape. What the model writes beside its content (`OutputText.aside`: thinking,
reasoning, tool calls) was kept a list item a piece and a dict entry a key until the end (100,000
one-character thinking deltas held 5.8 MB; 100,000 thinking blocks or tool calls 25 MB, and cost 100,000
scans at the end); the streamed text of choices other than the first was kept whole to the end (100,000
one-character deltas: 5.8 MB; 100,000 choices: 22 MB); and the text of an Anthropic `content_block_start`
was not read at all. Labels, digest and content stay the whole reply's."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import proxy.protocols as protocols
from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from proxy.flow import Outcome
from proxy.protocols.anthropic import MessagesObserver
from proxy.protocols.openai import ReplyObserver
from proxy.protocols.sse import SseObserver
from tests.harness import serving
from tests.ingress.test_model_output_labels import stored_output_labels
from tests.test_anthropic_stream_bounds import CONFIG, END, START, delta, kept, sse, start, stop, streaming_upstream

# they count or bound what functions run by patching them: with the modules interpreted (tests/conftest.py)
pytestmark = pytest.mark.interpreted

EMAIL = Detectors((DetectorSpec("email"),), 100_000)


def sha(*texts: str) -> str:
    return "sha256:" + hashlib.sha256("".join(text + "\n" for text in texts).encode()).hexdigest()


def chat(*choices: dict[str, Any]) -> bytes:
    """A chat completion stream, one choice an event."""
    events = ({"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [c]} for c in choices)
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def choice(index: int, finish: str | None = None, **message: Any) -> dict[str, Any]:
    return {"index": index, "delta": message, "finish_reason": finish}


# -- through the proxy: what the observer holds when the stream ends, and the scans it makes then

N = 100_000
SPLIT = ("think ana@exa", "mple.org ")  # a value split across two pieces
FIRST = "".join(SPLIT)


def thinking_in_one_character_deltas() -> bytes:
    deltas = (delta(0, piece, "thinking") for piece in (*SPLIT, *"a" * N))
    return sse([START, start(0, "thinking"), *deltas, stop(0), start(1), delta(1, "ok"), stop(1), *END])


def a_thinking_block_each_character() -> bytes:
    first = [start(0, "thinking"), *(delta(0, piece, "thinking") for piece in SPLIT), stop(0)]
    blocks = (e for i in range(1, N) for e in (start(i, "thinking"), delta(i, "a", "thinking"), stop(i)))
    return sse([START, *first, *blocks, start(N), delta(N, "ok"), stop(N), *END])


def reasoning_in_one_character_deltas() -> bytes:
    pieces = (choice(0, reasoning_content=piece) for piece in (*SPLIT, *"a" * N))
    return chat(*pieces, choice(0, "stop", content="ok"))


def a_tool_call_each_character() -> bytes:
    first = [choice(0, tool_calls=[{"index": 0, "function": {"arguments": piece}}]) for piece in SPLIT]
    calls = (choice(0, tool_calls=[{"index": i, "function": {"arguments": "a"}}]) for i in range(1, N))
    return chat(*first, *calls, choice(0, "stop", content="ok"))


def a_second_choice_in_one_character_deltas() -> bytes:
    """n=2, the second choice's text streaming while the first's is not finished."""
    pieces = (choice(1, content=piece) for piece in (*SPLIT, *"a" * N))
    return chat(choice(0, content="ok"), *pieces, choice(0, "stop"), choice(1, "stop"))


def a_choice_each_character() -> bytes:
    return chat(choice(0, content="ok"), *(choice(i, content="a") for i in range(1, N)), choice(0, "stop"))


# shape -> its path, its content (each output's text), and its labels
STREAMS: dict[Callable[[], bytes], tuple[str, tuple[str, ...], frozenset[str]]] = {
    thinking_in_one_character_deltas: ("/v1/messages", ("ok",), frozenset({"pii:email"})),
    a_thinking_block_each_character: ("/v1/messages", ("ok",), frozenset({"pii:email", TRUNCATED})),
    reasoning_in_one_character_deltas: ("/v1/chat/completions", ("ok",), frozenset({"pii:email"})),
    a_tool_call_each_character: ("/v1/chat/completions", ("ok",), frozenset({"pii:email", TRUNCATED})),
    a_second_choice_in_one_character_deltas: ("/v1/chat/completions", ("ok", FIRST + "a" * N), frozenset({"pii:email"})),
    a_choice_each_character: ("/v1/chat/completions", ("ok", *"a" * (N - 1)), frozenset()),
}  # fmt: skip


@pytest.mark.parametrize("shape", list(STREAMS), ids=lambda shape: shape.__name__)
def test_what_a_reply_leaves_in_memory_and_to_scan_at_its_end_is_bounded(
    loop_thread: Any, make_proxy: Any, monkeypatch: pytest.MonkeyPatch, shape: Callable[[], bytes]
) -> None:
    """Thinking, reasoning and tool calls (what is beside the content, scanned at the end) and choices
    other than the first: the observer held 5.8 to 25 MB at the end of each of these, and made a scan a
    thinking block or tool call there (100,000)."""
    body = shape()
    path, outputs, labels = STREAMS[shape]
    seen: list[tuple[int, int, Outcome]] = []
    scans = [0]
    scan = Detectors.scan

    def counting(self: Detectors, *args: Any) -> frozenset[str]:
        scans[0] += 1
        return scan(self, *args)

    def measured(self: SseObserver, finish: Callable[[SseObserver], None]) -> None:
        held = kept(self)
        before = scans[0]
        finish(self)
        seen.append((held, scans[0] - before, self.outcome))

    monkeypatch.setattr(Detectors, "scan", counting)
    for kind in (MessagesObserver, ReplyObserver):
        monkeypatch.setattr(kind, "finish", lambda self, finish=kind.finish: measured(self, finish))

    app = streaming_upstream(path, body)
    request = {"model": "m", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with serving(loop_thread, app) as upstream:
        proxy = make_proxy(CONFIG, UPSTREAM=upstream)
        with httpx.stream("POST", f"{proxy.url}{path}", json=request, timeout=60) as streamed:
            assert streamed.status_code == 200 and streamed.read() == body  # forwarded as it came
    [(held, scanned, outcome)] = seen
    assert len(body) > 5_000_000 and held < 1_500_000  # (it held 5.8 to 25 MB)
    assert scanned < 6_000  # a text beside past the 64th counts 192 characters of the 1M room (it made 100,000)
    assert outcome.output_detected == labels
    assert outcome.output_digest == sha(*outputs)


# -- what is beside the content: kept run together a key, within the room


def text(detectors: Detectors = EMAIL) -> tuple[protocols.OutputText, Outcome]:
    outcome = Outcome(started_ns=1)
    return protocols.OutputText(outcome, detectors, False), outcome


def test_a_value_split_across_pieces_of_interleaved_asides_is_found() -> None:
    """Two choices' reasoning, streamed a character at a time and interleaved: each read run together,
    apart from the other (an address made of both is no address)."""
    output, outcome = text()
    for a, b in zip("write to ana@example.org ", "bob@exa mple.org trailing", strict=False):
        output.aside((0, "reasoning"), a)
        output.aside((1, "reasoning"), b)
    output.finish()
    assert outcome.output_detected == {"pii:email"}
    output, outcome = text()
    for a, b in zip("ana@exa", "mple.org", strict=False):
        output.aside((0, "reasoning"), a)
        output.aside((1, "reasoning"), b)
    output.finish()
    assert outcome.output_detected == frozenset()


def test_an_aside_past_the_room_is_read_up_to_it() -> None:
    """The room (the scan limit) cuts a piece where it ends, as a scan does: what is before is read (it
    dropped the whole piece), and the output says the rest was not."""
    output, outcome = text(Detectors((DetectorSpec("email"),), 100))
    output.aside("reasoning", "write to ana@example.org " + "x" * 200)
    output.aside("reasoning", "bob@example.org")
    output.finish()
    assert outcome.output_detected == {"pii:email", TRUNCATED}


def test_a_few_asides_cost_their_characters_only_and_many_cost_more(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first 64 keys cost their text (a small scan limit reads a few short ones as it did); past them,
    each costs 192 characters of the room: what is kept, and the scans at the end, stay bounded."""
    output, outcome = text(Detectors((DetectorSpec("email"),), 100))
    for key in range(60):
        output.aside(key, "a")
    output.aside("last", "ana@example.org")
    output.finish()
    assert outcome.output_detected == {"pii:email"}
    output, outcome = text(Detectors((DetectorSpec("email"),), 4_000))
    for key in range(100_000):
        output.aside(key, "a")
    held = kept(output)
    scans = []
    scan = Detectors.scan

    def counting(self: Detectors, *args: Any) -> frozenset[str]:
        scans.append(1)
        return scan(self, *args)

    monkeypatch.setattr(Detectors, "scan", counting)
    output.finish()
    assert outcome.output_detected == {TRUNCATED}
    assert held < 50_000 and len(scans) <= 64 + 4_000 // 192 + 1  # (it held 516 KB and made 4,000 scans)


# -- choices other than the first: read in index order, what waits bounded


def streamed(events: bytes, detectors: Detectors = EMAIL, capture: bool = True, every: int = 1) -> tuple[Outcome, int]:
    """The outcome of a chat stream read an event a read, and the most the observer held (looked at every
    `every` events)."""
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, detectors, capture)
    most = 0
    for at, event in enumerate(events.split(b"\n\n")):
        observer.chunk(event + b"\n\n")
        if at % every == 0:
            most = max(most, kept(observer))
    observer.finish()
    return outcome, most


def whole(*texts: str, detectors: Detectors = EMAIL) -> Outcome:
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, detectors, True)
    choices = [{"index": i, "message": {"content": t}, "finish_reason": "stop"} for i, t in enumerate(texts)]
    observer.body(orjson.dumps({"id": "c1", "model": "m", "choices": choices}))
    observer.finish()
    return outcome


def same(a: Outcome, b: Outcome) -> None:
    assert (a.output_digest, a.output_detected, a.content) == (b.output_digest, b.output_detected, b.content)


@pytest.mark.parametrize("finishing", [(0, 1, 2), (2, 1, 0), (1, 2, 0), (0, 2, 1)])
@pytest.mark.parametrize(("texts", "labels"), [
    (("first", "second is short", "third to carol@example.org now"), {"pii:email"}),
    (("mail ana@", "example.org", "x"), set()),
], ids=["split", "apart"])  # fmt: skip
def test_interleaved_choices_are_read_in_index_order(finishing: tuple[int, ...], texts: tuple[str, ...],
                                                     labels: set[str]) -> None:  # fmt: skip
    """Three choices streamed three characters at a time, interleaved, one finishing with its last piece
    and the others after, in any order: labels, digest and captured content are the whole reply's (a value
    split across a choice's pieces is found, none is made up across choices)."""
    pieces = [[t[at : at + 3] for at in range(0, len(t), 3)] for t in texts]
    events = []
    for step in range(max(map(len, pieces))):
        for index, ps in enumerate(pieces):
            if step < len(ps):
                last = step == len(ps) - 1 and index == finishing[0]
                events.append(choice(index, "stop" if last else None, content=ps[step]))
    events += [choice(index, "stop") for index in finishing[1:]]
    outcome, _ = streamed(chat(*events))
    same(outcome, whole(*texts))
    assert outcome.output_detected == labels


def test_a_choice_finished_is_followed_by_the_next_read_as_it_comes() -> None:
    """Once the first choice finished, the second's text waits no more: what is held stays small however
    long it is (it was kept whole to the end)."""
    long = ["word " * 20] * 800
    events = chat(choice(0, "stop", content="ok"), *(choice(1, content=piece) for piece in long), choice(1, "stop"))
    outcome, most = streamed(events, capture=False, every=100)
    assert outcome.output_digest == sha("ok", "".join(long)) and outcome.output_detected == frozenset()
    assert most < 20_000  # (80 KB of text: it held 128 KB)


def test_choices_that_wait_past_the_room_are_read_in_index_order() -> None:
    """A second choice far longer than the room while the first has not finished: what waits is read once
    the room is full (the first choice ends there); the first choice's later text is read after it, and the
    output says so. Every character is in the digest; what is held stays within the room."""
    detectors = Detectors((DetectorSpec("email"),), 4_000)
    pieces = ["mail ana@exa", "mple.org ", *("b" * 50 for _ in range(1_000))]
    events = chat(choice(0, content="first "), *(choice(1, content=piece) for piece in pieces),
                  choice(0, content="late"), choice(0, "stop"), choice(1, "stop"))  # fmt: skip
    outcome, most = streamed(events, detectors, capture=False, every=20)
    assert outcome.output_detected == {"pii:email", TRUNCATED}
    assert outcome.output_digest == sha("first ", "".join(pieces), "late")
    assert most < 20_000  # (what waits: 4,000 characters; it held 109 KB)


def test_text_of_a_choice_before_one_already_read_is_labelled_unread() -> None:
    events = chat(choice(0, "stop", content="a"), choice(1, content="mail ana@example.org"), choice(0, content="late"))
    outcome, _ = streamed(events)
    assert outcome.output_detected == {"pii:email", TRUNCATED}
    assert outcome.output_digest == sha("a", "mail ana@example.org", "late")


# -- Anthropic: text in a block's start


MESSAGE: dict[str, Any] = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
           "usage": {"input_tokens": 1, "output_tokens": 1}}  # fmt: skip
STARTS: dict[str, tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]] = {  # a block's start holding text, the deltas after it, and the whole reply's block
    "text": ({"type": "text", "text": "write to ana@exa"}, [delta(0, "mple.org")],
             {"type": "text", "text": "write to ana@example.org"}),
    "tool_use": ({"type": "tool_use", "id": "t", "name": "f", "input": {"to": "ana@example.org"}}, [],
                 {"type": "tool_use", "id": "t", "name": "f", "input": {"to": "ana@example.org"}}),
    "thinking": ({"type": "thinking", "thinking": "to ana@exa"}, [delta(0, "mple.org", "thinking")],
                 {"type": "thinking", "thinking": "to ana@example.org", "signature": ""}),
}  # fmt: skip


def message_stream(block: dict[str, Any], deltas: list[dict[str, Any]]) -> bytes:
    first = {"type": "content_block_start", "index": 0, "content_block": block}
    return sse([START, first, *deltas, stop(0), *END])


@pytest.mark.parametrize("kind", list(STARTS))
def test_text_in_a_blocks_start_is_read_as_the_whole_reply_reads_it(kind: str) -> None:
    """Anthropic starts a block empty; a server that puts its text (or a tool's input, or thinking) in the
    start got it past the output's labels."""
    first, deltas, block = STARTS[kind]
    outcome = Outcome(started_ns=1)
    observer = MessagesObserver(outcome, EMAIL, True)
    observer.chunk(message_stream(first, deltas))
    observer.finish()
    reference = Outcome(started_ns=1)
    observer = MessagesObserver(reference, EMAIL, True)
    observer.body(orjson.dumps({**MESSAGE, "content": [block]}))
    observer.finish()
    assert outcome.output_detected == reference.output_detected == {"pii:email"}
    assert (outcome.output_digest, outcome.content) == (reference.output_digest, reference.content)
    assert outcome.first_token_ns or kind == "thinking"


def test_an_empty_start_adds_nothing() -> None:
    """Anthropic's own starts (`"text": ""`, `"input": {}`): the digest is the deltas' as before."""
    tool = start(0, "tool_use")
    assert tool["content_block"]["input"] == {}
    outcome = Outcome(started_ns=1)
    observer = MessagesObserver(outcome, EMAIL, False)
    observer.chunk(
        sse([START, tool, delta(0, '{"a": 1}', "tool_use"), stop(0), start(1), delta(1, "ok"), stop(1), *END])
    )
    observer.finish()
    assert outcome.output_digest == sha('{"a": 1}', "ok")


@pytest.mark.parametrize("kind", list(STARTS))
def test_an_address_in_a_blocks_start_labels_the_streamed_reply(
    loop_thread: Any, make_proxy: Any, tmp_path: Path, kind: str
) -> None:
    """Through the proxy: the lineage edge of a streamed reply whose address is only in a block's start
    (and the deltas after it) says `pii:email`."""
    first, deltas, _ = STARTS[kind]
    body = message_stream(first, deltas)

    app = streaming_upstream("/v1/messages", body)
    request = {"model": "m", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with serving(loop_thread, app) as upstream:
        proxy = make_proxy(CONFIG, UPSTREAM=upstream)
        with httpx.stream("POST", f"{proxy.url}/v1/messages", json=request, timeout=10,
                          headers={"x-data-labels": "flow-start"}) as streamed:  # fmt: skip
            assert streamed.status_code == 200 and streamed.read() == body
        loop_thread.run(proxy.process.runtime.sinks.flush())
    found = stored_output_labels(tmp_path / "lineage.db")
    assert found["flow-start"] == ["flow-start", "pii:email"]


@pytest.mark.parametrize(
    "form",
    [
        {"type": "citations_delta", "citation": {"type": "char_location", "cited_text": "write to ana@example.org",
                                                 "document_index": 0, "start_char_index": 0, "end_char_index": 24}},
        {"type": "some_future_delta", "value": "write to ana@example.org"},
    ],
    ids=["citation", "unknown"],
)  # fmt: skip
def test_a_delta_of_another_type_is_read_for_the_outputs_labels(form: dict[str, Any]) -> None:
    """A `content_block_delta` neither text, thinking nor a tool's JSON (a citation, whose `cited_text` the client
    shows; a delta type of a later API) was read only for a `partial_json` it does not have: recorded clean."""
    outcome = Outcome(started_ns=1)
    observer = MessagesObserver(outcome, EMAIL, False)
    cited = {"type": "content_block_delta", "index": 0, "delta": form}
    observer.chunk(sse([START, start(0), delta(0, "as the document says"), cited, stop(0), *END]))
    observer.finish()
    assert outcome.output_detected == {"pii:email"}
    assert outcome.output_digest == sha("as the document says")  # the content's, as a block read beside it


def test_a_thinking_blocks_signature_is_no_output() -> None:
    outcome = Outcome(started_ns=1)
    observer = MessagesObserver(outcome, EMAIL, False)
    signature = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": "ana@example.org"},
    }
    observer.chunk(sse([START, start(0, "thinking"), signature, stop(0), *END]))
    observer.finish()
    assert outcome.output_detected == set()
