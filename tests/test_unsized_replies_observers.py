"""The observers, given a reply that is not an event stream in pieces (as the ingress gives one passed on
as it arrives: chunked, until close, or over `limits.buffer_max_bytes`), fill the Outcome as they do from
the same reply read whole; past `WHOLE_MAX` bytes, or cut short, its output is labelled `scan:truncated`."""

from __future__ import annotations

import struct
from typing import Any

import orjson
import pytest

from proxy.detectors import TRUNCATED, Detectors, DetectorSpec
from proxy.flow import Outcome
from proxy.protocols import ADAPTERS, WHOLE_MAX, Observer

EMAIL = Detectors([DetectorSpec("email")])
OUT = "bob@example.org"
CHAT = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "system_fingerprint": "fp",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"write to {OUT}",
                     "tool_calls": [{"id": "t", "type": "function", "function": {"name": "send", "arguments": "{}"}}]},
                     "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}  # fmt: skip
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
           "content": [{"type": "thinking", "thinking": f"think {OUT}", "signature": "s"},
                       {"type": "text", "text": "ok"}], "usage": {"input_tokens": 1, "output_tokens": 1}}  # fmt: skip
RESPONSE = {"id": "resp_1", "object": "response", "model": "m", "status": "completed", "output": [
    {"type": "message", "id": "m_1", "role": "assistant", "content": [{"type": "output_text", "text": f"to {OUT}"}]}]}  # fmt: skip
INFER = {"model_name": "iris", "model_version": "1", "id": "r-1",
         "outputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": [f"write to {OUT}"]}]}  # fmt: skip
ELEMENT = f"write to {OUT}".encode()
BINARY = struct.pack("<I", len(ELEMENT)) + ELEMENT
BINARY_HEAD = orjson.dumps({"model_name": "iris", "outputs": [
    {"name": "TEXT", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(BINARY)}}]})  # fmt: skip

JSON = {"content-type": "application/json"}
CASES = [
    ("openai", "/v1/chat/completions", orjson.dumps(CHAT), JSON),
    ("openai", "/v1/embeddings", orjson.dumps({"model": "m", "data": [{"embedding": [0.5]}], "usage": {"prompt_tokens": 2}}), JSON),
    ("anthropic", "/v1/messages", orjson.dumps(MESSAGE), JSON),
    ("openai", "/v1/responses", orjson.dumps(RESPONSE), {}),  # no Content-Type: known by its first byte
    ("oip", "/v2/models/iris/infer", orjson.dumps(INFER), JSON),
    ("oip", "/v2/models/iris/infer", BINARY_HEAD + BINARY, {"inference-header-content-length": str(len(BINARY_HEAD))}),
]  # fmt: skip


def observer(protocol: str, path: str, header: dict[str, str]) -> tuple[Observer, Outcome]:
    adapter = ADAPTERS[protocol]  # type: ignore[index]
    target = adapter.match("POST", path)
    assert target is not None
    outcome = Outcome(started_ns=0)
    found = adapter.observer(target, outcome, EMAIL, True)
    assert found is not None
    found.head(200, header.get)
    return found, outcome


def summary(outcome: Outcome) -> tuple[Any, ...]:
    return (outcome.output_digest, outcome.response_model, outcome.response_id, outcome.finish_reasons,
            outcome.input_tokens, outcome.output_tokens, outcome.output_detected, outcome.content, outcome.extra)  # fmt: skip


@pytest.mark.parametrize(("protocol", "path", "body", "header"), CASES)
@pytest.mark.parametrize("size", [1, 5, 64, 1 << 20])
def test_a_reply_in_pieces_is_read_as_the_whole_reply_is(
    protocol: str, path: str, body: bytes, header: dict[str, str], size: int
) -> None:
    whole, whole_outcome = observer(protocol, path, header)
    whole.body(body)
    whole.finish()
    streamed, outcome = observer(protocol, path, header)
    for at in range(0, len(body), size):
        streamed.chunk(body[at : at + size])
    streamed.finish()
    assert summary(outcome) == summary(whole_outcome)
    assert outcome.output_digest is not None or path == "/v1/embeddings"
    assert ("pii:email" in outcome.output_detected) == (path != "/v1/embeddings")


@pytest.mark.parametrize("stream", [False, True])
def test_white_space_before_the_first_byte_leaves_the_kind_of_reply_to_it(stream: bool) -> None:
    """Bytes of white space alone do not say whether the reply is JSON or an event stream: the first byte
    that is not white space does, and the reply is read as that from its start."""
    event = {
        "id": "c1",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": f"to {OUT}"}, "finish_reason": None}],
    }
    body = b"data: " + orjson.dumps(event) + b"\n\ndata: [DONE]\n\n" if stream else orjson.dumps(CHAT)
    found, outcome = observer("openai", "/v1/chat/completions", JSON)
    for piece in (b"\n", b" \r\n", body[:3], body[3:]):
        found.chunk(piece)
    assert found.ended is stream
    found.finish()
    assert outcome.output_detected == {"pii:email"}


@pytest.mark.parametrize(("protocol", "path"), [("openai", "/v1/chat/completions"), ("oip", "/v2/models/iris/infer")])
def test_a_reply_past_what_is_kept_is_unread(protocol: str, path: str) -> None:
    found, outcome = observer(protocol, path, JSON)
    found.chunk(b'{"model": "m", "model_name": "iris", "x": "' + b"x" * (WHOLE_MAX - 50))
    found.chunk(b"y" * 100)  # past WHOLE_MAX
    found.chunk(f'", "to": "{OUT}"}}'.encode())
    found.finish()
    assert outcome.output_detected == {TRUNCATED}
    assert (outcome.response_model, outcome.output_digest) == (None, None)


@pytest.mark.parametrize(("protocol", "path", "body", "header"), CASES)
def test_a_reply_cut_short_is_unread_and_one_that_ended_unreadable_is_as_a_whole_one(
    protocol: str, path: str, body: bytes, header: dict[str, str]
) -> None:
    cut, outcome = observer(protocol, path, header)
    cut.chunk(body[: len(body) // 2])
    outcome.error_type = "upstream_reset"  # as Exchange.finish sets it before the observer's finish
    cut.finish()
    assert outcome.output_detected == {TRUNCATED}
    ended, outcome = observer(protocol, path, header)
    ended.chunk(b"{not json")  # the upstream ended it so: read as a whole reply of it is (not at all, and said so)
    ended.finish()
    assert outcome.output_detected == {TRUNCATED}
