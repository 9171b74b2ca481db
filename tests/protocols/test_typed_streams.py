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
        # system-role messages' text blocks join the system prompt (vLLM: all system text, with "" between)
        {"system": "Escalate to alice@exa", "messages": [
            {"role": "system", "content": [{"type": "text", "text": "mple.com today"}]}, {"role": "user", "content": "hi"}]},
        {"messages": [{"role": "system", "content": [{"type": "text", "text": "Escalate to alice@exa"}]},
                      {"role": "system", "content": [{"type": "text", "text": "mple.com today"}]},
                      {"role": "user", "content": "hi"}]},
        # outside a user message vLLM prints a tool result's blocks as a Python repr: an image's link and data too
        {"messages": [{"role": "user", "content": "look"}, {"role": "assistant", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "image", "source": {
                "type": "url", "url": "https://crm.example/avatar?owner=alice@example.com"}}]}]}]},
        {"messages": [{"role": "user", "content": "look"}, {"role": "assistant", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "image", "source": {
                "type": "base64", "media_type": "image/png", "data": "alice@example.com"}}]}]}]},
        # text blocks around what vLLM and llama.cpp take out of the content (tool uses and results, thinking,
        # redacted thinking) are printed together
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]}, {"role": "user", "content": [
            {"type": "text", "text": "Escalate to alice@exa"}, {"type": "tool_result", "tool_use_id": "t1", "content": "done"},
            {"type": "text", "text": "mple.com today"}]}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
            {"type": "text", "text": "Escalate to alice@exa"}, {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            {"type": "text", "text": "mple.com today"}]}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
            {"type": "text", "text": "Escalate to alice@exa"}, {"type": "redacted_thinking", "data": "xyz"},
            {"type": "text", "text": "mple.com today"}]}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
            {"type": "text", "text": "Escalate to alice@exa"}, {"type": "thinking", "thinking": "I should check ("},
            {"type": "text", "text": "mple.com today"}]}]},
        # vLLM keeps an assistant-side tool result in the content as the text `Tool result: <content>`
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "Escalate to alice@exa"},
            {"type": "text", "text": "mple.com today"}]}]},
        # a search result's source is a string the model reads (and cites)
        {"messages": [{"role": "user", "content": [{"type": "search_result", "source": "crm://contacts/alice@example.com",
            "title": "contact", "content": [{"type": "text", "text": "VIP customer"}]}, {"type": "text", "text": "go"}]}]},
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


def test_text_blocks_around_an_image_are_joined_and_a_user_side_result_image_is_not_read() -> None:
    """An image between text blocks does not keep them apart: Ollama runs a message's text blocks together and hands
    its images apart (vLLM and llama.cpp print the image between them: each block is read alone too; before
    2026-12-05 they were read so only); a tool result's image in a user message is an image (vLLM drops it, llama.cpp
    passes it as one): not text."""
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo"}}
    body = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "alice@exa"}, image, {"type": "text", "text": "mple.com"},
        {"type": "tool_result", "tool_use_id": "t", "content": [image, {"type": "text", "text": "ok"}]}]}]}  # fmt: skip
    request = read_messages(orjson.dumps(body))
    assert request.joined == (("alice@exa", "mple.com"),) and request.texts[:2] == ("alice@exa", "mple.com")
    assert "ok" in request.texts
    assert not any("iVBOR" in text or "png" in text for text in request.texts)


def test_a_messages_text_runs_are_those_the_servers_print() -> None:
    """Thinking is taken out of the content (each message's thinking blocks are its reasoning, joined);
    the text blocks around it are consecutive."""
    body = {"model": "m", "max_tokens": 9, "messages": [{"role": "assistant", "content": [
        {"type": "text", "text": "a"}, {"type": "thinking", "thinking": "t1"}, {"type": "text", "text": "b"},
        {"type": "thinking", "thinking": "t2"}]}]}  # fmt: skip
    assert read_messages(orjson.dumps(body)).joined == (("a", "b"), ("t1", "t2"))


# what the model writes beside its content: a reasoning item's summary (Responses), thinking (Messages); the
# output's labels cover it, whole and streamed, and the digest stays the content's
THINKING = "think: mail ana@example.org"
RESPONSE_REASONING = {**RESPONSE, "output": [
    {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": THINKING}]},
    {"type": "message", "content": [{"type": "output_text", "text": "ok"}]}]}  # fmt: skip
RESPONSE_REASONING_EVENTS = (
    [{"type": "response.created", "response": {**RESPONSE, "status": "in_progress", "output": [], "usage": None}},
     {"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": []}},
     {"type": "response.reasoning_summary_part.added", "output_index": 0, "summary_index": 0,
      "part": {"type": "summary_text", "text": ""}}]
    + [{"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 0, "delta": w}
       for w in ("think: mail ana@exa", "mple.org")]
    + [{"type": "response.reasoning_summary_text.done", "output_index": 0, "summary_index": 0, "text": THINKING},
       {"type": "response.output_text.delta", "output_index": 1, "delta": "ok"},
       {"type": "response.completed", "response": RESPONSE_REASONING}]
)  # fmt: skip
RESPONSE_REASONING_TEXT = {**RESPONSE, "output": [
    {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": THINKING}]},
    {"type": "function_call", "call_id": "c1", "name": "send", "arguments": "{}"}]}  # fmt: skip
RESPONSE_REASONING_TEXT_EVENTS = (
    [{"type": "response.created", "response": {**RESPONSE, "status": "in_progress", "output": [], "usage": None}}]
    + [{"type": "response.reasoning_text.delta", "output_index": 0, "content_index": 0, "delta": w}
       for w in ("think: mail ana@exa", "mple.org")]
    + [{"type": "response.output_item.added", "output_index": 1,
        "item": {"type": "function_call", "call_id": "c1", "name": "send", "arguments": ""}},
       {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": "{}"},
       {"type": "response.completed", "response": RESPONSE_REASONING_TEXT}]
)  # fmt: skip
MESSAGE_THINKING = {**MESSAGE, "content": [{"type": "thinking", "thinking": THINKING, "signature": "s"},
                                           {"type": "redacted_thinking", "data": "xyz"}, {"type": "text", "text": "ok"}]}  # fmt: skip
MESSAGE_THINKING_EVENTS = (
    [{"type": "message_start", "message": {**MESSAGE, "content": [], "usage": {"input_tokens": 3}}},
     {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}]
    + [{"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": w}}
       for w in ("think: mail ana@exa", "mple.org")]
    + [{"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}},
       {"type": "content_block_stop", "index": 0},
       {"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "xyz"}},
       {"type": "content_block_stop", "index": 1},
       {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
       {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "ok"}},
       {"type": "content_block_stop", "index": 2},
       {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
       {"type": "message_stop"}]
)  # fmt: skip
BESIDE_CASES = [
    (ResponsesObserver, RESPONSE_REASONING, RESPONSE_REASONING_EVENTS, "ok\n"),
    (ResponsesObserver, RESPONSE_REASONING_TEXT, RESPONSE_REASONING_TEXT_EVENTS, THINKING + "\n{}\n"),
    (MessagesObserver, MESSAGE_THINKING, MESSAGE_THINKING_EVENTS, "ok\n"),
]


@pytest.mark.parametrize(("kind", "whole", "events", "content"), BESIDE_CASES,
                         ids=["responses-summary", "responses-reasoning-text", "messages-thinking"])  # fmt: skip
def test_reasoning_and_thinking_are_labelled_whole_and_streamed(kind, whole, events, content) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    reference, _ = observed(kind, [], whole)
    assert reference.output_detected == {"pii:email"}
    assert reference.output_digest == "sha256:" + hashlib.sha256(content.encode()).hexdigest()
    stream = sse(events)
    for cut in range(0, len(stream), 5):
        outcome, _ = observed(kind, [stream[:cut], stream[cut:]])
        assert (outcome.output_detected, outcome.output_digest) == ({"pii:email"}, reference.output_digest), cut


@pytest.mark.parametrize("index", [[0], {"i": 0}, "0", None, 1.5, True])
def test_an_index_of_any_shape_beside_the_content_is_read_without_failing(index: object) -> None:
    """An upstream's indexes are keys the observer keeps text under: a list or an object there (unhashable)
    must not fail the reply's observing."""
    events = [
        {"type": "response.output_item.added", "output_index": index, "item": {"type": "function_call", "name": "f"}},
        {"type": "response.reasoning_summary_text.delta", "output_index": index, "summary_index": index, "delta": "ana@exa"},
        {"type": "response.refusal.delta", "output_index": index, "content_index": index, "delta": "x"},
        {"type": "response.reasoning_summary_text.delta", "output_index": index, "summary_index": index, "delta": "mple.org"},
    ]  # fmt: skip
    outcome, _ = observed(ResponsesObserver, [sse(events)])
    assert outcome.output_detected == {"pii:email"}
    thinking = {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "thinking_delta", "thinking": "ana@example.org"},
    }
    outcome, _ = observed(MessagesObserver, [sse([thinking])])
    assert outcome.output_detected == {"pii:email"}
