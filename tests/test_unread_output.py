"""What passes the proxy unread is said to be: a reply's output is labelled `scan:truncated` when its body held
more than white space and framing that the proxy could not read as the protocol's JSON (a page of HTML or plain
text in a 200 reply, an event's data that is no JSON object, an OIP REST reply that is no JSON object), and only
then (an event stream's comments, `event:`, `id:` and `retry:` fields, `[DONE]`, an empty body are framing). An
OIP REST reply's JSON is read as a client reads it where orjson refuses it, as the OpenAI and Anthropic replies'
are. An event stream of JSON texts no reader reads costs a parse for at most `_MOST_REFUSED` of them: the rest
of the reply is not read, which its label says."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver
from tests.test_unsized_replies_output import (  # noqa: F401  # (a fixture)
    CHAT,
    EMAIL,
    INFER,
    OUT,
    TRUNCATED,
    Reply,
    setup_for,
)

INFER_PATH, CHAT_PATH = "/v2/models/iris/infer", "/v1/chat/completions"
INFER_JSON = orjson.dumps(INFER)
assert f"write to {OUT}".encode() in INFER_JSON
# an OIP REST reply's JSON that orjson refuses, spoilt so; and the labels of its output besides the flow's
SPOILT = {
    "surrogate": (INFER_JSON.replace(b"write to", b"write \\ud800 to"), {EMAIL}),
    "not-utf8": (INFER_JSON.replace(b"write to", b"write \xff to"), {EMAIL, TRUNCATED}),
    "bom": (b"\xef\xbb\xbf" + INFER_JSON, {EMAIL}),
    "nan": (INFER_JSON.replace(b'"id":', b'"score": NaN, "id":'), {EMAIL}),
    "long-integer": (INFER_JSON.replace(b'"id":', b'"score": ' + b"7" * 5000 + b', "id":'), {EMAIL}),
    "too-deep": (INFER_JSON.replace(b'"id":', b'"deep": ' + b"[" * 200_000 + b"]" * 200_000 + b', "id":'), {TRUNCATED}),
}


@pytest.mark.parametrize("framing", ["sized", "chunked"])
def test_an_oip_rest_reply_orjson_refuses_is_read_as_a_client_reads_it(setup_for: Any, framing: str) -> None:  # noqa: F811
    setup = setup_for()
    for name, (body, labels) in SPOILT.items():
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(body)
        flow = f"flow-{name}-{framing}"
        response, got = setup.call(INFER_PATH, flow, Reply([body], framing=framing))
        assert response.status_code == 200 and got == body, name  # passed on as it came
        span, edge = setup.recorded(response, flow)
        assert set(span) == set(edge) == {flow, *labels}, name


HTML = f"<html><body><h1>Welcome</h1><p>Signed in as {OUT}</p></body></html>\n".encode()
# a 200 reply whose body the proxy cannot read as the protocol's: (path, body, content type)
UNREADABLE = {
    "chat-html": (CHAT_PATH, HTML, "text/html"),
    "chat-text": (CHAT_PATH, b"upstream says: all good\n", "text/plain"),
    "chat-json-array": (CHAT_PATH, b'[{"content": "hi"}]', "application/json"),
    "chat-events-not-json": (CHAT_PATH, b"data: hello\n\ndata: world\n\ndata: [DONE]\n\n", "text/event-stream"),
    "chat-events-and-a-page": (CHAT_PATH, b"data: [DONE]\n\n" + HTML, "text/event-stream"),
    "infer-html": (INFER_PATH, HTML, "text/html"),
    "infer-json-array": (INFER_PATH, b"[1, 2]", "application/json"),
    "infer-json-string": (INFER_PATH, b'"write to me"', "application/json"),
    "infer-no-json": (INFER_PATH, b'{"outputs": [', "application/json"),
}


@pytest.mark.parametrize("framing", ["sized", "chunked"])
def test_a_reply_the_proxy_cannot_read_is_passed_on_and_recorded_unread(setup_for: Any, framing: str) -> None:  # noqa: F811
    setup = setup_for()
    for name, (path, body, kind) in UNREADABLE.items():
        flow = f"flow-{name}-{framing}"
        response, got = setup.call(path, flow, Reply([body], framing=framing, content_type=kind))
        assert response.status_code == 200 and got == body, name
        span, edge = setup.recorded(response, flow)
        assert set(span) == set(edge) == {flow, TRUNCATED}, name


def event(text: str) -> bytes:
    return b"data: %s\n\n" % orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                           "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})  # fmt: skip


# an event stream's framing around an event: a comment, the fields SSE defines (with a value and without), a line
# of white space, an empty `data:`, `[DONE]`
FRAMED = (
    b": keep-alive\r\n\r\nevent: delta\nid: 7\nretry: 500\nevent\n  \n"
    + event(f"to {OUT}")
    + b"data:\n\ndata\n\ndata: [DONE]\n\n"
)
# replies with nothing the proxy leaves unread: framing, white space, nothing at all
READ = {
    "chat-empty": (CHAT_PATH, b"", "application/json", set()),
    "chat-white-space": (CHAT_PATH, b" \r\n\t\n", "application/json", set()),
    "chat-framing": (CHAT_PATH, FRAMED, "text/event-stream", {EMAIL}),
    "chat-json": (CHAT_PATH, orjson.dumps(CHAT), "application/json", {EMAIL}),
    "infer-empty": (INFER_PATH, b"", "application/json", set()),
    "infer-white-space": (INFER_PATH, b"\n \n", "application/json", set()),
    "infer-json": (INFER_PATH, INFER_JSON, "application/json", {EMAIL}),
}


@pytest.mark.parametrize("framing", ["sized", "chunked"])
def test_framing_and_white_space_are_not_content_left_unread(setup_for: Any, framing: str) -> None:  # noqa: F811
    setup = setup_for()
    for name, (path, body, kind, labels) in READ.items():
        flow = f"flow-{name}-{framing}"
        response, got = setup.call(path, flow, Reply([body], framing=framing, content_type=kind))
        assert response.status_code == 200 and got == body, name
        span, edge = setup.recorded(response, flow)
        assert set(span) == set(edge) == {flow, *labels}, name


def test_events_after_a_few_that_are_no_json_are_read_and_the_reply_is_labelled() -> None:
    observer = ReplyObserver(Outcome(started_ns=0), Detectors([DetectorSpec("email")]), False)
    observer.head(200, lambda name: "text/event-stream")
    observer.chunk(b"data: {\n\ndata: {x}\n\n" + event(f"to {OUT}") + b"data: [DONE]\n\n")
    observer.finish()
    assert observer.ended
    assert observer.outcome.output_detected == {EMAIL, TRUNCATED}


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The JSON texts given to orjson or Python's `json`, by size."""
    sizes: list[int] = []
    orjson_loads, json_loads = orjson.loads, json.loads

    def counted_orjson(data: Any) -> Any:
        sizes.append(len(data))
        return orjson_loads(data)

    def counted_json(text: str, **kw: Any) -> Any:
        sizes.append(len(text))
        return json_loads(text, **kw)

    monkeypatch.setattr(orjson, "loads", counted_orjson)
    monkeypatch.setattr(json, "loads", counted_json)
    return sizes


DEEP = b'data: {"a": ' + b"[" * 1100 + b"]" * 1100 + b"}\n"  # deeper than orjson reads: Python's `json` is asked


@pytest.mark.parametrize("line", [b"data: {\n", b"data: {x}\n", b'data: {"a": 1,\n', DEEP])
@pytest.mark.parametrize("whole", [False, True])
def test_a_stream_of_lines_no_reader_reads_is_parsed_a_few_lines_only(
    parses: list[int], line: bytes, whole: bool
) -> None:
    """16 MiB of such lines cost a failed parse each, holding the loop for seconds (2 million `data: {`: 5 s; 7,500
    nested too deeply, given to Python's `json` each: 3 s): past `_MOST_REFUSED` the rest is not read, nor parsed;
    the event after them is left unread, as the label says."""
    observer = ReplyObserver(Outcome(started_ns=0), Detectors([DetectorSpec("email")]), False)
    body = line * (16 * 1024 * 1024 // len(line)) + event(f"to {OUT}") + b"data: [DONE]\n\n"
    if whole:
        observer.head(200, lambda name: "application/json")
        observer.body(body)
    else:
        observer.head(200, lambda name: "text/event-stream")
        for at in range(0, len(body), 1 << 16):
            observer.chunk(body[at : at + (1 << 16)])
    observer.finish()
    assert len([size for size in parses if size <= len(line)]) <= 2 * 16  # (no blank line between: one event)
    assert len(parses) <= 2 * 16 + 2  # and the whole body, once to each (read whole)
    assert observer.outcome.output_detected == {TRUNCATED}
