"""Past where the observer stops reading a stream (a line past `MAX_LINE`), an event's data is judged by whether a JSON
text may begin with it (`_json_may_begin`): a pretty-printed event with one line of many numbers whole in a read was
parsed by Python's json in full, an object built a number (~23 ms of the event loop a MiB, a read at a time). Runs of
numbers are now read as two (`_fewer_numbers`, checked by orjson), with the same decisions, each checked against the
real SDKs' decoders (helper streams6)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.protocols.sse import MAX_LINE
from tests.test_anthropic_error_by_name_alone import START
from tests.test_anthropic_parsed_events import anthropic_sdk_raises
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, DONE
from tests.test_sse_sdk_leftovers import sdk_fails
from tests.test_sse_sdk_remaining_cases import STOP
from tests.test_tiny_sse_lines import observer_of

# (a pretty event past `MAX_LINE`, an object to both SDKs: the reading stops there)
STOPPED = b'data: {\ndata: "type": "ping",\ndata: "p": "' + b"x" * (MAX_LINE + 10) + b'"\ndata: }\n\n'
RUN = b"1," * 600_000  # (1.2 MB of numbers)
HALF = RUN[:600_000]
FLOATS = b"-0.0123456, " * 100_000  # (an embedding's or log probabilities' numbers: signs, points, exponents)


def _stream(kind: str, line: bytes) -> bytes:
    pretty = b"data: {\n" + line + b"\ndata: }\n\n"
    if kind == "openai":
        return CHUNK + STOPPED + pretty + DONE
    return START + b"event: ping\n" + STOPPED + b"event: content_block_delta\n" + pretty + STOP


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of each text Python's json parsed (compiled modules look `json.loads` up at each call)."""
    sizes: list[int] = []
    loads = json.loads

    def counted(text: Any, **kw: Any) -> Any:
        sizes.append(len(text))
        return loads(text, **kw)

    monkeypatch.setattr(json, "loads", counted)
    return sizes


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("line", "raises", "bounded"),  # (not bounded: a run no JSON, parsed to where it fails, as before)
    [
        (b'data:  "p": [' + RUN + b"1]", False, True),
        (b'data:  "p": [' + RUN.replace(b",", b", ") + b"1]", False, True),  # (`json.dumps`'s separators)
        (b'data:  "p": "' + RUN + b'"', False, True),  # (in a string)
        (b'data:  "p": [' + RUN + b"01]", True, True),  # (a number that begins `0` then more, at the run's end)
        (b'data:  "p": [' + HALF + b"01," + HALF + b"1]", True, False),  # (so, in the run)
        (b'data:  "p": [' + HALF + b"1 1," + HALF + b"1]", True, False),  # (no comma between)
        (b'data:  "p": [' + HALF + b"1,," + HALF + b"1]", True, False),
        (b'data:  "p": 1, ' + RUN + b"1", True, True),  # (numbers where a key goes)
        (b'data:  "p": [' + RUN + b"1]x", True, True),
        (b'data:  "p": [' + FLOATS + b"1]", False, True),  # (review revstreams6: floats end no run)
        (b'data:  "p": [' + b"1.5e-05," * 150_000 + b"-2E+3]", False, True),
        (b'data:  "p": [' + FLOATS + b"1e400, " + FLOATS + b"1]", False, False),  # (Python reads it, orjson not)
        (b'data:  "p": [' + FLOATS + b"1., " + FLOATS + b"1]", True, False),  # (a point, no digit after it)
    ],
    ids=[
        "array",
        "spaced",
        "string",
        "zero-first-last",
        "zero-first",
        "no-comma",
        "two-commas",
        "keys",
        "then-x",
        "floats",
        "exponents",
        "past-double",
        "point-last",
    ],
)
def test_a_late_run_of_numbers_is_judged_as_the_sdk_reads_it_in_bounded_parses(
    parsed: list[int], kind: str, line: bytes, raises: bool, bounded: bool
) -> None:
    """The event whole in a read, the record is the SDK's; where its runs are numbers, Python's json parses under 64 KiB
    and a few bytes of its data (before 2026-12-06: all of it, 1.2 MB, in one parse)."""
    stream = _stream(kind, line)
    assert (sdk_fails([stream]) if kind == "openai" else anthropic_sdk_raises(stream, True)) is raises
    observer, outcome = observer_of(kind)
    head = stream.index(b"data: {\n" + line[:20])  # (the numbers' event, whole in the last read)
    for at in range(0, head, 1 << 20):  # (the long line in pieces: the reading stops at it)
        observer.chunk(stream[at : min(at + (1 << 20), head)])
    assert observer._partial is None
    parsed.clear()
    observer.chunk(stream[head:])
    observer.finish()
    assert outcome.error_type == ("upstream_error" if raises else None)
    assert (max(parsed, default=0) < 70_000) is bounded
