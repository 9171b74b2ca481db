"""An event the openai SDK dispatches without data (its SSE decoder dispatches one at a blank line once it has a name, a
`data` line, a retry, or an id, which it keeps from event to event: `last_event_id` is not reset) is the upstream's
error wherever it is in the stream and however the stream is cut into reads: the SDK raises at it (`sse.json()` of
empty data). The reference is the SDK's own decoder (`openai._streaming.SSEDecoder`); the calls go through the proxy
to the real openai SDK."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai._streaming import SSEDecoder

from proxy.protocols import STREAM_ERROR
from tests.test_scan_cost import _streamed
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, DONE, through_sdk
from tests.test_tiny_sse_lines import observer_of
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

# (a stream, whether the openai SDK raises at it)
STREAMS = [
    (b"id: 7\n\n" + CHUNK + DONE, True),  # the stream's first event
    (b"data\n\n" + CHUNK + DONE, True),
    (b"retry: 5\n\n" + CHUNK + DONE, True),
    (b"event: x\n\n" + CHUNK + DONE, True),
    (b": ping\n\n" + CHUNK + DONE, False),  # nothing to dispatch
    (b"id: 7\n" + CHUNK + b": ping\n\n" + CHUNK + DONE, True),  # the id stays: the ping is dispatched
    (b"id: 7\n" + CHUNK + b"\n" + CHUNK + DONE, True),  # a blank line after a blank line
    (b"id: 7\n" + CHUNK + CHUNK + DONE, False),
    (b"id: 7\n" + CHUNK + b"id:\n\n" + CHUNK + DONE, False),  # an empty id ends it
    (b"id: 7\nid\n" + CHUNK + b"\n" + CHUNK + DONE, False),
    (b"id: 7\n" + CHUNK + DONE + b"\n", False),  # (past `[DONE]`: the SDK reads no more)
    (b"id: a\x00b\n\n" + CHUNK + DONE, False),  # an id holding a NUL is ignored
    (b"event: x\nevent\n\n" + CHUNK + DONE, False),  # a bare `event` line names none
    (b"retry: x\n\n" + CHUNK + DONE, False),  # no number: no retry
    (CHUNK[:-1] + b"retry: 5\n\n" + DONE, False),  # (the chunk's own event)
    (CHUNK[:-1] + b"id: 7\n\n: c\n\n" + DONE, True),
    (CHUNK + b"event: x\n: c\n\n" + DONE, True),
    (CHUNK + b"data:\t\n\n" + DONE, True),
    (CHUNK + b"event: x\nevent\n\n" + DONE, False),  # (found as one whole in a read before 2026-12-05)
    (CHUNK + b"\n\n\n" + DONE, False),
    (b"id: 7\r\n\r\n" + CHUNK + DONE, True),
    (CHUNK + b"event: \n\n" + DONE, False),  # (one space after the colon: no name)
    (CHUNK + b"event:  \n\n" + DONE, True),
    (CHUNK + b"id: \n\n" + DONE, False),
    (CHUNK + b"id:  \n\n" + DONE, True),
]


def sdk_raises(stream: bytes) -> bool:
    """Whether the openai SDK's chat stream raises at `stream`, read by its SSE decoder (`Stream.__stream__`)."""
    for sse in SSEDecoder().iter_bytes(iter([stream])):
        if sse.data.startswith("[DONE]"):
            return False
        try:
            data = json.loads(sse.data)
        except ValueError:
            return True
        if isinstance(data, dict) and data.get("error"):
            return True
    return False


@pytest.mark.parametrize(("stream", "raises"), STREAMS)
def test_an_empty_event_is_found_however_the_stream_is_read(stream: bytes, raises: bool) -> None:
    """Whole and cut at every byte, the record says what the SDK saw. Before 2026-12-05 an empty event was found only
    whole in one read after a blank line: not as the stream's first, nor split across reads, nor once the id an
    earlier event gave made the SDK dispatch one (and `event: x` then a bare `event` line was one, which names none)."""
    assert sdk_raises(stream) is raises
    for read in (len(stream), 1, 2, 7):
        observer, outcome = observer_of("openai")
        _streamed(observer, stream, read)
        assert (outcome.error_type == STREAM_ERROR) is raises, read


@pytest.mark.parametrize(
    ("stream", "raised"),
    [
        (b"id: 7\n\n" + CHUNK + DONE, "JSONDecodeError"),
        (b"id: 7\n" + CHUNK + b": ping\n\n" + CHUNK + DONE, "JSONDecodeError"),
        (b"event: x\nevent\n\n" + CHUNK + DONE, ""),
    ],
    ids=["first", "kept-id", "unnamed"],
)
def test_the_openai_sdk_through_the_proxy(setup_for: Any, stream: bytes, raised: str) -> None:  # noqa: F811
    """The same through the proxy to the openai SDK's chat stream: `upstream_error` where it raises, only there."""
    _, sdk_raised, span = through_sdk(setup_for(), stream, split=False)
    assert sdk_raised == raised
    assert span.attributes.get("error.type") == ("upstream_error" if raised else None)


@pytest.mark.parametrize("line", [b"data:\n", b"data:  \n"], ids=["empty", "white"])
@pytest.mark.parametrize("count", [100_000, 300_000])
@pytest.mark.parametrize("after", [b"", b'data: {"a": 1}\n', b"data: x\n"], ids=["none", "object", "no-json"])
def test_an_event_of_many_empty_data_lines_is_judged_past_where_the_reading_stops(
    line: bytes, count: int, after: bytes
) -> None:
    """An event of `count` `data` lines whose value is white space or none: the SDK joins them, data of white space, and
    raises at it (`json.loads`), unless a value that is JSON follows in the event. Past 65,536 of them the reading stops
    (`_unread_event`); the SDK's reading of the rest knows the data so far is white space, and keeps it so however many
    lines come (until 2026-12-06 seeded unknown, and past `_MOST_TAIL` bytes not judged: a success `scan:truncated`
    where the SDK raises, review revstreams3 and /tmp/s46/streams3/openai_empty_data_runs.py)."""
    stream = CHUNK + line * count + after + b"\n" + CHUNK + DONE
    raises = not after.startswith(b"data: {")
    assert sdk_raises(stream) is raises
    for read in (65_536, len(stream)):
        observer, outcome = observer_of("openai")
        _streamed(observer, stream, read)
        assert (outcome.error_type == STREAM_ERROR) is raises, read
