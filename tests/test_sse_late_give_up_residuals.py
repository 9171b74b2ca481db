"""Records against the openai SDK's decoder past `[DONE]`, the give-up fuzz's residuals (review revstreams3's
fuzz_giveup, helper streams5)."""

from __future__ import annotations

from tests.test_sse_events_as_the_sdk_reads_them import CHUNK
from tests.test_tiny_sse_lines import observer_of


def test_counts_past_done_stay_off_the_record_after_an_event_no_json() -> None:
    """Past `[DONE]` (where the openai SDK stops), an event that gave token counts, then a pretty event whose data is no
    JSON, ended by its blank line: the counts are none the SDK had. Until 2026-12-06 that event's end dropped what was
    kept to be undone (`_dispatch`), and the counts stood (the give-up fuzz's seed 110, no line past `MAX_LINE` in it)."""
    usage = b'data: {"id": "c1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 6}}\n\n'
    stream = CHUNK + b"data: [DONE]x\n\n" + usage + b'data: {\ndata:  "usage": {\ndata: "a": }\n\n' + usage[:-1]
    for read in (12, len(stream)):
        observer, outcome = observer_of("openai")
        observer.chunk(stream[:read])
        observer.chunk(stream[read:])
        observer.finish()
        assert (outcome.input_tokens, outcome.output_tokens) == (None, None), read
