"""OpenAI adapter without a socket: request extraction, and the reply observer fed whole or as SSE cut anywhere."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.errors import InvalidRequest
from proxy.flow import Outcome
from proxy.protocols import boundary_windows
from proxy.protocols.openai import ADAPTER, ReplyObserver, read_request

EMAIL = Detectors([DetectorSpec("email")])
DONE = b"data: [DONE]"


def no_header(name: str) -> str | None:
    """A request or reply without headers."""
    return None


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def body(value: Any) -> bytes:
    return orjson.dumps(value)


# -- requests ---------------------------------------------------------------------------------------


def test_chat_texts_in_order_from_string_and_part_contents() -> None:
    request = read_request(
        "chat",
        body({
            "model": "llama",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "look at"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "text", "text": "this é"},
                    "not a part",
                    {"type": "text", "text": 5},
                ]},
                {"role": "assistant", "content": None, "tool_calls": []},
                "not a message",
                {"role": "user", "content": "thanks"},
            ],
        }),
    )  # fmt: skip
    assert request.model == "llama"
    assert request.operation == "chat"
    # every string is user data but framing (roles, types, image URLs): stray strings are scanned too
    assert request.texts == ("be brief", "look at", "this é", "not a part", "not a message", "thanks")
    assert request.stream is False
    assert request.params == ()
    assert request.labels == () and request.version is None and request.digest is None


def test_tool_calls_tool_outputs_and_documents_are_user_data() -> None:
    request = read_request(
        "chat",
        body({
            "model": "m",
            "messages": [
                {"role": "user", "content": "book it"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "book", "arguments": "{\"email\": \"ana@example.org\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "booked for ana"}]},
            ],
            "documents": [{"title": "memo", "text": "call +1 415 555 0100"}],
            "tools": [{"type": "function", "function": {"name": "book", "description": "books for ana"}}],
        }),
    )  # fmt: skip
    assert request.texts == ("book it", "call_1", "book", '{"email": "ana@example.org"}', "call_1", "booked for ana",
                             "title", "memo", "text", "call +1 415 555 0100",  # documents and tools: printed whole
                             "type", "function", "function", "name", "book", "description", "books for ana")  # fmt: skip


def test_what_servers_render_into_the_prompt_beside_the_messages_is_scanned() -> None:
    """A predicted output and a response format's schema reach the model with the messages."""
    request = read_request("chat", body({
        "model": "m", "messages": [{"role": "user", "content": "fix it"}],
        "prediction": {"type": "content", "content": "Dear Ana (ana@example.org),"},
        "response_format": {"type": "json_schema", "json_schema": {"name": "reply", "description": "to 415 555 2671"}},
        "chat_template": "{{ 'Customer: ana@example.org' }}{% for m in messages %}{{ m.content }}{% endfor %}",
        "chat_template_kwargs": {"customer": "GB82WEST12345698765432", "enable_thinking": False},
    }))  # fmt: skip
    assert request.texts == ("fix it", "Dear Ana (ana@example.org),",
                             "type", "json_schema", "json_schema", "name", "reply", "description", "to 415 555 2671",
                             "{{ 'Customer: ana@example.org' }}{% for m in messages %}{{ m.content }}{% endfor %}",
                             "customer", "GB82WEST12345698765432", "enable_thinking")  # fmt: skip


def test_responses_api_input_and_instructions() -> None:
    request = read_request(
        "responses",
        body({"model": "m", "instructions": "be kind", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call_output", "call_id": "c1", "output": "42 results"}]}),
    )  # fmt: skip
    assert request.operation == "chat" and request.texts == ("be kind", "hi", "c1", "42 results")


def test_completion_prompts_in_order_strings_only() -> None:
    assert read_request("text_completion", body({"model": "m", "prompt": "once upon"})).texts == ("once upon",)
    request = read_request("text_completion", body({"model": "m", "prompt": ["a", [1, 2], 3, "b"]}))
    assert (request.operation, request.texts) == ("text_completion", ("a", "b"))
    assert read_request("text_completion", body({"model": "m"})).texts == ()


def test_embedding_inputs_in_order_strings_only() -> None:
    assert read_request("embeddings", body({"model": "e", "input": "hello"})).texts == ("hello",)
    request = read_request("embeddings", body({"model": "e", "input": ["x", 7, "y"]}))
    assert (request.operation, request.texts) == ("embeddings", ("x", "y"))


def test_params_are_mapped_to_gen_ai_names() -> None:
    request = read_request(
        "chat",
        body({
            "model": "m", "messages": [], "max_tokens": 64, "temperature": 0.2, "top_p": 0.9, "top_k": 40,
            "frequency_penalty": 0.5, "presence_penalty": -0.5, "seed": 7, "n": 2, "stop": "\n\n",
            "user": "not a gen_ai parameter", "logprobs": True,
        }),
    )  # fmt: skip
    assert len(request.params) == 9
    assert dict(request.params) == {
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "frequency_penalty": 0.5,
        "presence_penalty": -0.5,
        "seed": 7,
        "choice.count": 2,
        "stop_sequences": ["\n\n"],
    }


def test_param_values_are_normalised() -> None:
    request = read_request(
        "chat", body({"model": "m", "messages": [], "stop": ["a", 1], "max_completion_tokens": 9, "seed": True})
    )
    assert dict(request.params) == {"stop_sequences": ["a", "1"], "max_tokens": 9, "seed": "true"}
    request = read_request(
        "embeddings", body({"model": "e", "input": "x", "encoding_format": "float", "dimensions": 256})
    )
    assert dict(request.params) == {"encoding_formats": ["float"], "embeddings.dimension.count": 256}


@pytest.mark.parametrize(
    ("value", "stream"), [(True, True), (False, False), ("true", False), (1, False), (None, False)]
)
def test_stream_flag_is_true_only_for_json_true(value: Any, stream: bool) -> None:
    assert read_request("chat", body({"model": "m", "messages": [], "stream": value})).stream is stream


@pytest.mark.parametrize(
    ("raw", "message", "param"),
    [
        (b'{"model": "m", "messages": [', "request body is not valid JSON", None),
        (b"", "request body is not valid JSON", None),
        (b"\xff\xfe", "request body is not valid JSON", None),
        (b'[{"model": "m"}]', "request body must be a JSON object", None),
        (b'"chat"', "request body must be a JSON object", None),
        (b"null", "request body must be a JSON object", None),
        (b'{"messages": []}', "'model' is required and must be a string", "model"),
        (b'{"model": "", "messages": []}', "'model' is required and must be a string", "model"),
        (b'{"model": 7, "messages": []}', "'model' is required and must be a string", "model"),
        (b'{"model": "m"}', "'messages' is required and must be a list", "messages"),
        (b'{"model": "m", "messages": "hi"}', "'messages' is required and must be a list", "messages"),
        (b'{"model": "m", "messages": {"role": "user"}}', "'messages' is required and must be a list", "messages"),
    ],
)
def test_malformed_requests_are_invalid_requests_naming_the_problem(
    raw: bytes, message: str, param: str | None
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        read_request("chat", raw)
    assert caught.value.message.startswith(message)
    assert caught.value.param == param
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")


def test_adapter_reads_by_target_operation() -> None:
    target = ADAPTER.match("POST", "/v1/embeddings")
    assert target is not None
    request = ADAPTER.read(target, body({"model": "e", "input": ["a"]}), no_header)
    assert (request.model, request.operation, request.texts) == ("e", "embeddings", ("a",))


def test_null_params_are_not_recorded() -> None:
    request = read_request("chat", body({"model": "m", "messages": [], "temperature": None, "stop": None, "seed": 1}))
    assert dict(request.params) == {"seed": 1}


def test_deeply_nested_param_value_does_not_raise_recursion_error() -> None:
    raw = b'{"model": "m", "messages": [], "temperature": ' + b"[" * 1000 + b"1" + b"]" * 1000 + b"}"
    try:
        request = read_request("chat", raw)
    except InvalidRequest:
        return
    assert request.model == "m"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)  # fmt: skip
# content parts of the kinds the readers treat specially, with any values (a hostile `type` may be a list)
parts = st.fixed_dictionaries(
    {
        "type": json_values
        | st.sampled_from(["text", "tool_use", "tool_result", "thinking", "refusal", "prompt_embeds"])
    },
    optional={"text": json_values, "input": json_values, "content": json_values, "thinking": json_values},
)
messages = st.lists(
    st.fixed_dictionaries({"content": json_values | st.lists(parts | json_values, max_size=3)},
                          optional={"role": json_values | st.sampled_from(["user", "system"])}),
    max_size=3,
)  # fmt: skip
request_fields = st.fixed_dictionaries(
    {},
    optional={
        "model": json_values | st.text(min_size=1, max_size=8),
        "messages": json_values | messages,
        "system": json_values | st.lists(parts, max_size=3),
        "prompt": json_values,
        "input": json_values,
        "stream": json_values,
        "stop": json_values,
        "max_tokens": json_values,
        "n": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(operation=st.sampled_from(["chat", "text_completion", "embeddings", "responses", "anthropic"]),
       data=request_fields | json_values)  # fmt: skip
def test_any_json_is_a_request_or_an_invalid_request(operation: str, data: Any) -> None:
    from proxy.protocols.anthropic import read_request as read_messages

    try:
        request = read_messages(body(data)) if operation == "anthropic" else read_request(operation, body(data))
    except InvalidRequest as exc:
        assert exc.message
        return
    assert isinstance(data, dict) and request.model == data["model"]
    assert all(isinstance(text, str) for text in request.texts)


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=64))
def test_any_bytes_are_a_request_or_an_invalid_request(raw: bytes) -> None:
    try:
        read_request("chat", raw)
    except InvalidRequest:
        pass


# -- replies ----------------------------------------------------------------------------------------

CHUNK = {"id": "chatcmpl-42", "object": "chat.completion.chunk", "created": 1, "model": "llama-3-8b",
         "system_fingerprint": "fp_7"}  # fmt: skip
PIECES = ["Bonjour, ", "écrivez à ", "ana@exam", "ple.org ", "🙂", " merci"]
TEXT = "".join(PIECES)
USAGE = {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}


def sse(*events: Any, done: bool = True) -> bytes:
    out = [b": keep-alive\n\n"]
    out += [b"data: " + orjson.dumps(event) + b"\n\n" for event in events]
    if done:
        out.append(DONE + b"\n\n")
    return b"".join(out)


def delta(index: Any, content: str | None = None, finish: str | None = None, **more: Any) -> dict[str, Any]:
    d: dict[str, Any] = {} if content is None else {"content": content}
    return {"index": index, "delta": d | more, "logprobs": None, "finish_reason": finish}


STREAM = sse(
    CHUNK | {"choices": [delta(0, "", role="assistant")]},
    *(CHUNK | {"choices": [delta(0, piece)]} for piece in PIECES),
    CHUNK | {"choices": [delta(0, finish="stop")]},
    CHUNK | {"choices": [], "usage": USAGE},
)
WHOLE = body(
    CHUNK | {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}],
        "usage": USAGE,
    }
)  # fmt: skip


def observer(operation: str = "chat") -> tuple[ReplyObserver, Outcome]:
    outcome = Outcome(started_ns=0)
    return ReplyObserver(outcome, EMAIL, True), outcome


def summary(outcome: Outcome) -> tuple[Any, ...]:
    """Everything an observer fills but the time of the first token."""
    return (outcome.output_digest, outcome.response_model, outcome.response_id, outcome.finish_reasons,
            outcome.input_tokens, outcome.output_tokens, outcome.output_detected, outcome.content, outcome.extra)  # fmt: skip


def observe_whole(data: bytes, operation: str = "chat") -> Outcome:
    obs, outcome = observer(operation)
    obs.head(200, {"content-type": "application/json"}.get)
    obs.body(data)
    obs.finish()
    assert outcome.first_token_ns == 0
    return outcome


def observe_stream(chunks: list[bytes], operation: str = "chat") -> Outcome:
    obs, outcome = observer(operation)
    obs.head(200, {"content-type": "text/event-stream"}.get)
    before = outcome.now_ns()  # the clock the observer marks the first token by
    for chunk in chunks:
        obs.chunk(chunk)
    after = outcome.now_ns()
    assert obs.ended
    obs.finish()
    assert before <= outcome.first_token_ns <= after
    return outcome


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(points), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def test_whole_reply() -> None:
    outcome = observe_whole(WHOLE)
    assert summary(outcome) == (
        sha(TEXT + "\n"), "llama-3-8b", "chatcmpl-42", ("stop",), 12, 6, frozenset({"pii:email"}),
        ("Bonjour, écrivez à [pii:email] 🙂 merci",),  # captured content is masked
        {"lineage.checkpoint.fingerprint": "fp_7"},
    )  # fmt: skip


def test_streamed_reply_in_one_chunk_equals_the_whole_reply() -> None:
    assert summary(observe_stream([STREAM])) == summary(observe_whole(WHOLE))


def test_streamed_reply_cut_at_every_byte_equals_the_whole_reply() -> None:
    expected = summary(observe_whole(WHOLE))
    done_end = STREAM.index(DONE) + len(DONE) + 2  # (the blank line that ends its event ends the reply)
    for point in range(len(STREAM) + 1):
        obs, outcome = observer()
        obs.chunk(STREAM[:point])
        assert obs.ended is (point >= done_end), point
        obs.chunk(STREAM[point:])
        assert obs.ended
        obs.finish()
        assert outcome.first_token_ns > 0
        assert summary(outcome) == expected, point


def test_streamed_reply_byte_by_byte_ends_exactly_at_done() -> None:
    obs, outcome = observer()
    done_end = STREAM.index(DONE) + len(DONE) + 2  # (the blank line that ends its event ends the reply)
    for i in range(len(STREAM)):
        assert obs.ended is (i >= done_end), i
        obs.chunk(STREAM[i : i + 1])
    assert obs.ended
    obs.finish()
    assert summary(outcome) == summary(observe_whole(WHOLE))


@settings(max_examples=100, deadline=None)
@given(points=st.lists(st.integers(0, len(STREAM)), max_size=30))
def test_streamed_reply_cut_anywhere_equals_the_whole_reply(points: list[int]) -> None:
    assert summary(observe_stream(cut(STREAM, points))) == summary(observe_whole(WHOLE))


def test_an_event_is_read_only_once_its_line_is_complete() -> None:
    event = b"data: " + body(CHUNK | {"choices": [delta(0, "hé")]}) + b"\n\n"
    split = event.index("é".encode()) + 1  # inside the two bytes of é
    obs, outcome = observer()
    obs.chunk(event[:20])
    obs.chunk(event[20:split])
    assert (outcome.response_model, outcome.response_id, outcome.first_token_ns) == (None, None, 0)
    obs.chunk(event[split:-2])  # the whole JSON, but no line end yet
    assert outcome.response_model is None
    obs.chunk(event[-2:])
    assert (outcome.response_model, outcome.response_id) == ("llama-3-8b", "chatcmpl-42")
    assert outcome.first_token_ns > 0 and not obs.ended
    obs.chunk(DONE + b"\n\n")
    assert obs.ended
    obs.finish()
    assert outcome.output_digest == sha("hé\n")


def test_crlf_line_endings_at_every_byte() -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    expected = summary(observe_whole(WHOLE))
    done_end = crlf.index(DONE) + len(DONE) + 3  # the blank line's CR already ends it (a bare CR may end a line)
    for point in range(len(crlf) + 1):
        obs, outcome = observer()
        obs.chunk(crlf[:point])
        assert obs.ended is (point >= done_end), point
        obs.chunk(crlf[point:])
        obs.finish()
        assert summary(outcome) == expected, point


def test_bare_cr_line_endings_split_anywhere() -> None:
    """SSE also allows a bare CR as the line end (WHATWG EventSource): read the same, wherever it is cut."""
    cr = STREAM.replace(b"\n", b"\r")
    expected = summary(observe_whole(WHOLE))
    for point in range(len(cr) + 1):
        obs, outcome = observer()
        obs.chunk(cr[:point])
        obs.chunk(cr[point:])
        assert obs.ended, point
        obs.finish()
        assert summary(outcome) == expected, point


def test_done_without_a_final_newline_is_read_at_finish() -> None:
    obs, outcome = observer()
    obs.chunk(STREAM[: STREAM.index(DONE) + len(DONE)])
    assert not obs.ended
    obs.finish()
    assert obs.ended
    assert summary(outcome) == summary(observe_whole(WHOLE))


def test_stream_without_done_never_ends() -> None:
    obs, outcome = observer()
    obs.chunk(sse(CHUNK | {"choices": [delta(0, "hi", finish="length")]}, done=False))
    assert not obs.ended
    obs.finish()
    assert not obs.ended
    assert (outcome.output_digest, outcome.finish_reasons) == (sha("hi\n"), ("length",))


N2_STREAM = sse(
    CHUNK | {"choices": [delta(0, "", role="assistant"), delta(1, "", role="assistant")]},
    CHUNK | {"choices": [delta(1, "Deux")]},
    CHUNK | {"choices": [delta(0, "Un")]},
    CHUNK | {"choices": [delta(0, " et"), delta(1, " et")]},
    CHUNK | {"choices": [delta(0, " un", finish="stop")]},
    CHUNK | {"choices": [delta(1, " deux", finish="length")]},
    CHUNK | {"choices": [], "usage": USAGE},
)
N2_WHOLE = body(
    CHUNK | {
        "choices": [  # out of order on purpose: read in index order
            {"index": 1, "message": {"role": "assistant", "content": "Deux et deux"}, "finish_reason": "length"},
            {"index": 0, "message": {"role": "assistant", "content": "Un et un"}, "finish_reason": "stop"},
        ],
        "usage": USAGE,
    }
)  # fmt: skip


def test_n2_choices_whole_and_streamed_agree_at_every_byte() -> None:
    whole = observe_whole(N2_WHOLE)
    assert whole.output_digest == sha("Un et un\nDeux et deux\n")
    assert whole.finish_reasons == ("stop", "length")
    assert whole.content == ("Un et unDeux et deux",)
    expected = summary(whole)
    for point in range(len(N2_STREAM) + 1):
        assert summary(observe_stream([N2_STREAM[:point], N2_STREAM[point:]])) == expected, point


def test_n2_with_a_textless_first_choice_whole_and_streamed_agree() -> None:
    whole = observe_whole(
        body(CHUNK | {"choices": [
            {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": []}, "finish_reason": "tool_calls"},
            {"index": 1, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"},
        ]})
    )  # fmt: skip
    streamed = observe_stream(
        [sse(CHUNK | {"choices": [delta(0, tool_calls=[], finish="tool_calls")]}, CHUNK | {"choices": [delta(1, "hi", finish="stop")]})]
    )  # fmt: skip
    assert streamed.output_digest == whole.output_digest


@pytest.mark.parametrize("index", ["1", None, 1.5, True, [1], {"i": 1}])
def test_a_choice_index_that_is_not_a_whole_number_counts_as_zero(index: Any) -> None:
    streamed = observe_stream(
        [sse(CHUNK | {"choices": [delta(0, "a")]}, CHUNK | {"choices": [delta(index, "b", finish="stop")]})]
    )
    assert (streamed.output_digest, streamed.finish_reasons) == (sha("ab\n"), ("stop",))
    whole = observe_whole(
        body(CHUNK | {"choices": [
            {"index": index, "message": {"content": "x"}, "finish_reason": "stop"},
            {"index": 0, "message": {"content": "y"}, "finish_reason": "stop"},
        ]})
    )  # fmt: skip
    assert whole.output_digest == sha("x\ny\n")


def test_text_completion_stream_and_whole_agree() -> None:
    stream = sse(
        {"id": "cmpl-1", "model": "m", "choices": [{"index": 0, "text": "Once", "finish_reason": None}]},
        {"id": "cmpl-1", "model": "m", "choices": [{"index": 0, "text": " upon", "finish_reason": "length"}]},
        {"id": "cmpl-1", "model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
    )
    whole = body({"id": "cmpl-1", "model": "m", "choices": [{"index": 0, "text": "Once upon", "finish_reason": "length"}],
                  "usage": {"prompt_tokens": 3, "completion_tokens": 2}})  # fmt: skip
    expected = observe_whole(whole, "text_completion")
    assert summary(expected) == (sha("Once upon\n"), "m", "cmpl-1", ("length",), 3, 2, frozenset(), ("Once upon",), {})
    assert summary(observe_stream([stream], "text_completion")) == summary(expected)


def test_embeddings_reply_has_usage_and_no_output_digest() -> None:
    outcome = observe_whole(
        body({"object": "list", "model": "e5", "data": [{"index": 0, "embedding": [0.1, 0.2]}],
              "usage": {"prompt_tokens": 4, "total_tokens": 4}}),
        "embeddings",
    )  # fmt: skip
    assert summary(outcome) == (None, "e5", None, (), 4, None, frozenset(), (), {})


@pytest.mark.parametrize(
    ("data", "detected"),
    [(b"", frozenset()), (b"not json", {"scan:truncated"}), (b"[1, 2]", {"scan:truncated"}),
     (b'"x"', {"scan:truncated"}), (b'{"choices": "no"}', frozenset()),
     (b'{"choices": [1, null, {"message": 5}]}', frozenset())],
)  # fmt: skip
def test_unreadable_whole_replies_are_ignored(data: bytes, detected: frozenset[str]) -> None:
    """Nothing is read of them; what is no JSON object passed unread, and is labelled so."""
    outcome = observe_whole(data)
    assert summary(outcome) == (None, None, None, (), None, None, detected, (), {})


# what the model writes beside a choice's content, whole (in the message) and streamed (split across deltas
# inside the address): the output's labels cover it; the digest and captured content stay the content's
_SPLIT = ("write to ana@exa", "mple.org now")
BESIDE = [
    ({"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "send", "arguments": '{"to": "ana@example.org"}'}}]},
     [{"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "send", "arguments": ""}}]},
      {"tool_calls": [{"index": 0, "function": {"arguments": '{"to": "ana@exa'}}]},
      {"tool_calls": [{"index": 0, "function": {"arguments": 'mple.org"}'}}]}]),
    ({"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "ana@example.org", "arguments": "{}"}}]},
     [{"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "ana@example.org"}}]}]),
    ({"reasoning": "".join(_SPLIT)}, [{"reasoning": piece} for piece in _SPLIT]),
    ({"reasoning_content": "".join(_SPLIT)}, [{"reasoning_content": piece} for piece in _SPLIT]),
    ({"refusal": "".join(_SPLIT)}, [{"refusal": piece} for piece in _SPLIT]),
    ({"function_call": {"name": "send", "arguments": '{"to": "ana@example.org"}'}},
     [{"function_call": {"name": "send", "arguments": '{"to": "ana@exa'}}, {"function_call": {"arguments": 'mple.org"}'}}]),
]  # fmt: skip


@pytest.mark.parametrize(("message", "deltas"), BESIDE, ids=["arguments", "name", "reasoning", "reasoning_content",
                                                             "refusal", "function_call"])  # fmt: skip
def test_what_the_model_writes_beside_the_content_is_labelled_whole_and_streamed(
    message: dict[str, Any], deltas: list[dict[str, Any]]
) -> None:
    whole = observe_whole(body(CHUNK | {"object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok", **message}, "finish_reason": "stop"}]}))  # fmt: skip
    assert whole.output_detected == {"pii:email"}
    assert (whole.output_digest, whole.content) == (sha("ok\n"), ("ok",))
    stream = sse(
        CHUNK | {"choices": [delta(0, "", role="assistant")]},
        *(CHUNK | {"choices": [delta(0, **more)]} for more in deltas),
        CHUNK | {"choices": [delta(0, "ok", finish="stop")]},
    )
    for point in range(0, len(stream) + 1, 3):
        assert summary(observe_stream([stream[:point], stream[point:]])) == summary(whole), point


def test_what_the_model_writes_beside_the_content_is_read_apart_from_it() -> None:
    """Reasoning, each tool call and the content are texts of their own: a value is not made up across them
    (no label the model never wrote); another choice's are read too."""
    apart = {"role": "assistant", "content": "mple.org", "reasoning": "to ana@exa", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "ana@exa"}},
        {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "mple.org"}}]}  # fmt: skip
    whole = observe_whole(body(CHUNK | {"choices": [{"index": 0, "message": apart, "finish_reason": "stop"}]}))
    assert whole.output_detected == frozenset()
    streamed = observe_stream([sse(
        CHUNK | {"choices": [delta(0, "x"), delta(1, reasoning="to ana@exa")]},
        CHUNK | {"choices": [delta(1, reasoning="mple.org")]},
    )])  # fmt: skip
    assert streamed.output_detected == {"pii:email"}


@pytest.mark.parametrize("beside", [{"reasoning": "y" * 20 + " ana@example.org"}, {}])
def test_what_the_model_writes_beside_the_content_counts_toward_the_scan_limit(beside: dict[str, str]) -> None:
    """One scan limit per reply, content and what is beside it; a text longer than what is left of it is
    labelled `scan:truncated` even when no more text follows (the content alone, in one piece)."""
    outcome = Outcome(started_ns=0)
    obs = ReplyObserver(outcome, Detectors([DetectorSpec("email")], 60), False)
    message = {"role": "assistant", "content": "x" * (50 if beside else 70), **beside}
    obs.body(body(CHUNK | {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}))
    obs.finish()
    assert outcome.output_detected == {"scan:truncated"}


def test_unreadable_events_are_ignored() -> None:
    obs, outcome = observer()
    obs.chunk(
        b"data: {broken\n\ndata: [1]\n\ndata:\n\nevent: x\nid: 3\nretry: 10\n\ndata: " + body({"choices": 5}) + b"\n\n"
    )
    obs.chunk(b"data: " + body({"choices": [1, {"delta": 2, "text": 3}]}) + b"\n\n")
    obs.chunk(b"data:" + body(CHUNK | {"choices": [delta(0, "ok")]}) + b"\n\n" + DONE + b"\n\n")  # no space after data:
    assert obs.ended
    obs.finish()
    assert (outcome.output_digest, outcome.response_id) == (sha("ok\n"), "chatcmpl-42")


def test_first_model_and_id_win_and_usage_is_the_last() -> None:
    obs, outcome = observer()
    obs.chunk(sse(
        {"id": "a", "model": "first", "choices": [delta(0, "x")], "usage": None},
        {"id": "b", "model": "second", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
        {"id": "c", "model": "third", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": "many"}},
    ))  # fmt: skip
    obs.finish()
    assert (outcome.response_id, outcome.response_model, outcome.input_tokens, outcome.output_tokens) == (
        "a",
        "first",
        5,
        1,
    )


def test_adapter_match_and_observer() -> None:
    target = ADAPTER.match("POST", "/v1/chat/completions")
    assert target is not None and target.operation == "chat"
    outcome = Outcome(started_ns=0)
    obs = ADAPTER.observer(target, outcome, Detectors([]), False)
    obs.body(WHOLE)
    obs.finish()
    assert (outcome.output_digest, outcome.content) == (sha(TEXT + "\n"), ())


def test_a_request_past_the_strings_scanned_is_labelled_truncated() -> None:
    """At most MAX_STRINGS strings of a request are scanned: a message past them would reach the model
    unread, so the request says so (the pipeline labels it scan:truncated) instead of looking clean."""
    from proxy.protocols import MAX_STRINGS
    from proxy.protocols.anthropic import read_request as read_messages_request

    messages = [{"role": "user", "content": "hi"}] * MAX_STRINGS + [{"role": "user", "content": "ana@example.org"}]
    body = orjson.dumps({"model": "m", "messages": messages})
    assert read_request("chat", body).unscanned and read_messages_request(body).unscanned
    for fitting in (messages[-2:], messages[:MAX_STRINGS]):  # a few, and exactly as many as are scanned
        body = orjson.dumps({"model": "m", "messages": fitting})
        assert not read_request("chat", body).unscanned and not read_messages_request(body).unscanned


ALICE = "alice@example.com"


def _tool(properties: dict[str, object]) -> list[dict[str, object]]:
    return [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": properties}}}]


@pytest.mark.parametrize(
    ("operation", "extra", "found"),
    [
        # a role that is not a standard one: chat templates print it
        ("chat", {"messages": [{"role": ALICE, "content": "hi"}]}, ALICE),
        # parts a template prints with nothing between them: scanned together as well as each on its own
        (
            "chat",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "alice@exa"}, {"type": "text", "text": "mple.com"}],
                    }
                ]
            },
            ALICE,
        ),
        (
            "responses",
            {
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "alice@exa"},
                            {"type": "input_text", "text": "mple.com"},
                        ],
                    }
                ]
            },
            ALICE,
        ),
        ("chat", {"messages": [{"role": "user", "content": ["alice@exa", "mple.com"]}]}, ALICE),  # plain strings
        (
            "chat",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "alice@exa "}, {"type": "text", "text": " mple.com"}],
                    }
                ]
            },
            ALICE,
        ),
        (
            "chat",
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "refusal", "refusal": "alice@exa"}, {"type": "text", "text": "mple.com"}],
                    }
                ]
            },
            ALICE,
        ),
        # a framing key's object value is walked: a tool property may be named `url` or `id`
        ("chat", {"tools": _tool({"url": {"type": "string", "description": f"contact {ALICE}"}})}, f"contact {ALICE}"),
        ("chat", {"tools": _tool({ALICE: {"type": "string"}})}, ALICE),  # a key, printed by tojson
        ("chat", {"tools": _tool({"n": {"enum": [4111111111111111]}})}, "4111111111111111"),  # a number
        ("chat", {"chat_template_kwargs": {"card": 4111111111111111}}, "4111111111111111"),
        ("chat", {"documents": [{"source": ALICE, "id": ALICE}]}, ALICE),
        ("chat", {"guided_choice": [ALICE, "no"]}, ALICE),
        ("chat", {"stop": [ALICE]}, ALICE),
        ("chat", {"some_engine_field": {"note": ALICE}}, ALICE),  # a field the proxy does not know
        ("embeddings", {"messages": [{"role": "user", "content": ALICE}]}, ALICE),  # vLLM
        ("embeddings", {"content": ALICE}, ALICE),  # llama.cpp
        ("responses", {"input": "hi", "text": {"format": {"type": "json_schema", "description": ALICE}}}, ALICE),
    ],
)
def test_what_a_server_reads_beside_the_known_fields_is_scanned(operation: str, extra: dict[str, object],
                                                                found: str) -> None:  # fmt: skip
    """Bypasses a review found: each put text before the model that the proxy did not read."""
    data: dict[str, object] = {
        "model": "m",
        **({"messages": [{"role": "user", "content": "x"}]} if operation == "chat" else {}),
        **extra,
    }
    request = read_request(operation, body(data))
    # parts the model may read run together are scanned where they meet, as well as each part
    assert any(found in text for text in (*request.texts, *boundary_windows(request.joined)))


@pytest.mark.parametrize(
    ("operation", "extra"),
    [
        ("text_completion", {"prompt": [64, 65, 66]}),
        ("text_completion", {"prompt": [[64, 65], [66]]}),
        ("text_completion", {"prompt": ["alice@example", 13, "com"]}),  # llama.cpp's mixed prompt: one text
        ("embeddings", {"input": [[1, 2, 3]]}),
        ("text_completion", {"prompt": "", "prompt_embeds": "AAAA"}),
        ("text_completion", {"prompt": {"prompt_string": [4, 1, 1, 1]}}),  # llama.cpp
        ("text_completion", {"prompt": [{"prompt_string": [4, 1, 1, 1]}]}),
        ("embeddings", {"content": [4, 1, 1, 1]}),  # llama.cpp reads `content` when `input` is absent
        ("embeddings", {"input": [{"prompt_string": [4, 1]}]}),
        ("chat", {"messages": [{"role": "user", "content": [{"type": "prompt_embeds", "data": "AAAA"}]}]}),  # vLLM
        # numbers that are not ints: vLLM's pydantic (lax) reads whole floats and booleans as token ids,
        # llama.cpp any JSON number
        ("text_completion", {"prompt": [15339.0, 1917.0, 100.0]}),
        ("text_completion", {"prompt": [[15339.0, 1917.0]]}),
        ("embeddings", {"input": [15339.0, 1917.0]}),
        ("embeddings", {"input": [[15339.0], [1917.0]]}),
        ("text_completion", {"prompt": [True, False]}),
        ("text_completion", {"prompt": ["alice@example", 13.0, "com"]}),
        ("text_completion", {"prompt": {"prompt_string": [4.0, 1.0]}}),
        ("embeddings", {"content": [4.0, 1.0]}),
        ("text_completion", {"prompt": 15339.0}),
    ],
)
def test_token_ids_and_prompt_embeddings_are_marked_unscanned(operation: str, extra: dict[str, object]) -> None:
    """The model reads text there that the proxy cannot: the call is labelled `scan:truncated`."""
    assert read_request(operation, body({"model": "m", **extra})).unscanned


@pytest.mark.parametrize("raw", [b'{"model":"m","prompt":[1.5339e4,1.917e3]}', b'{"model":"m","input":[1.5339E+4]}',
                                 b'{"model":"m","prompt":[[1e2, 2e0]]}'])  # fmt: skip
def test_token_ids_written_with_an_exponent_are_marked_unscanned(raw: bytes) -> None:
    operation = "embeddings" if b"input" in raw else "text_completion"
    assert read_request(operation, raw).unscanned


def test_what_is_about_the_request_and_not_in_it_is_not_scanned() -> None:
    request = read_request("chat", body({"model": "m", "messages": [{"role": "user", "content": "hi"}], "user": ALICE,
                                         "metadata": {"owner": ALICE}, "temperature": 0.5, "n": 4111111111111111}))  # fmt: skip
    assert request.texts == ("hi",) and not request.unscanned


def test_a_lone_surrogate_escape_stays_as_written_when_escaped_text_is_decoded() -> None:
    """`\ud800` alone is no character: decoded, it made a string that cannot be encoded (a traceback for
    anything that writes it); an escaped address and a surrogate pair beside it are still read."""
    from proxy.protocols import unescaped

    arguments = '{"a": "x\\ud800y \\ud83d\\ude00 ana\\u0040example.org"}'
    (decoded,) = unescaped(b"\\\\u", [arguments])
    assert decoded == '{"a": "x\\ud800y \U0001f600 ana@example.org"}'
    decoded.encode()


def test_merged_model_lists_take_any_id_an_upstream_writes() -> None:
    """An upstream listing an id that is not a string (a list) made every merged `/v1/models` a 500."""
    from proxy.protocols.openai import ADAPTER

    merged = ADAPTER.merge([
        {"data": [{"id": ["x"]}, {"id": "a"}, {"id": {"k": 1}}, {"no": "id"}]},
        {"data": [{"id": "a"}, {"id": ["x"]}, {"id": "b"}, {"id": {"k": 1}}]},
    ])  # fmt: skip
    assert [entry.get("id") for entry in merged["data"]] == [["x"], "a", {"k": 1}, None, "b"]
