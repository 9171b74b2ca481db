"""Event streams are read as the WHATWG EventSource reads them: an event's data is its `data:` lines joined by LF
(pretty-printed JSON comes a line each), lines end in LF, CRLF or a bare CR, and the stream may be cut into chunks
anywhere (a CRLF too); a byte order mark that begins the stream is dropped, but where the openai or Anthropic SDK
reads it (these three APIs): their decoders keep it, and the line it begins is a field they ignore, which is said
unread (`scan:truncated`). Each stream is read as a reference reader (`spec_events`, the spec's steps written out)
has its events: the record (labels, digest, finish reasons, usage) is that of the same events sent one line each. An
event's data is bounded as a line is (`sse.MAX_LINE`)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols import sse
from proxy.protocols.anthropic import MessagesObserver
from proxy.protocols.openai import ReplyObserver, ResponsesObserver
from proxy.protocols.sse import SseObserver
from proxy.protocols.tgi import TgiObserver
from tests.test_unsized_replies_output import (  # noqa: F401  # (a fixture)
    BODIES,
    TRUNCATED,
    Reply,
    setup_for,
)
from tests.test_unsized_replies_output import EMAIL as OUT_EMAIL

EMAIL = Detectors((DetectorSpec("email"),), 100_000)
BOM = b"\xef\xbb\xbf"


def chunk(index: int, text: str | None, reason: str | None = None) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": index, "delta": {} if text is None else {"content": text},
                         "finish_reason": reason}]}  # fmt: skip


USAGE = {"id": "c1", "model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
CHAT_EVENTS = [chunk(0, "write to bob@exa"), chunk(0, "mple.org today"), chunk(0, None, "stop"), USAGE]
RESPONSE_EVENTS = [
    {"type": "response.created", "response": {"id": "r1", "model": "m", "status": "in_progress", "output": []}},
    {"type": "response.output_text.delta", "output_index": 0, "delta": "write to bob@exa"},
    {"type": "response.output_text.delta", "output_index": 0, "delta": "mple.org today"},
    {"type": "response.completed", "response": {"id": "r1", "model": "m", "status": "completed", "output": []}},
]
MESSAGE_EVENTS = [
    {"type": "message_start", "message": {"id": "msg_1", "model": "m", "content": [], "usage": {"input_tokens": 3}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "write to bob@exa"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "mple.org today"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 4}},
    {"type": "message_stop"},
]
KINDS: dict[str, tuple[type[SseObserver], list[dict[str, Any]], bool]] = {
    "chat": (ReplyObserver, CHAT_EVENTS, True),  # (its stream ends in `data: [DONE]`)
    "responses": (ResponsesObserver, RESPONSE_EVENTS, False),
    "messages": (MessagesObserver, MESSAGE_EVENTS, False),
}


def one_line_stream(events: list[dict[str, Any]], done: bool, named: bool = False) -> bytes:
    """The events as most servers send them: one `data:` line each, LF line ends; `named`, each after an `event:` line
    naming its type, as Anthropic's are (its SDK skips an event named none: anthropic 2.17.0)."""
    return b"".join((b"event: %s\n" % e["type"].encode() if named else b"") + b"data: " + orjson.dumps(e) + b"\n\n"
                    for e in events) + (b"data: [DONE]\n\n" if done else b"")  # fmt: skip


def stream(events: list[dict[str, Any]], done: bool, end: bytes, bom: bool, pretty: list[bool]) -> bytes:
    """The events with `end` as every line's end, a byte order mark first when `bom`, event `i` pretty-printed
    (its data in many `data:` lines, some without the space after the colon) when `pretty[i]`, comments and
    `event:`/`id:` fields among the lines."""
    out = [BOM] if bom else []
    out.append(b": a comment" + end)
    for at, event in enumerate(events):
        out.append(b"event: e" + end + b"id: " + str(at).encode() + end)
        if pretty[at % len(pretty)]:
            text = orjson.dumps(event, option=orjson.OPT_INDENT_2)
            for number, line in enumerate(text.split(b"\n")):
                out.append((b"data:" if number % 2 else b"data: ") + line + end)
        else:
            out.append(b"data: " + orjson.dumps(event) + end)
        out.append(end)
    if done:
        out.append(b"data: [DONE]" + end + end)
    return b"".join(out)


def spec_events(data: bytes) -> list[bytes]:
    """The data of each event of a whole stream, as the WHATWG steps read it (the reference), but a byte order mark
    kept, as the SDKs' decoders keep it (`stream` puts it before a comment: the line is ignored either way)."""
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    events, buffer = [], []
    for line in lines[:-1]:  # (the last is no whole line)
        if not line:
            if buffer:
                events.append(b"\n".join(buffer))
            buffer = []
        elif not line.startswith(b":"):
            name, _, value = line.partition(b":")
            if name == b"data":
                buffer.append(value[1:] if value.startswith(b" ") else value)
    return events


def observed(kind: type[SseObserver], pieces: list[bytes]) -> tuple[tuple[Any, ...], list[bool]]:
    outcome = Outcome(started_ns=1)
    observer = kind(outcome, EMAIL, False)
    observer.head(200, lambda name: "text/event-stream")
    ended = []
    for piece in pieces:
        observer.chunk(piece)
        ended.append(observer.ended)
    observer.finish()
    record = (outcome.output_detected, outcome.output_digest, outcome.finish_reasons, outcome.input_tokens,
              outcome.output_tokens, outcome.response_id, outcome.response_model)  # fmt: skip
    return record, ended


def reference(kind: type[SseObserver], data: bytes) -> tuple[Any, ...]:
    """The record of a stream's events (as the spec reads them) sent one line each; the line a byte order mark
    begins, said unread."""
    events = [e if e == b"[DONE]" else orjson.loads(e) for e in spec_events(data)]
    done = events[-1:] == [b"[DONE]"]
    lines = one_line_stream(events[:-1] if done else events, done, kind is MessagesObserver)
    return marked(observed(kind, [lines])[0], data.startswith(BOM))


def marked(record: tuple[Any, ...], bom: bool) -> tuple[Any, ...]:
    """`record` (`observed`'s) of a stream that a byte order mark begins, to an SDK's reader: the line it begins is no
    field, said unread."""
    return (record[0] | {"scan:truncated"}, *record[1:]) if bom else record


@pytest.mark.parametrize("name", list(KINDS))
@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_pretty_printed_events_with_a_bom_split_at_every_byte_read_as_one_line_events(name: str, end: bytes) -> None:
    kind, events, done = KINDS[name]
    expected, _ = observed(kind, [one_line_stream(events, done, kind is MessagesObserver)])
    assert expected[0] == {"pii:email"} and expected[1] is not None
    expected = marked(expected, True)
    data = stream(events, done, end, bom=True, pretty=[True, False, True])
    assert reference(kind, data) == expected  # (the reference reads them so)
    for cut in range(len(data) + 1):
        got, ended = observed(kind, [data[:cut], data[cut:]])
        assert got == expected, cut
        assert ended[-1]


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(list(KINDS)),
    end=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    bom=st.booleans(),
    pretty=st.lists(st.booleans(), min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
)
def test_any_stream_cut_anywhere_reads_as_the_spec_reads_it(
    name: str, end: bytes, bom: bool, pretty: list[bool], cuts: list[int]
) -> None:
    kind, events, done = KINDS[name]
    data = stream(events, done, end, bom, pretty)
    at = sorted({min(cut, len(data)) for cut in cuts})
    pieces = [data[start:stop] for start, stop in zip([0, *at], [*at, len(data)], strict=True)]
    assert b"".join(pieces) == data
    got, _ = observed(kind, pieces)
    named = kind is MessagesObserver
    assert got == reference(kind, data) == marked(observed(kind, [one_line_stream(events, done, named)])[0], bom)


def test_a_bom_is_dropped_only_at_the_stream_start_and_not_where_an_sdk_reads_it() -> None:
    """One later is no part of the field name that follows it: that line is no field SSE defines, and is said
    unread; the stream's own, split over three chunks, is dropped (TGI's stream, as the spec reads it), but not in a
    stream the openai SDK reads, whose decoder keeps it: the event it begins is one the SDK never gives (a field it
    ignores, `\ufeffdata`), not read, and said unread (until 2026-12-05 read, and its error `upstream_error`)."""
    event = b"data: " + orjson.dumps(chunk(0, "to bob@example.org")) + b"\n\n"
    got, _ = observed(ReplyObserver, [BOM[:1], BOM[1:2], BOM[2:] + event])
    assert got[0] == {"scan:truncated"}
    got, _ = observed(ReplyObserver, [event + BOM + event])
    assert got[0] == {"pii:email", "scan:truncated"}
    token = b"data: " + orjson.dumps({"token": {"id": 1, "text": "to bob@example.org"}, "generated_text": None})
    got, _ = observed(TgiObserver, [BOM[:1], BOM[1:2], BOM[2:] + token + b"\n\n"])
    assert got[0] == {"pii:email"}


def test_an_event_ending_with_the_reply_is_read() -> None:
    """The reply's end ends an event without its blank line (a client reading what passed has it)."""
    pretty = orjson.dumps(chunk(0, "to bob@example.org"), option=orjson.OPT_INDENT_2)
    data = b"".join(b"data: " + line + b"\n" for line in pretty.split(b"\n"))
    assert observed(ReplyObserver, [data])[0][0] == {"pii:email"}
    assert observed(ReplyObserver, [data.rstrip(b"\n")])[0][0] == {"pii:email"}


def test_an_event_of_lines_that_is_no_json_is_said_unread_and_the_next_is_read() -> None:
    bad = b"data: {\ndata: not json\ndata: }\n\n"
    good = b"data: " + orjson.dumps(chunk(0, "to bob@example.org")) + b"\n\n"
    assert observed(ReplyObserver, [bad + good])[0][0] == {"pii:email", "scan:truncated"}


def test_an_events_data_past_max_line_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short lines add up: an event's data past `MAX_LINE` bytes stops the reading as a line that long does."""
    monkeypatch.setattr(sse, "MAX_LINE", 4096)
    event = b"data: " + orjson.dumps(chunk(0, "to bob@example.org")) + b"\n\n"
    lines = b"data: {\n" + b'data: "k": 1,\n' * 700 + b'data: "z": 1}\n\n'  # 5,600 bytes of data, in lines of 8
    observer = ReplyObserver(Outcome(started_ns=1), EMAIL, False)
    observer.head(200, lambda name: "text/event-stream")
    for at in range(0, len(lines), 100):
        observer.chunk(lines[at : at + 100])
    observer.chunk(event)
    observer.finish()
    assert observer.outcome.output_detected == {"scan:truncated"}
    within = b"data: {\n" + b'data: "k": 1,\n' * 500 + b'data: "z": 1}\n\n'  # 4,000 bytes: read
    assert observed(ReplyObserver, [within + event])[0][0] == {"pii:email"}


# -- through the proxy: the OpenAI SDK reads such a stream, and so does the record


def test_through_the_proxy_a_pretty_printed_stream_is_read_as_the_sdk_reads_it(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    data = stream(CHAT_EVENTS, True, b"\r\n", bom=False, pretty=[True])
    setup.upstream.reply = Reply([data[at : at + 7] for at in range(0, len(data), 7)], content_type="text/event-stream")
    flow = "flow-pretty"
    sdk = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", max_retries=0,
                        default_headers={"x-data-labels": flow})  # fmt: skip
    raw = sdk.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                        stream=True)  # fmt: skip
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    assert text == "write to bob@example.org today"  # (the SDK joins the lines as the spec does)
    assert setup.recorded(raw, flow) == ([flow, OUT_EMAIL], [flow, OUT_EMAIL])


def test_through_the_proxy_a_stream_after_a_bom_is_read_and_nothing_is_held_back(setup_for: Any) -> None:  # noqa: F811
    """An event whose lines stop mid-way reaches the client before the upstream sends the rest."""
    setup = setup_for()
    data = stream(CHAT_EVENTS, True, b"\n", bom=True, pretty=[True])
    first = data.index(b"bob@exa") + 3  # the first piece ends inside an event's data lines
    gate = asyncio.Event()
    setup.upstream.reply = Reply([data[:first], data[first:]], content_type="text/event-stream", gate=gate)
    path, flow = "/v1/chat/completions", "flow-bom"
    got = b""
    with httpx.stream("POST", f"{setup.proxy.url}{path}", json={**BODIES[path], "stream": True}, timeout=30,
                      headers={"x-data-labels": flow}) as response:  # fmt: skip
        chunks = response.iter_raw()
        while len(got) < first:
            got += next(chunks)
        assert got == data[:first] and setup.upstream.sent == 1  # the upstream waits: nothing more was sent
        setup.loop_thread.loop.call_soon_threadsafe(gate.set)
        got += b"".join(chunks)
    assert got == data
    # (the mark's line, a comment to the spec, is a field the SDK ignores: no field, said unread)
    assert setup.recorded(response, flow) == ([flow, OUT_EMAIL, TRUNCATED], [flow, OUT_EMAIL, TRUNCATED])


@pytest.mark.parametrize("line", [b"data: {\n\n", b"data: {x}\n\n", b'data: {"a": 1,\ndata: "b"\n\n'])
def test_events_no_reader_reads_are_parsed_a_few_only(monkeypatch: pytest.MonkeyPatch, line: bytes) -> None:
    """Events of one line or several, none a JSON object: each costs a parse or two (a line alone, then its lines
    joined), for `_MOST_REFUSED` of them; the rest of the reply (16 MiB of them) is not read, nor parsed."""
    sizes: list[int] = []
    loads = orjson.loads

    def counted(data: Any) -> Any:
        sizes.append(len(data))
        return loads(data)

    monkeypatch.setattr(orjson, "loads", counted)
    data = line * (16 * 1024 * 1024 // len(line)) + b"data: " + orjson.dumps(chunk(0, "to bob@example.org")) + b"\n\n"
    observer = ReplyObserver(Outcome(started_ns=1), EMAIL, False)
    observer.head(200, lambda name: "text/event-stream")
    for at in range(0, len(data), 1 << 16):
        observer.chunk(data[at : at + (1 << 16)])
    observer.finish()
    # (and one more: past where the reading stops, the next event is judged as the client's SDK decodes it, which
    # raises there, after which nothing more is looked at: `_LateEvents`, 91fb131)
    assert 16 <= len(sizes) <= 2 * 16 + 1
    assert observer.outcome.output_detected == {"scan:truncated"}
