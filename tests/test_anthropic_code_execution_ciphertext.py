"""A code execution's output encrypted (Anthropic's `encrypted_code_execution_result`, "standard output in encrypted
form", in place of a `code_execution_result` when the code called the web search tool) is ciphertext as every other the
API hands out and takes back: not read, in a reply or a request (review revfields17, 2026-12-07).

- In a reply, whole or streamed: neither read nor marked, as an advisor's advice encrypted, a search result's page or
  a compaction's are (the README's rule: its client can read none of it). Before, its `encrypted_stdout` alone of them
  was read as text: its letters labelled the output (an address spelt there, `pii:email`).
- Sent back in a request: `scan:truncated` as before (Anthropic decrypts it into the model's context), its letters not
  read, as a search result's page is not (before: read as text too, its letters labelling the call).
- A result is looked at by its ciphertext, whatever its `type`, as a search result's page is: one of another type (or
  none) holding `encrypted_stdout` is `scan:truncated` (before: unmarked, its ciphertext read as text).

The `stdout` in clear is read, in a reply and a request, before and after. Through the real anthropic SDK (its beta
Messages types read each reply whole and streamed), the upstream a raw socket answering the Messages API's wire.

Failing before (h-fields17, 7ef10f8e): 5 of 7 (2 replies labelled by their ciphertext, 1 call sent back labelled so,
2 reading: a result of another type, and of none, holding ciphertext unmarked); the 2 controls (`stdout` in clear read
in a reply, whole and streamed) pass on both."""

from __future__ import annotations

from typing import Any

import anthropic
import orjson
import pytest

from proxy.protocols.anthropic import read_request
from tests.test_stream_close_delimited_cut import span_of
from tests.test_unsized_replies_output import EMAIL, OUT, TRUNCATED, Reply, setup_for  # noqa: F401  # (a fixture)

# opaque to the proxy whatever it holds: one spelling an address shows it is not read
HIDDEN = {"type": "encrypted_code_execution_result", "encrypted_stdout": f"EqQBCioIAhgC/{OUT}/Ikcx9",
          "stderr": "", "return_code": 0, "content": []}  # fmt: skip
IN_CLEAR = {"type": "code_execution_result", "stdout": f"mail {OUT}", "stderr": "", "return_code": 0, "content": []}
RAN = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "code_execution", "input": {"code": "print(1)"}}
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
           "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 2}}  # fmt: skip
TEXT = "Ran it."


def _blocks(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [RAN, {"type": "code_execution_tool_result", "tool_use_id": "srvtoolu_1", "content": result},
            {"type": "text", "text": TEXT}]  # fmt: skip


def _whole(result: dict[str, Any]) -> Reply:
    return Reply([orjson.dumps({**MESSAGE, "content": _blocks(result)})], framing="sized")


def _streamed(result: dict[str, Any]) -> Reply:
    """As Anthropic streams server tools' blocks: each whole in its `content_block_start`."""
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None}}
    ]
    for index, block in enumerate(_blocks(result)):
        first = {**block, "text": ""} if block["type"] == "text" else block
        events.append({"type": "content_block_start", "index": index, "content_block": first})
        if block["type"] == "text":
            events.append(
                {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": TEXT}}
            )
        events.append({"type": "content_block_stop", "index": index})
    events += [{"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 2}}, {"type": "message_stop"}]  # fmt: skip
    return Reply([b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events],
                 content_type="text/event-stream")  # fmt: skip


def _sdk(setup: Any, flow: str, purpose: str = "assistant") -> anthropic.Anthropic:
    headers = {"x-data-labels": flow, "x-purpose": purpose}
    return anthropic.Anthropic(
        base_url=setup.proxy.url, api_key="k", max_retries=0, timeout=30, default_headers=headers
    )


def _result_read(setup: Any, result: dict[str, Any], form: str, flow: str) -> tuple[Any, list[str]]:
    """One call answered with `result`, `form` whole or streamed, through the SDK: the result as it gives it, and the
    record's output labels (the span's, the same as the edge's)."""
    setup.upstream.reply = _whole(result) if form == "whole" else _streamed(result)
    with _sdk(setup, flow) as client:
        asked = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "run it"}]}
        if form == "whole":
            raw = client.beta.messages.with_raw_response.create(**asked)
            blocks = raw.parse().content
        else:
            raw = client.beta.messages.with_raw_response.create(**asked, stream=True)
            blocks = [e.content_block for e in raw.parse() if e.type == "content_block_start"]
    span, edge = setup.recorded(raw, flow)
    assert span == edge
    assert [block.type for block in blocks] == ["server_tool_use", "code_execution_tool_result", "text"]
    return blocks[1].content, span


@pytest.mark.parametrize("form", ["whole", "streamed"])
def test_output_encrypted_in_a_reply_is_neither_read_nor_marked(setup_for: Any, form: str) -> None:  # noqa: F811
    content, labels = _result_read(setup_for(), HIDDEN, form, f"flow-hidden-{form}")
    assert content.type == "encrypted_code_execution_result" and content.encrypted_stdout == HIDDEN["encrypted_stdout"]
    assert labels == [f"flow-hidden-{form}"]  # (before: and `pii:email`, its letters read)


@pytest.mark.parametrize("form", ["whole", "streamed"])
def test_output_in_clear_in_a_reply_is_read(setup_for: Any, form: str) -> None:  # noqa: F811
    content, labels = _result_read(setup_for(), IN_CLEAR, form, f"flow-clear-{form}")
    assert content.type == "code_execution_result" and OUT in content.stdout
    assert labels == [f"flow-clear-{form}", EMAIL]


def test_the_reply_sent_back_is_marked_not_read(setup_for: Any) -> None:  # noqa: F811
    """The reply's blocks as the SDK gives them, sent back as the next turn: `scan:truncated` alone (before: and
    `pii:email`, its letters read), refused for a purpose the zone does not allow, never forwarded."""
    setup = setup_for()
    content, _ = _result_read(setup, HIDDEN, "whole", "flow-turn-1")
    blocks = [RAN, {"type": "code_execution_tool_result", "tool_use_id": "srvtoolu_1", "content": content.model_dump()}]
    messages = [{"role": "user", "content": "run it"}, {"role": "assistant", "content": blocks},
                {"role": "user", "content": "go on"}]  # fmt: skip
    with _sdk(setup, "flow-turn-2", "ads") as client, pytest.raises(anthropic.PermissionDeniedError) as refused:
        client.beta.messages.with_raw_response.create(model="m", max_tokens=8, messages=messages)
    assert TRUNCATED in refused.value.message
    assert setup.upstream.reply is None and setup.upstream.sent == 1  # (the first call's one piece alone)
    span = span_of(setup, refused.value.response.headers["x-trace-id"])
    assert list(span.attributes["lineage.input.labels"]) == ["flow-turn-2", TRUNCATED]


@pytest.mark.parametrize("kind", ["code_execution_result", None], ids=["another type", "no type"])
def test_a_result_holding_ciphertext_is_marked_whatever_its_type(kind: str | None) -> None:
    result = {k: v for k, v in {**HIDDEN, "type": kind}.items() if v is not None}
    blocks = [RAN, {"type": "code_execution_tool_result", "tool_use_id": "srvtoolu_1", "content": result}]
    body = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "run it"},
            {"role": "assistant", "content": blocks}, {"role": "user", "content": "go on"}]}  # fmt: skip
    request = read_request(orjson.dumps(body))
    assert request.unscanned is True
    assert not any(OUT in text for text in request.texts)
