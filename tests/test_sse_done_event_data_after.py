"""`data: [DONE]`, then more `data:` lines in its event (helper revsse3): the openai SDK's decoder joins them, the data
begins `[DONE]`, and `Stream.__stream__` stops there without parsing it; the observer read each line after the first as
an event of its own, and one that is no JSON (`x`, an error object, and since 2026-12-05 `\\x0b`, which `bytes.strip()`
dropped before) was the upstream's error at the event's blank line: `upstream_error` where the SDK passed."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.protocols import STREAM_ERROR
from tests.test_scan_cost import _streamed
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, ERROR, through_sdk
from tests.test_sse_sdk_remaining_cases import _sdk_raises
from tests.test_tiny_sse_lines import observer_of
from tests.test_unsized_replies_output import setup_for  # noqa: F401  # (a fixture)

# (a stream, whether the openai SDK raises at it)
STREAMS = [
    (CHUNK + b"data: [DONE]\ndata: x\n\n", False),
    (CHUNK + b"data: [DONE]\ndata: \x0b\n\n", False),
    (CHUNK + b"data: [DONE]\x0b\ndata: \xc3\xa9\n\n", False),
    (CHUNK + b"data: [DONE]\n" + ERROR + b"\n\n", False),
    (CHUNK + b"data: [DONE]\ndata: {\ndata: x\n\n", False),
    (CHUNK + b"data: x\ndata: [DONE]\n\n", True),  # (`x\n[DONE]`: no `[DONE]` to the SDK)
    (CHUNK + b"data: [DONE]\ndata: x\n\xff\n\n", True),  # (its lines are decoded before the blank line)
]


@pytest.mark.parametrize(("stream", "raises"), STREAMS)
def test_data_after_done_in_its_event_is_not_the_upstreams_error(stream: bytes, raises: bool) -> None:
    assert _sdk_raises(stream) is raises
    for read in (len(stream), 1, 2, 7):
        observer, outcome = observer_of("openai")
        _streamed(observer, stream, read)
        assert (outcome.error_type == STREAM_ERROR) is raises, read


def test_data_after_done_through_the_sdk(setup_for: Any) -> None:  # noqa: F811
    """Through the proxy to the real openai SDK: it gives the chunk and stops, and the record says so."""
    chunks, raised, span = through_sdk(setup_for(), STREAMS[0][0], split=False)
    assert (chunks, raised) == (1, "")
    assert span.attributes.get("error.type") is None
