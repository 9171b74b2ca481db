"""The Responses API and Anthropic Messages observers: a streamed reply, split anywhere, reads the same
as the whole reply, and `ended` turns true exactly at the API's own last event."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols.anthropic import MessagesObserver
from proxy.protocols.anthropic import read_request as read_messages
from proxy.protocols.openai import ResponsesObserver
from proxy.protocols.sse import SseObserver

EMAIL = Detectors((DetectorSpec("email"),), 100_000)
TEXT = "write to ana@example.org today"


def sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(f"event: {e['type']}\n".encode() + b"data: " + orjson.dumps(e) + b"\n\n" for e in events)


RESPONSE = {"id": "resp_1", "model": "m", "status": "completed", "usage": {"input_tokens": 3, "output_tokens": 5},
            "output": [{"type": "message", "content": [{"type": "output_text", "text": TEXT}]}]}  # fmt: skip
RESPONSE_EVENTS = (
    [{"type": "response.created", "response": {**RESPONSE, "status": "in_progress", "output": [], "usage": None}}]
    + [{"type": "response.output_text.delta", "output_index": 0, "delta": w} for w in ("write to ", "ana@exa", "mple.org today")]
    + [{"type": "response.completed", "response": RESPONSE}]
)  # fmt: skip
MESSAGE = {"id": "msg_1", "type": "message", "model": "m", "content": [{"type": "text", "text": TEXT}],
           "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 5}}  # fmt: skip
MESSAGE_EVENTS = (
    [{"type": "message_start", "message": {**MESSAGE, "content": [], "usage": {"input_tokens": 3}}},
     {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]
    + [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
       for w in ("write to ", "ana@exa", "mple.org today")]
    + [{"type": "content_block_stop", "index": 0},
       {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
       {"type": "message_stop"}]
)  # fmt: skip
CASES = [(ResponsesObserver, RESPONSE, RESPONSE_EVENTS), (MessagesObserver, MESSAGE, MESSAGE_EVENTS)]


def observed(
    kind: type[SseObserver], pieces: list[bytes], whole: dict[str, Any] | None = None
) -> tuple[Outcome, list[bool]]:
    outcome = Outcome(started_ns=1)
    observer = kind(outcome, EMAIL, False)
    ended = []
    if whole is not None:
        observer.body(orjson.dumps(whole))
    for piece in pieces:
        observer.chunk(piece)
        ended.append(observer.ended)
    observer.finish()
    return outcome, ended


@pytest.mark.parametrize(("kind", "whole", "events"), CASES, ids=["responses", "messages"])
def test_streamed_split_anywhere_reads_as_the_whole_reply(kind, whole, events) -> None:  # type: ignore[no-untyped-def]
    reference, _ = observed(kind, [], whole)
    assert reference.output_detected == {"pii:email"} and reference.output_digest is not None
    assert (reference.response_model, reference.response_id) == ("m", whole["id"])
    assert (reference.input_tokens, reference.output_tokens) == (3, 5)
    stream = sse(events)
    for cut in range(0, len(stream), 7):
        outcome, ended = observed(kind, [stream[:cut], stream[cut:]])
        assert outcome.output_digest == reference.output_digest
        assert outcome.output_detected == {"pii:email"}
        assert (outcome.input_tokens, outcome.output_tokens, outcome.finish_reasons) == (3, 5, reference.finish_reasons)
        assert outcome.first_token_ns > 0


@pytest.mark.parametrize(("kind", "whole", "events"), CASES, ids=["responses", "messages"])
def test_ended_only_at_the_last_event(kind, whole, events) -> None:  # type: ignore[no-untyped-def]
    _, ended = observed(kind, [sse([event]) for event in events])
    assert ended == [False] * (len(events) - 1) + [True]


def test_messages_request_reads_system_messages_and_tool_blocks() -> None:
    body = {"model": "m", "max_tokens": 9, "system": [{"type": "text", "text": "be brief"}], "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "mail", "input": {"to": "ana@example.org"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sent"},
                                     {"type": "image", "source": {"type": "base64", "data": "AAAA"}}]}]}  # fmt: skip
    request = read_messages(orjson.dumps(body))
    # a tool's input: whole; ids too (some templates print them)
    assert request.texts == ("be brief", "hi", "to", "ana@example.org", "t1", "mail", "t1", "sent")
    assert dict(request.params) == {"max_tokens": 9} and request.operation == "chat"


def test_a_document_whose_source_is_text_is_scanned_and_a_file_source_is_not() -> None:
    """Anthropic documents: a `text` or `content` source carries plain text (scanned: it reaches the model
    as text); a base64 or URL source is a file or a link (not text detectors can read)."""
    body = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "mail ana@example.org"}},
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "call 415 555 2671"}]}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
        {"type": "document", "source": {"type": "url", "url": "https://example.org/a.pdf"}},
        {"type": "text", "text": "summarise these"}]}]}  # fmt: skip
    assert read_messages(orjson.dumps(body)).texts == ("mail ana@example.org", "call 415 555 2671", "summarise these")
    body["tools"] = [{"name": "mail", "description": "writes to ana@example.org", "input_schema": {"type": "object"}}]
    assert read_messages(orjson.dumps(body)).texts[3:] == (  # tools reach the model whole, keys and all
        "name", "mail", "description", "writes to ana@example.org", "input_schema", "type", "object",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"[1]", "must be a JSON object"),
        (b'{"messages": []}', "'model' is required"),
        (b'{"model": 7, "messages": []}', "'model' is required"),
        (b'{"model": "m", "messages": "hi"}', "'messages' is required"),
        (b'{"model": "m", "messages": [], "model": "n"}', "appears twice"),
        (b'{"model": "m", "messages": [}', "not valid JSON"),
    ],
)
def test_a_malformed_messages_request_is_refused_with_its_reason(body: bytes, needle: str) -> None:
    from proxy.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match=needle):
        read_messages(body)


def test_messages_parameters_of_the_wrong_type_are_not_recorded_as_numbers() -> None:
    body = {"model": "m", "messages": [], "temperature": True, "top_p": "0.9", "top_k": 5}
    assert dict(read_messages(orjson.dumps(body)).params) == {"top_k": 5}


def test_text_blocks_are_scanned_together_and_each_on_its_own() -> None:
    """Templates print a message's parts with nothing between them, or with a newline: either way the
    model reads what the detectors must find (`alice@exa` + `mple.com`; `… 4111111111111111` + `0`)."""
    from proxy.config import DetectorSpec
    from proxy.detectors import Detectors
    from proxy.protocols import boundary_windows

    body = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "mail alice@exa"}, {"type": "text", "text": "mple.com"}]}]}  # fmt: skip
    request = read_messages(orjson.dumps(body))
    assert request.texts == ("mail alice@exa", "mple.com") and request.joined == (("mail alice@exa", "mple.com"),)
    assert boundary_windows(request.joined) == ["mail alice@example.com"]
    body["messages"][0]["content"] = [{"type": "text", "text": "card 4111111111111111"}, {"type": "text", "text": "0"}]
    request = read_messages(orjson.dumps(body))
    assert Detectors([DetectorSpec("credit_card")]).scan_all(request.texts) == {"pii:credit_card"}


@pytest.mark.parametrize(
    "extra",
    [
        # a tool call's input and a tool's result are printed whole (json.dumps, a Python repr): no key is framing
        {"messages": [{"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"url": "alice@example.com"}}]}]},
        {"messages": [{"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"alice@example.com": 1}}]}]},
        {"messages": [{"role": "assistant", "content": [  # keys that are payloads elsewhere are the tool's own here
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"file": "alice@example.com"}}]}]},
        {"messages": [{"role": "assistant", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "alice@example.com"}]}]}]},
        {"chat_template_kwargs": {"documents": [{"url": "alice@example.com"}]}},  # vLLM passes it to the template
        # run together by the engines: system blocks, system blocks with system-role messages, a tool result's blocks
        {"system": [{"type": "text", "text": "alice@exa"}, {"type": "text", "text": "mple.com"}]},
        {"system": "mail alice@exa", "messages": [{"role": "system", "content": "mple.com"}]},
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "text", "text": "alice@exa"}, {"type": "text", "text": "mple.com"}]}]}]},
        {"messages": [{"role": "assistant", "content": [
            {"type": "thinking", "thinking": "alice@exa"}, {"type": "thinking", "thinking": "mple.com"}]}]},
    ],
)  # fmt: skip
def test_what_engines_print_of_a_messages_request_is_scanned(extra: dict[str, object]) -> None:
    """A second review's bypasses: each reached the prompt through vLLM or llama.cpp unscanned."""
    from proxy.config import DetectorSpec
    from proxy.detectors import Detectors
    from proxy.protocols import boundary_windows

    body = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}], **extra}
    request = read_messages(orjson.dumps(body))
    email = Detectors([DetectorSpec("email")])
    assert email.scan_all(request.texts) | email.scan_all(boundary_windows(request.joined)) == {"pii:email"}


def test_where_parts_meet_is_read_whole_words_and_never_more_than_the_parts() -> None:
    """Windows around part boundaries are merged (3,000 one-character parts cost one short window, and a
    split value among them is still found), are cut only at white space (a cut inside a number read as
    its edge: a false card), and keep a long token whole (a custom pattern's)."""
    from proxy.config import DetectorSpec
    from proxy.detectors import Detectors
    from proxy.protocols import boundary_windows

    cards = Detectors([DetectorSpec("credit_card")])
    many = tuple(["x"] * 2500 + ["card 4111 1111 ", "1111 1111"])
    windows = boundary_windows((many,))
    assert sum(map(len, windows)) <= len("".join(many)) and cards.scan_all(windows) == {"pii:credit_card"}
    cut = ("Ref 1234567894111111111111111 " + "lorem " * 40, "thanks")
    assert cards.scan_all(boundary_windows((cut,))) == frozenset()
    token = "eyJ" + "a" * 400 + "." + "b" * 400
    jwt = Detectors([DetectorSpec("jwt", r"eyJa+\.b+")])
    assert jwt.scan_all(boundary_windows((("send " + token[:450], token[450:] + " now"),))) == {"pii:jwt"}
