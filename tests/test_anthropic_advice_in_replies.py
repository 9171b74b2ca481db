"""An advisor's advice in a Messages reply (helper fields17, 2026-12-07): why a reply's ciphertext is not marked where
the same sent back is.

A reply holding an `advisor_tool_result` whose content is an `advisor_redacted_result` (Anthropic's "opaque blob
containing the advisor's output. Round-trip verbatim; do not inspect or modify") gives its client nothing to read: the
executor model read the advice inside the call, and what it wrote from it, the reply's text, is read. So the reply is
not `scan:truncated`, as no ciphertext of a reply is (encrypted reasoning, a search result's page, a code execution's
encrypted output, a compaction's): every character the client can read was read. The ciphertext is not read either
(an address spelt in it labels nothing). Advice in clear (`advisor_result`) is read, an address in it `pii:email`,
whole and streamed. The same block sent back in a later call is `scan:truncated` (since helper fields16: another
model's text, which Anthropic decrypts into that call's prompt, the proxy never sees): the record says the advice was
not read where it reaches a model, the call that carries it. Pinned here through the real anthropic SDK (its beta
Messages types read each reply whole and streamed), the upstream a raw socket answering the Messages API's wire.
Nothing changed: main held each of these before (0 of 6 failing)."""

from __future__ import annotations

from typing import Any

import anthropic
import orjson
import pytest

from tests.test_stream_close_delimited_cut import span_of
from tests.test_unsized_replies_output import EMAIL, OUT, TRUNCATED, Reply, setup_for  # noqa: F401  # (a fixture)

# opaque to the proxy whatever it holds: one spelling an address shows it is not read
HIDDEN = {"type": "advisor_redacted_result", "encrypted_content": f"EqgfCioIARgB/{OUT}/IiQ3", "stop_reason": "end_turn"}
IN_CLEAR = {"type": "advisor_result", "text": f"Write to {OUT} first.", "stop_reason": "end_turn"}
ASKED = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "advisor", "input": {}}
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
           "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 2}}  # fmt: skip
TEXT = "Planned."


def _blocks(advice: dict[str, Any]) -> list[dict[str, Any]]:
    return [ASKED, {"type": "advisor_tool_result", "tool_use_id": "srvtoolu_1", "content": advice},
            {"type": "text", "text": TEXT}]  # fmt: skip


def _whole(advice: dict[str, Any]) -> Reply:
    return Reply([orjson.dumps({**MESSAGE, "content": _blocks(advice)})], framing="sized")


def _streamed(advice: dict[str, Any]) -> Reply:
    """As Anthropic streams server tools' blocks: each whole in its `content_block_start` (a tool use's input `{}`)."""
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None}}
    ]
    for index, block in enumerate(_blocks(advice)):
        first = {**block, "text": ""} if block["type"] == "text" else block
        events.append({"type": "content_block_start", "index": index, "content_block": first})
        if block["type"] == "text":
            delta = {"type": "text_delta", "text": TEXT}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
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


def _advice_read(setup: Any, advice: dict[str, Any], form: str, flow: str) -> tuple[Any, list[str]]:
    """One call answered with `advice`, `form` whole or streamed, through the SDK: the advice block as it gives it,
    and the record's output labels (the span's, the same as the edge's)."""
    setup.upstream.reply = _whole(advice) if form == "whole" else _streamed(advice)
    with _sdk(setup, flow) as client:
        asked = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "plan it"}]}
        if form == "whole":
            raw = client.beta.messages.with_raw_response.create(**asked)
            blocks = raw.parse().content
        else:
            raw = client.beta.messages.with_raw_response.create(**asked, stream=True)
            blocks = [e.content_block for e in raw.parse() if e.type == "content_block_start"]
    span, edge = setup.recorded(raw, flow)
    assert span == edge
    assert [block.type for block in blocks] == ["server_tool_use", "advisor_tool_result", "text"]
    return blocks[1].content, span


@pytest.mark.parametrize("form", ["whole", "streamed"])
def test_advice_encrypted_in_a_reply_is_neither_read_nor_marked(setup_for: Any, form: str) -> None:  # noqa: F811
    content, labels = _advice_read(setup_for(), HIDDEN, form, f"flow-hidden-{form}")
    assert content.type == "advisor_redacted_result" and content.encrypted_content == HIDDEN["encrypted_content"]
    assert labels == [f"flow-hidden-{form}"]  # (neither `scan:truncated` nor the address its letters spell)


@pytest.mark.parametrize("form", ["whole", "streamed"])
def test_advice_in_clear_in_a_reply_is_read(setup_for: Any, form: str) -> None:  # noqa: F811
    content, labels = _advice_read(setup_for(), IN_CLEAR, form, f"flow-clear-{form}")
    assert content.type == "advisor_result" and OUT in content.text
    assert labels == [f"flow-clear-{form}", EMAIL]


@pytest.mark.parametrize("advice", [HIDDEN, IN_CLEAR], ids=["encrypted", "in clear"])
def test_the_reply_sent_back_is_marked_where_its_advice_is_unread(setup_for: Any, advice: dict[str, Any]) -> None:  # noqa: F811
    """The reply's blocks as the SDK gives them, sent back as the next turn: its advice encrypted, `scan:truncated`
    (refused for a purpose the zone does not allow, never forwarded); in clear, read (its address `pii:email`)."""
    setup = setup_for()
    content, _ = _advice_read(setup, advice, "whole", "flow-turn-1")
    blocks = [ASKED, {"type": "advisor_tool_result", "tool_use_id": "srvtoolu_1", "content": content.model_dump()}]
    messages = [{"role": "user", "content": "plan it"}, {"role": "assistant", "content": blocks},
                {"role": "user", "content": "go on"}]  # fmt: skip
    with _sdk(setup, "flow-turn-2", "ads") as client, pytest.raises(anthropic.PermissionDeniedError) as refused:
        client.beta.messages.with_raw_response.create(model="m", max_tokens=8, messages=messages)
    assert (TRUNCATED if advice is HIDDEN else EMAIL) in refused.value.message
    assert setup.upstream.reply is None and setup.upstream.sent == 1  # (the first call's one piece alone)
    span = span_of(setup, refused.value.response.headers["x-trace-id"])
    assert list(span.attributes["lineage.input.labels"]) == ["flow-turn-2", TRUNCATED if advice is HIDDEN else EMAIL]
