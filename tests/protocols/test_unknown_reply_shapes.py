"""A 200 reply that is a JSON object holding none of the fields its adapter reads the output from (a server
compatible with the API in name only: `{"message": ...}`, `{"result": {"text": ...}}`, Ollama's own chat
shape), or a streamed event holding none of them (an error event, another API's event), has its strings read
by the detectors all the same, beside the output (`OutputText.add_unknown`): the record says what the client
was shown, never calls it clean. Within the same bounds (`MAX_STRINGS`, the scan limit: past them,
`scan:truncated`). A reply whose fields were found is read as before: its digest and labels are its output's."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols import MAX_STRINGS
from proxy.protocols.anthropic import MessagesObserver
from proxy.protocols.oip import RestReplyObserver
from proxy.protocols.openai import ReplyObserver, ResponsesObserver
from tests.test_unsized_replies_output import (  # noqa: F401  # (a fixture)
    CHAT,
    EMAIL,
    OUT,
    TRUNCATED,
    Reply,
    setup_for,
)

DETECTORS = Detectors((DetectorSpec("email"),), 100_000)
SAID = f"my address is {OUT}"
# replies of servers that speak the API in name only (each a shape no adapter reads)
UNKNOWN = {
    "message": {"message": SAID},
    "result": {"id": "x", "result": {"text": SAID, "tokens": 7}},
    "ollama": {"model": "m", "message": {"role": "assistant", "content": SAID}, "done": True},
    "nested": {"outputs_": [[{"generated": [SAID]}]]},
    "error": {"error": {"message": SAID, "type": "invalid_request_error"}},
}


def observers() -> dict[str, Any]:
    def oip(outcome: Outcome, detectors: Detectors, capture: bool) -> RestReplyObserver:
        return RestReplyObserver(outcome, detectors, capture, None)

    return {"chat": ReplyObserver, "responses": ResponsesObserver, "messages": MessagesObserver, "oip": oip}


def read(kind: str, reply: bytes, *, whole: bool = True, capture: bool = False) -> Outcome:
    outcome = Outcome(started_ns=1)
    observer = observers()[kind](outcome, DETECTORS, capture)
    observer.head(200, lambda name: "application/json" if name == "content-type" else None)
    if whole:
        observer.body(reply)
    else:  # passed on as it arrives (no Content-Length): kept, read whole at its end
        for at in range(0, len(reply), 5):
            observer.chunk(reply[at : at + 5])
    observer.finish()
    return outcome


@pytest.mark.parametrize("kind", ["chat", "responses", "messages", "oip"])
@pytest.mark.parametrize("shape", list(UNKNOWN))
@pytest.mark.parametrize("whole", [True, False], ids=["sized", "unsized"])
def test_a_reply_of_no_shape_the_adapter_reads_is_scanned(kind: str, shape: str, whole: bool) -> None:
    outcome = read(kind, orjson.dumps(UNKNOWN[shape]), whole=whole, capture=True)
    assert outcome.output_detected == {EMAIL}
    assert outcome.output_digest is None and outcome.content == ()  # the digest and content are the output's
    clean = read(kind, orjson.dumps({"message": "nothing to see"}), whole=whole)
    assert clean.output_detected == frozenset()


def test_an_embeddings_reply_is_its_vectors_and_a_chat_reply_its_choices() -> None:
    """Where the adapter found its fields, what else the reply holds is not walked (the common case costs
    nothing more): an embeddings reply's `data`, a chat reply's `choices` (however clean its text)."""
    embeddings = {"object": "list", "model": "m", "data": [{"object": "embedding", "index": 0, "embedding": "AAAA"}],
                  "note": SAID}  # fmt: skip
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, DETECTORS, False, embeddings=True)
    observer.body(orjson.dumps(embeddings))
    observer.finish()
    assert outcome.output_detected == frozenset()
    assert read("chat", orjson.dumps(embeddings)).output_detected == {EMAIL}  # (on a chat route: no shape it reads)
    assert read("chat", orjson.dumps({**CHAT, "note": SAID})).output_detected == {EMAIL}  # (its content has it)
    assert read("chat", orjson.dumps({"choices": [], "note": SAID})).output_detected == frozenset()


def test_what_is_read_of_an_unknown_reply_is_bounded() -> None:
    many = {"items": [{"s": f"s{i}"} for i in range(MAX_STRINGS + 10)] + [SAID]}
    assert read("chat", orjson.dumps(many)).output_detected == {TRUNCATED}  # past MAX_STRINGS: not read
    long = {"message": "x " * 60_000 + SAID}  # past the scan limit (100,000 characters)
    assert read("chat", orjson.dumps(long)).output_detected == {TRUNCATED}
    assert read("oip", orjson.dumps({"message": SAID}) + b"\x00" * 4, whole=True).output_detected == {TRUNCATED}


def sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in events)


HELLO = {"choices": [{"index": 0, "delta": {"content": "hello"}}]}
STREAMS = {
    "chat": sse([{"text": "to bob@exa"}, {"text": "mple.org"}]) + b"data: [DONE]\n\n",  # run together
    "chat-error": sse([HELLO, {"error": {"message": SAID, "type": "server_error"}}]),
    "responses": sse([{"type": "error", "code": "x", "message": SAID}]),
    "messages": sse([{"type": "ping"}, {"type": "error", "error": {"type": "overloaded_error", "message": SAID}}]),
}


@pytest.mark.parametrize("name", list(STREAMS))
def test_an_event_of_no_shape_the_adapter_reads_is_scanned(name: str) -> None:
    kind = {"chat-error": "chat"}.get(name, name)
    outcome = Outcome(started_ns=1)
    observer = observers()[kind](outcome, DETECTORS, False)
    observer.head(200, lambda name: "text/event-stream")
    data = STREAMS[name]
    for at in range(0, len(data), 3):
        observer.chunk(data[at : at + 3])
    observer.finish()
    assert outcome.output_detected == {EMAIL}
    if name == "chat-error":  # the digest is the output's text alone
        alone = Outcome(started_ns=1)
        reference = ReplyObserver(alone, DETECTORS, False)
        reference.head(200, lambda name: "text/event-stream")
        reference.chunk(sse([HELLO]))
        reference.finish()
        assert outcome.output_digest == alone.output_digest is not None


# -- through the proxy, as the OpenAI SDK calls it


def client(url: str, flow: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0, default_headers={"x-data-labels": flow})


def test_through_the_proxy_an_unknown_reply_is_labelled_whole_and_streamed(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    messages: list[Any] = [{"role": "user", "content": "hello"}]
    for framing in ("sized", "chunked"):
        body = orjson.dumps({"message": SAID})
        setup.upstream.reply = Reply([body[:9], body[9:]], framing=framing)
        flow = f"flow-whole-{framing}"
        raw = client(setup.proxy.url, flow).chat.completions.with_raw_response.create(model="m", messages=messages)
        assert raw.http_response.content == body  # passed on as it came
        assert setup.recorded(raw, flow) == ([flow, EMAIL], [flow, EMAIL])
    stream = sse([{"text": "to bob@exa"}, {"text": "mple.org"}]) + b"data: [DONE]\n\n"
    setup.upstream.reply = Reply([stream[:20], stream[20:]], content_type="text/event-stream")
    flow = "flow-streamed"
    raw = client(setup.proxy.url, flow).chat.completions.with_raw_response.create(model="m", messages=messages,
                                                                                  stream=True)  # fmt: skip
    got = [chunk.model_dump() for chunk in raw.parse()]
    assert [event.get("text") for event in got] == ["to bob@exa", "mple.org"]  # (what the SDK hands its caller)
    assert setup.recorded(raw, flow) == ([flow, EMAIL], [flow, EMAIL])
