"""Past where the observer stops reading (a line past `MAX_LINE`), `data: [DONE]` inside a line that a read begins at
(helper revsse3). The rest of the reply is decoded a read at a time as the openai SDK decodes its lines
(`_late_utf8`), up to the blank line after a `[DONE]` line, where the SDK stops; `^` in the search for that line
matched at every read's start, so a read beginning inside a comment with `data: [DONE]`, then a blank line, stopped the
check, and a line that is no UTF-8 after it passed as a success where the SDK's decode raised."""

from __future__ import annotations

import pytest

from proxy.protocols import STREAM_ERROR
from proxy.protocols.sse import MAX_LINE
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, DONE
from tests.test_sse_sdk_remaining_cases import _sdk_raises
from tests.test_tiny_sse_lines import observer_of

READ = 65_536
HEAD = CHUNK + b": "
FILL = b"x" * (((MAX_LINE + 300_000) // READ + 1) * READ - len(HEAD))  # (the next byte begins a read)
HEAD_LF = CHUNK + b": " + b"x" * (len(FILL) - 1) + b"\n"  # (the same, a line end before it)

STREAMS = [
    (HEAD + FILL + b"data: [DONE]\n\n\xff\n\n" + DONE, True),  # (inside the comment: no `[DONE]` to the SDK)
    (HEAD_LF + b"data: [DONE]\n\n\xff\n\n", False),  # (a line of its own: the SDK stops)
]


@pytest.mark.parametrize(("stream", "raises"), STREAMS)
def test_done_inside_a_line_at_a_reads_start_is_no_end(stream: bytes, raises: bool) -> None:
    assert _sdk_raises(stream) is raises
    observer, outcome = observer_of("openai")
    for at in range(0, len(stream), READ):
        observer.chunk(stream[at : at + READ])
    observer.finish()
    assert (outcome.error_type == STREAM_ERROR) is raises
