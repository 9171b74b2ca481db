"""Past where the observer stops reading a stream (a line past `MAX_LINE`), the record against the openai and Anthropic
SDKs' decoders: the give-up fuzz's residuals (review revstreams3's fuzz_giveup, 17 openai and 13 Anthropic streams of
1,000 recorded otherwise than their SDK read them, helper streams5): data that no JSON text begins so, a string a long
line ends in, a stop at a line in a read with a later event open at its end, an error held in an event never dispatched.
Each is checked against the real SDK's decoder, and each has its counterpart that the SDK reads on at, which must not be
an error on the record."""

from __future__ import annotations

import pytest

from proxy.protocols.sse import MAX_LINE
from tests.test_anthropic_error_by_name_alone import START
from tests.test_anthropic_parsed_events import anthropic_sdk_raises
from tests.test_scan_cost import _streamed
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, DONE
from tests.test_sse_sdk_leftovers import sdk_fails
from tests.test_sse_sdk_remaining_cases import STOP
from tests.test_tiny_sse_lines import observer_of

LONG = MAX_LINE + 100_000  # (bytes of a line past `MAX_LINE`, and past what is kept of one)


def _sdk_raises(kind: str, stream: bytes) -> bool:
    return sdk_fails([stream]) if kind == "openai" else anthropic_sdk_raises(stream, True)


def _pretty(kind: str, line: bytes) -> bytes:
    """A stream holding a pretty-printed event (an object a line at a time) with `line` (a `data` line, its line end
    too) after its second line."""
    pretty = b'data: {\ndata:  "type": "content_block_delta",\n' + line + b'data:  "index": 0\ndata: }\n\n'
    if kind == "openai":
        return CHUNK + pretty + DONE
    return START + b"event: content_block_delta\n" + pretty + STOP


def _records(kind: str, stream: bytes, reads: tuple[int, ...]) -> list[str | None]:
    errors = []
    for read in reads:
        observer, outcome = observer_of(kind)
        _streamed(observer, stream, read)
        errors.append(outcome.error_type)
    return errors


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("value", "raises"),
    [
        (b"[" + b"1," * (LONG // 2) + b"1]", True),  # (an array where a key goes)
        (b'"p": [' + b"1," * (LONG // 2) + b"1],", False),
        (b'"p": tru' + b"e" * LONG, True),  # (`true`, then more: no token)
        (b'"p": [' + b'"x", ' * (LONG // 5) + b'"x"],', False),  # (strings: their quotes even)
        (b'"p": "' + b"x" * LONG + b'",', False),
        (b'"p": 1' + b"0" * LONG + b".5,", False),  # (its integer part past the digits `int` reads: not told, no raise)
        (b'"p": "' + b"x" * LONG, True),  # (a string the line ends in)
        (b'"p": "' + b'x\\"' * (LONG // 3) + b"\\\\" + b'",', False),  # (escaped quotes, an escaped backslash)
        (b'"p": "' + b'x\\"' * (LONG // 3) + b'\\",', True),  # (its last quote escaped: the line ends in the string)
    ],
    ids=[
        "array-for-key",
        "array",
        "true-then-more",
        "strings",
        "string",
        "long-float",
        "string-unended",
        "escapes",
        "escaped-quote",
    ],
)
def test_a_long_line_in_a_pretty_event_is_judged_by_what_json_can_begin(kind: str, value: bytes, raises: bool) -> None:
    """A pretty-printed event, a `data` line past `MAX_LINE` in it (past what is kept of a line too: its first bytes, and
    its quotes not escaped counted): the SDK raises where no JSON text begins as its data does (a token where none can
    go, `[` for a key, `truee`), and where the long line ends in a string (a line end in a string, or the data's end);
    it reads on at any other, whatever the line holds. Until 2026-12-06 the data was judged by its first byte and by lines
    no token begins: each of these the SDK raises at was read on (helper streams5; the fuzz's `data: {"type": "ping",
    "a": "xxx...`)."""
    stream = _pretty(kind, b"data: " + value + b"\n")
    assert _sdk_raises(kind, stream) is raises
    assert _records(kind, stream, (65_536, len(stream))) == ["upstream_error" if raises else None] * 2


def test_anthropic_done_that_begins_a_long_line_is_no_json() -> None:
    """An Anthropic event named, its data `[DONE]` and a value past `MAX_LINE`: no JSON to its SDK's `json.loads`, which
    raises; until 2026-12-06 read on, judged by its first byte (`[`: an array may begin so)."""
    stream = START + b"event: content_block_delta\ndata: [DONE]" + b"x" * LONG + b"\n\n" + STOP
    assert anthropic_sdk_raises(stream)
    assert _records("anthropic", stream, (65_536, len(stream))) == ["upstream_error"] * 2


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("tail", [b"", b'data:  "q": 1\n'], ids=["last", "then-a-line"])
def test_a_stop_at_a_line_in_a_read_is_judged_by_its_own_event(kind: str, tail: bytes) -> None:
    """The reading stops at a line of a read (a pretty event's data past `MAX_LINE` at a whole line), a later event open
    at the read's end (`[DONE]`'s, an Anthropic `message_stop`'s): the event stopped in is judged as its SDK judges it,
    not as the decoder's state at the read's end says (`[DONE]`, or an object alone). Until 2026-12-06 the stream read in
    one piece stopped cleanly at `[DONE]`, where the SDK raises at the data (`x...` after `"delta": {`; /tmp/s47/
    streams4/residual_pretty_long.py). The same event with a long string value, which the SDK reads on at, is none."""
    line = b"data: " + b"x" * (MAX_LINE + 10) + b"\n" + tail
    stream = _pretty(kind, line)[:-1]  # (the last event open at the read's end)
    assert _sdk_raises(kind, stream)
    assert _records(kind, stream, (65_536, len(stream))) == ["upstream_error"] * 2
    valid = _pretty(kind, b'data: "p": "' + b"x" * (MAX_LINE + 10) + b'",\n' + tail.replace(b"1", b"1,"))[:-1]
    assert not _sdk_raises(kind, valid)
    assert _records(kind, valid, (65_536, len(valid))) == [None, None]


@pytest.mark.parametrize("bom", [b"\xef\xbb\xbf", b""], ids=["bom", "none"])
@pytest.mark.parametrize("end", [b"", b"\n"], ids=["no-blank-line", "blank-line"])
def test_an_error_held_in_the_event_stopped_in_is_the_sdks_only_once_dispatched(bom: bytes, end: bytes) -> None:
    """An openai event whose data is no JSON so far (` "id": ...,` after a byte order mark, which makes `data: {` a field
    the SDK ignores; `x`), then a `retry` line past `MAX_LINE`: the SDK raises only where a blank line dispatches the
    event. Until 2026-12-06 the error held till that line stood once the reading stopped, the body ending without it
    (the fuzz's BOM-led bodies ending in a long `retry:` line, helper streams5)."""
    first = b'data: {\ndata:  "id": "c1",\n' if bom else b"data: x\n"
    stream = bom + first + b"retry: " + b"x" * LONG + b"\n" + end
    assert sdk_fails([stream]) is bool(end)
    assert _records("openai", stream, (65_536, len(stream))) == ["upstream_error" if end else None] * 2


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


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("lines", [3, 20], ids=["few-lines", "many-lines"])
def test_a_line_ending_in_a_string_in_an_event_of_many_lines_in_one_read(kind: str, lines: int) -> None:
    """Past where the reading stops, a pretty-printed event whole in one read, a line in it past what is kept of an
    event's data (`_MOST_TAIL`) ending in a string: no JSON, which the SDK raises at, however many lines the event has.
    Until review revstreams5, one of 16 lines or more (read in C, `_LateEvents._bulk`) was not judged so and read on
    where one of fewer was `upstream_error`; the same event with the string ended is none either way. The string closed
    on the next line (`y",`) is no JSON too (a line end in a string): until the reread of 2026-12-06 one of 16 lines or
    more was judged at its last line (`_bulk`), its quotes then even, and read on."""
    keys = b"".join(b'data:  "k%d": 1,\n' % i for i in range(lines))
    stop = b'data: {"p": "' + b"x" * LONG + b'"}\n\n'  # (the reading stops in it: the SDK reads on at it)
    head = CHUNK if kind == "openai" else START + b"event: content_block_delta\n"
    name = b"" if kind == "openai" else b"event: content_block_delta\n"
    for end, raises in ((b"\n", True), (b'\ndata: y",\n', True), (b'",\n', False)):
        event = name + b"data: {\n" + keys + b'data:  "q": "' + b"y" * 70_000 + end + b'data:  "z": 1\ndata: }\n\n'
        stream = head + stop + event + (DONE if kind == "openai" else STOP)
        assert _sdk_raises(kind, stream) is raises
        observer, outcome = observer_of(kind)
        for piece in (stream[: len(head) + MAX_LINE + 50], stream[len(head) + MAX_LINE + 50 : len(head) + len(stop)]):
            observer.chunk(piece)
        assert observer._partial is None  # (the reading stopped)
        observer.chunk(stream[len(head) + len(stop) :])  # (the event whole in this read)
        observer.finish()
        assert outcome.error_type == ("upstream_error" if raises else None)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_kept_data_nested_deeper_than_the_sdk_parses_is_no_json(kind: str) -> None:
    """Past where the reading stops, an event whose data is past what is kept of it (`_MOST_TAIL`), nested deeper in
    what is kept than Python's `json.loads` (the SDKs') parses: it raises `RecursionError` whatever follows, as it does
    at such data kept whole, which is `upstream_error`. Until review revstreams5 `_json_may_begin` took the
    `RecursionError` for not told, and the stream passed as a success."""
    stop = b'data: {"p": "' + b"x" * LONG + b'"}\n\n'  # (the reading stops in it: the SDK reads on at it)
    head = CHUNK if kind == "openai" else START + b"event: content_block_delta\n"
    name = b"" if kind == "openai" else b"event: content_block_delta\n"
    event = name + b'data: {"a": ' + b"[" * 70_000 + b"]" * 70_000 + b"}\n\n"
    stream = head + stop + event + (DONE if kind == "openai" else STOP)
    with pytest.raises(RecursionError):
        _sdk_raises(kind, stream)
    observer, outcome = observer_of(kind)
    observer.chunk(stream[: len(head) + MAX_LINE + 50])
    assert observer._partial is None  # (the reading stopped)
    observer.chunk(stream[len(head) + MAX_LINE + 50 :])  # (the event whole in this read)
    observer.finish()
    assert outcome.error_type == "upstream_error"


@pytest.mark.parametrize(("tail", "raises"), [(b"data: [DONE]\n\n", False), (b"", True)], ids=["done-first", "none"])
def test_a_byte_no_utf8_in_the_last_line_of_the_read_stopped_in_is_read_as_the_sdk_reads_it(
    tail: bytes, raises: bool
) -> None:
    """The reading stops at a line of a read (a pretty event's data past `MAX_LINE`, whole), the read's last line not
    yet whole holding a byte that is no UTF-8: the openai SDK decodes it only where it reads that far, not past
    `[DONE]` before it. Until review revstreams5 `_give_up` read that line from the decoder's state at the read's end
    before the read was read again, and it was `upstream_error` either way."""
    event = b'data: {\ndata:  "p": "' + b"x" * (MAX_LINE + 10) + b'"\ndata: }\n\n'
    stream = CHUNK + event + tail + b"\xff"
    assert sdk_fails([stream]) is raises
    observer, outcome = observer_of("openai")
    observer.chunk(CHUNK)
    observer.chunk(stream[len(CHUNK) :])  # (the stop at a whole line of this read)
    assert observer._partial is None
    observer.finish()
    assert outcome.error_type == ("upstream_error" if raises else None)
