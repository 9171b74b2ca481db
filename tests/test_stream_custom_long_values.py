"""A custom pattern's value in a streamed reply, longer than the overlap the stream is read with. A streamed reply is read
a batch at a time (4,096 characters), each with the last 128 or so characters read before: a PEM private key (26
lines, 1,700 characters) that a batch's end cut was found in neither batch, where the same reply read whole was, so
its record said no `pii:private_key` came out. With a custom pattern configured, the custom patterns alone are read
again in windows of their own, each with the last `STREAM_VALUE_MAX` (4,096) characters read before: a value of theirs
up to that long is found streamed as whole, wherever the pieces were cut."""

from __future__ import annotations

import random
from typing import Any

import openai
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors, StreamScanner
from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED

# a PEM private key as it is written, whole; and its 64-character lines, 20 of them in a row
_PEM = r"-----BEGIN PRIVATE KEY-----\n(?:[0-9A-Za-z+/]{64}\n)+-----END PRIVATE KEY-----"
_LINES = r"(?:[0-9A-Za-z+/]{64}\n){20}"
PATTERNS = {"whole key": _PEM, "its lines": _LINES}
PROSE = "the weather is fine today, "
BOUND = 4096  # `detectors.STREAM_VALUE_MAX`: the longest custom value found streamed as whole, as README says


def _key(lines: int) -> str:
    """A PEM private key's shape: `lines` lines of 64 base64 characters."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = "".join(f"{(alphabet[n % 64 :] + alphabet[: n % 64])}\n" for n in range(lines))
    return "-----BEGIN PRIVATE KEY-----\n" + body + "-----END PRIVATE KEY-----"


def _streamed(scanner: StreamScanner, text: str, sizes: list[int]) -> set[str]:
    at = 0
    turn = 0
    while at < len(text):
        size = sizes[turn % len(sizes)]
        scanner.feed(text[at : at + size])
        at += size
        turn += 1
    scanner.end_text()
    return scanner.found


@pytest.mark.parametrize("builtins", [[], ["email"]], ids=["alone", "with email"])
@pytest.mark.parametrize("pattern", PATTERNS.values(), ids=list(PATTERNS))
def test_a_pem_key_streamed_in_any_pieces_is_found_as_whole(pattern: str, builtins: list[str]) -> None:
    """Before: with the key cut by a batch's end (3,000 characters of prose before it), in pieces of 3 characters
    none found; in pieces of 200, 1,000 or more neither."""
    detectors = Detectors([*map(DetectorSpec, builtins), DetectorSpec("private_key", pattern)])
    text = PROSE * 111 + "here it is:\n" + _key(26) + "\nkeep it safe. " + PROSE * 20
    assert detectors.scan_output(text) == {"pii:private_key"}
    for sizes in ([3], [7, 2, 5], [200], [1000], [130, 4000]):
        assert _streamed(detectors.stream(), text, sizes) == {"pii:private_key"}, sizes


def test_a_value_up_to_the_bound_is_found_wherever_the_stream_is_cut() -> None:
    """Values of a pattern of its own (no white space in them) of up to `BOUND` characters, glued to
    the text before them or not, at random places in random pieces: found streamed exactly when found whole."""
    detectors = Detectors([DetectorSpec("email"), DetectorSpec("secret", r"SECRET-[a-z]{3000,}")])
    pick = random.Random(2026_12_05)
    for _ in range(80):
        value = "SECRET-" + "q" * pick.randrange(2990, BOUND - 7 + 1)
        text = PROSE * pick.randrange(0, 400) + pick.choice(["", " ", "\n", "x"]) + value + " bye" * pick.randrange(30)
        sizes = [pick.choice([1, 3, 20, 129, 700, 5000]) for _ in range(5)]
        assert _streamed(detectors.stream(), text, sizes) == set(detectors.scan_output(text)), (len(text), sizes)


def test_the_limit_counts_what_is_read_for_custom_patterns_once() -> None:
    """Past the scan limit, the stream is `scan:truncated` and the rest read for no pattern."""
    detectors = Detectors([DetectorSpec("private_key", _PEM)], max_chars=3000)
    text = PROSE * 100 + _key(26)  # the key starts at 2,700
    assert _streamed(detectors.stream(), text, [50]) == {TRUNCATED} == set(detectors.scan_output(text))


def test_an_ordinary_stream_is_read_as_before() -> None:
    """Without a custom pattern, the scanner is the stream scanner itself: no work for patterns a chunk."""
    assert type(Detectors([DetectorSpec("email")]).stream()) is StreamScanner
    assert type(Detectors([DetectorSpec("private_key", _PEM)]).stream()) is not StreamScanner


CONFIG = (
    ONE_UPSTREAM
    + f"""
detectors: [email, {{name: private_key, pattern: '{_PEM}'}}]
telemetry:
  exporter: otlp
  endpoint: ${{OTLP}}
"""
)


def _events(deltas: list[str]) -> list[dict[str, Any]]:
    """A Responses reply streamed as `deltas`, as the server streams it."""
    text = "".join(deltas)
    done = {"id": "resp_pem", "object": "response", "created_at": 1_730_000_000, "model": SERVED,
            "status": "completed", "usage": {"input_tokens": 1, "output_tokens": len(deltas), "total_tokens": 0},
            "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}]}  # fmt: skip
    events: list[dict[str, Any]] = [{"type": "response.created", "response": {**done, "output": []}}]
    events += [{"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0,
                "delta": delta} for delta in deltas]  # fmt: skip
    return [*events, {"type": "response.completed", "response": done}]


def test_a_pem_key_streamed_a_few_characters_an_event_is_on_the_record(vllm: Any, make_proxy: Any, otlp: Any) -> None:
    """Through the proxy, the openai SDK reading the stream: the span's output labels are those of the text whole.
    Before: none."""
    server, upstream = vllm
    text = PROSE * 111 + "here it is:\n" + _key(26) + "\nkeep it safe."
    assert Detectors([DetectorSpec("private_key", _PEM)]).scan_output(text) == {"pii:private_key"}
    server.response_events = _events([text[at : at + 4] for at in range(0, len(text), 4)])
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
    with client.responses.with_streaming_response.create(model=SERVED, input="the key?", stream=True) as reply:
        trace_id = reply.headers["x-trace-id"]
        got = "".join(event.delta for event in reply.parse() if event.type == "response.output_text.delta")
    assert got == text
    span = otlp.by_trace(trace_id)
    assert list(span.attributes["lineage.output.labels"]) == ["pii:private_key"]
