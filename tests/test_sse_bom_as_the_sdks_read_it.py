"""A UTF-8 byte order mark in an OpenAI or Anthropic stream is read as their SDKs' decoders read it: kept, at the
stream's start too (no WHATWG drop: each line is decoded as UTF-8, not UTF-8-sig), so the line it begins is a field
they ignore (`\ufeffdata`, `\ufeffevent`): an error event so begun is none they raise at, and the call no
`upstream_error`. The line is passed over unread (`scan:truncated`), as one a mark begins later was already. Driven with
the real SDKs through the proxy."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.detectors import TRUNCATED
from tests.test_anthropic_error_by_name_alone import END, ERROR, START, anthropic_call
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, DONE, through_sdk
from tests.test_sse_events_as_the_sdk_reads_them import ERROR as CHAT_ERROR
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    ("stream", "chunks", "raised"),
    [
        (BOM + CHAT_ERROR + b"\n\n" + CHUNK + DONE, 1, ""),  # (`\ufeffdata`: no field to the SDK)
        (CHUNK + BOM + CHAT_ERROR + b"\n\n" + DONE, 1, ""),
        (BOM + b"\n" + CHAT_ERROR + b"\n\n" + CHUNK + DONE, 0, "APIError"),  # (the mark's line alone: no blank line)
        (BOM + CHUNK + CHUNK + DONE, 1, ""),  # (its first event not given: said unread)
    ],
)
def test_an_openai_event_a_bom_begins_is_none(setup_for: Any, stream: bytes, chunks: int, raised: str) -> None:  # noqa: F811
    """Before 2026-12-05 the stream's own mark was dropped (WHATWG), and its error event, which the SDK ignores,
    recorded `upstream_error`; its chunk was read, which the SDK never gave."""
    setup = setup_for()
    got, sdk_raised, span = through_sdk(setup, stream, "chunked", False)
    assert (got, sdk_raised) == (chunks, raised)
    assert span.attributes.get("error.type") == ("upstream_error" if raised else None)
    if stream.startswith(BOM + b"data"):  # (the line the SDK ignores is not read)
        assert TRUNCATED in span.attributes["lineage.output.labels"]


def test_an_anthropic_error_event_a_bom_begins_is_none_the_sdk_has(setup_for: Any) -> None:  # noqa: F811
    """Its name is a field the SDK ignores (`\ufeffevent`): the event is unnamed, and skipped. Before 2026-12-05 the
    mark was dropped and the call recorded `upstream_error`."""
    setup = setup_for()
    for stream, fails in ((BOM + b"event: error\ndata: " + ERROR + b"\n\n" + START + END, False),
                          (b"event: error\ndata: " + ERROR + b"\n\n" + START + END, True)):  # fmt: skip
        setup.upstream.reply = Reply([stream], content_type="text/event-stream")
        types, raised, span = anthropic_call(setup)
        assert (raised is not None) is fails and (types[-1:] == ["message_stop"]) is not fails
        assert span.attributes.get("error.type") == ("upstream_error" if fails else None)
