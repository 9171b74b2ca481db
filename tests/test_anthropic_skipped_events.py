"""An Anthropic stream's events its SDK skips (anthropic 2.17.0, `Stream.__stream__`): one named none (no `event:` line,
`event:` with no value, or a name a byte order mark hides: `\ufeffevent` is a field it ignores) and one named `ping`,
whatever its data, and a named one without data. Its stop reason, token counts and `message_stop` are none its client
has, and a named event without data is no error; the data is read for its labels all the same, as it passed. Until
2026-12-05 an unnamed `message_delta`'s stop reason was recorded, an unnamed `message_stop` ended the stream (the
client's body ending there), and `event: message_delta` with no data was `upstream_error` (review revstreams). Driven
with the real SDK through the proxy, and the observer at many read sizes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from proxy.detectors import TRUNCATED
from tests.event_streams import sse
from tests.test_anthropic_error_by_name_alone import START, anthropic_call
from tests.test_anthropic_parsed_events import anthropic_sdk_raises
from tests.test_scan_cost import _streamed
from tests.test_sse_bom_as_the_sdks_read_it import BOM
from tests.test_sse_sdk_remaining_cases import EVENT, STOP
from tests.test_sse_unended_last_event_as_the_sdk_reads_it import REASONS
from tests.test_stream_close_delimited_cut import span_of
from tests.test_tiny_sse_lines import observer_of
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

DELTA = {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 7}}
NAMED = sse(DELTA, "message_delta")
UNNAMED = sse(DELTA)
UNNAMED_STOP = sse({"type": "message_stop"})
PRETTY = b"data: " + orjson.dumps(DELTA, option=orjson.OPT_INDENT_2).replace(b"\n", b"\ndata: ") + b"\n\n"

# (a stream, then the stop reason and output tokens its client has; every one ends with a named `message_stop`)
STREAMS = [
    (START + NAMED + STOP, ("max_tokens",), 7),
    (START + UNNAMED + STOP, (), 1),
    (START + PRETTY + STOP, (), 1),  # (over many `data:` lines)
    (START + b"event:\n" + UNNAMED + STOP, (), 1),
    (START + b"event: ping\n" + UNNAMED + STOP, (), 1),
    (START + BOM + NAMED + STOP, (), 1),  # (`\ufeffevent: message_delta`: unnamed)
    (START + UNNAMED[:-1] + b"event: message_delta\n\n" + STOP, ("max_tokens",), 7),  # (named after its data)
    (START + b"event: message_delta\n\n" + STOP, (), 1),  # (no data: skipped, no error)
    (START + b"event: message_delta\ndata: \n\n" + STOP, (), 1),
    # (data without a `type`: 2.17.0 gives it type None, not its name's; its stop reason recorded until 2026-12-05)
    (START + b"event: message_delta\n" + sse({k: v for k, v in DELTA.items() if k != "type"}) + STOP, (), 1),
]


@pytest.mark.parametrize(("stream", "reasons", "tokens"), STREAMS)
def test_an_event_the_anthropic_sdk_skips_gives_nothing(stream: bytes, reasons: Any, tokens: int) -> None:
    assert anthropic_sdk_raises(stream) is False
    for read in (1, 2, 3, 7, 13, 64, len(stream)):
        observer, outcome = observer_of("anthropic")
        for at in range(0, len(stream), read):
            observer.chunk(stream[at : at + read])
        assert observer.cut_short() is False, read
        observer.finish()
        assert (outcome.finish_reasons, outcome.output_tokens, outcome.error_type) == (reasons, tokens, None), read


@pytest.mark.parametrize("read", [1, 5, 10_000])
def test_an_unnamed_message_stop_is_not_the_streams_end(read: int) -> None:
    """Its client reads on to the named one: ended early without it (`upstream_incomplete`, or `upstream_reset`)."""
    for stream, ended in ((START + UNNAMED_STOP, False), (START + UNNAMED_STOP + STOP, True)):
        observer, _ = observer_of("anthropic")
        for at in range(0, len(stream), read):
            observer.chunk(stream[at : at + read])
        assert (observer.ended, observer.unfinished()) == (ended, not ended)


@pytest.mark.parametrize(
    ("stream", "reasons"),
    [
        (START + UNNAMED + STOP, None),
        (START + BOM + NAMED + STOP, None),
        (START + b"event: message_delta\n\n" + NAMED + STOP, ["max_tokens"]),
        (START + UNNAMED_STOP + EVENT + NAMED + STOP, ["max_tokens"]),  # (a piece a line: not cut at the unnamed)
    ],
)
def test_through_the_real_anthropic_sdk(setup_for: Any, stream: bytes, reasons: Any) -> None:  # noqa: F811
    """The real SDK gives no `message_delta` it skipped, raises nothing and ends at the named `message_stop`; the span
    has the stop reason and token counts it gave, and no error. A BOM's line is still labelled `scan:truncated`."""
    setup = setup_for()
    setup.upstream.reply = Reply([line + b"\n" for line in stream.split(b"\n")[:-1]], content_type="text/event-stream")
    types, raised, span = anthropic_call(setup)
    assert raised is None
    assert types[-1] == "message_stop" and ("message_delta" in types) is (reasons is not None)
    assert span.attributes.get("error.type") is None
    assert span.attributes.get(REASONS) == reasons
    assert span.attributes.get("gen_ai.usage.output_tokens") == (7 if reasons else 1)
    assert (TRUNCATED in span.attributes["lineage.output.labels"]) is (BOM in stream)


CACHED = {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 7,
          "input_tokens": 2, "cache_read_input_tokens": 100}}  # fmt: skip
CACHED_ALONE = {"type": "message_delta", "delta": {}, "usage": {"cache_creation_input_tokens": 100}}
LATER = sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9,
             "input_tokens": 5}}, "message_delta")  # fmt: skip


@pytest.mark.parametrize(
    "skipped",
    [sse(CACHED), sse(CACHED, "ping"), sse(CACHED_ALONE), b"event:\n" + sse(CACHED_ALONE)],
    ids=["unnamed", "ping", "cache-alone", "named-none"],
)
def test_a_skipped_events_cached_tokens_are_none(setup_for: Any, skipped: bytes) -> None:  # noqa: F811
    """The prompt tokens read from or written to the cache that a skipped event gives are not added to a later event's
    `input_tokens` (review revstreams' find in helper streams' 8eb7b43: its stop reason and counts were undone, but
    the cached ones it gave were kept, and the next event's 5 input tokens recorded as 105)."""
    stream = START + skipped + LATER + STOP
    assert anthropic_sdk_raises(stream) is False
    for read in (1, 2, 7, 64, len(stream)):
        observer, outcome = observer_of("anthropic")
        _streamed(observer, stream, read)
        assert (outcome.input_tokens, outcome.output_tokens, outcome.finish_reasons) == (5, 9, ("end_turn",)), read
    setup = setup_for()
    setup.upstream.reply = Reply([stream], content_type="text/event-stream")
    types, raised, span = anthropic_call(setup)
    assert raised is None and types.count("message_delta") == 1
    assert span.attributes.get("gen_ai.usage.input_tokens") == 5


def test_a_skipped_message_starts_model_and_id_are_none() -> None:
    """The model and id a skipped `message_start` names first are none its client has (the README says so since review
    revstreams); a named one's after it are recorded."""
    named = START[: START.index(b"\n\n") + 2]
    unnamed = named[named.index(b"data:") :]
    later = named.replace(b'"m"', b'"m2"').replace(b'"msg_1"', b'"msg_2"')
    for stream, record in ((unnamed + EVENT + STOP, (None, None)), (unnamed + later + EVENT + STOP, ("m2", "msg_2"))):
        for read in (1, 7, len(stream)):
            observer, outcome = observer_of("anthropic")
            _streamed(observer, stream, read)
            assert (outcome.response_model, outcome.response_id) == record, read


CHECKPOINT = ("gen_ai.response.model", "lineage.checkpoint", "lineage.checkpoint.source")


def _checkpoint_of(setup: Any, pieces: list[bytes]) -> tuple[Any, ...]:
    """A Messages stream through the proxy, its first piece taken by the client before the upstream sends the rest (so
    the proxy reads it alone): the span's response model and checkpoint."""
    gate = asyncio.Event()
    setup.upstream.reply = Reply(pieces, content_type="text/event-stream", gate=gate)
    body = {"model": "q", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    got = b""
    with httpx.stream("POST", f"{setup.proxy.url}/v1/messages", json=body, timeout=30) as response:
        chunks = response.iter_raw()
        while len(got) < len(pieces[0]):
            got += next(chunks)
        setup.loop_thread.loop.call_soon_threadsafe(gate.set)
        got += b"".join(chunks)
    assert got == b"".join(pieces)
    attributes = span_of(setup, response.headers["x-trace-id"]).attributes
    return tuple(attributes.get(key) for key in CHECKPOINT)


def test_a_skipped_message_starts_model_names_no_checkpoint_at_any_cut(setup_for: Any) -> None:  # noqa: F811
    """An unnamed `message_start` naming a model the upstream's metadata does not know: the SDK skips it, and the
    record's checkpoint is the same however the reads cut it (review revstreams' `repro_checkpoint_cut`: cut before its
    blank line, the proxy took the checkpoint from its model, `claude-x` with source `response`, before undoing the
    model at the blank line); a named one names it at any cut."""
    setup = setup_for()
    named = START[: START.index(b"\n\n") + 2].replace(b'"m"', b'"claude-x"')
    unnamed = named[named.index(b"data:") :]
    for start in (unnamed, named):
        whole = _checkpoint_of(setup, [start + EVENT, STOP])
        assert (whole[0] == "claude-x") is (start is named)
        assert _checkpoint_of(setup, [start[:-1], b"\n" + EVENT + STOP]) == whole, start
        assert _checkpoint_of(setup, [start[:-2], b"\n\n" + EVENT + STOP]) == whole, start
