"""An event whose data begins `[DONE]` ends an OpenAI stream for the openai SDKs (`sse.data.startswith("[DONE]")`, in
Python as in Node), `data: [DONE]x` too. The proxy ended the stream at `[DONE]` exactly: past `[DONE]x` it went on
passing the upstream's reply to a client whose SDK had stopped reading, labelled the output with what the SDK never
showed (`scan:truncated`, and what the events after it held), and, as the SDK closed its response at that event while
the upstream's body was still open, recorded a call that ended where its client's SDK ends it as
`client_disconnected`."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.event_streams import chat, contents, openai_chat
from tests.test_unsized_replies_output import OUT, Reply, setup_for  # noqa: F401  # (a fixture)


def test_a_stream_ends_where_the_openai_sdk_ends_it(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    gate = asyncio.Event()  # the upstream holds the rest of its reply until the client is done
    first = chat("hello", "stop") + b"data: [DONE]x\n\n"
    setup.upstream.reply = Reply([first, chat(f"write to {OUT}") + b"data: [DONE]\n\n"],
                                 content_type="text/event-stream", gate=gate)  # fmt: skip
    flow = "flow-done-prefix"
    chunks, _, span = openai_chat(
        setup, flow, before_close=lambda: setup.loop_thread.loop.call_soon_threadsafe(gate.set)
    )
    assert contents(chunks) == ["hello"]  # the SDK stops at `[DONE]x`, as it would direct
    assert span.attributes.get("error.type") is None  # the call ended as its client's SDK ends it: not left
    assert list(span.attributes["lineage.output.labels"]) == [flow]  # no output the SDK never had, nothing unread
