"""`[DONE]` and `retry` as the openai SDK reads them: its SSE decoder drops one space after a field's colon, no more,
so `data:  [DONE]` (two spaces) is an event whose data is ` [DONE]`, which is no `[DONE]` to `Stream.__stream__`
(`sse.data.startswith("[DONE]")`) and no JSON to its `sse.json()`: the SDK raises; `retry:  5` is a retry all the same
(`int(" 5")`), so a blank line after it dispatches an event without data, which the SDK raises at. Driven with the real
openai SDK through the proxy; the reference is its decoder (`tests.test_sse_empty_events_any_read.sdk_raises`)."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.protocols import STREAM_ERROR
from tests.test_scan_cost import _streamed
from tests.test_sse_empty_events_any_read import sdk_raises
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, DONE, through_sdk
from tests.test_tiny_sse_lines import observer_of
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

# (the events after a chunk, what the SDK raises at them: "" for nothing)
CASES = [
    (b"data:  [DONE]\n\n", "JSONDecodeError"),
    (b"data:\t[DONE]\n\n", "JSONDecodeError"),
    (b"data:[DONE]\n\n", ""),
    (b"data: [DONE]x\n\n", ""),
    (b"retry:  5\n\n" + DONE, "JSONDecodeError"),
    (b"retry: 5 \n\n" + DONE, "JSONDecodeError"),
    (b"retry:+5\n\n" + DONE, "JSONDecodeError"),
    (b"retry: 5x\n\n" + DONE, ""),
    (b"retry\n\n" + DONE, ""),
]


@pytest.mark.parametrize(("events", "raised"), CASES)
def test_done_and_retry_are_read_as_the_openai_sdk_reads_them(setup_for: Any, events: bytes, raised: str) -> None:  # noqa: F811
    """Before 2026-12-05 `data:  [DONE]` ended the stream well (its value stripped of all white space) and `retry:  5`
    or `retry: 5 ` made no event (a retry was `retry: ?[0-9]+` alone): each call passed as a success where the SDK
    raised."""
    stream = CHUNK + events
    assert sdk_raises(stream) is bool(raised)
    _, sdk_raised, span = through_sdk(setup_for(), stream, split=False)
    assert sdk_raised == raised
    assert span.attributes.get("error.type") == ("upstream_error" if raised else None)
    for read in (len(stream), 1, 3):
        observer, outcome = observer_of("openai")
        _streamed(observer, stream, read)
        assert (outcome.error_type == STREAM_ERROR) is bool(raised), read
