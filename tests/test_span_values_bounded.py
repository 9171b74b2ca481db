"""Every string a span carries that a caller or an upstream chose is at most 16 KiB of UTF-8, whatever the span's
size. Jaeger's Badger store (and its Cassandra one) writes each tag's value into an index key and refuses a key over
65,000 bytes: "Key with size N exceeded 65000 limit" (jaegertracing/jaeger#3330), and the whole span is lost. Values
were cut only past the span's 1 MiB bound: a model named with 100 KiB (the reply's model too, as the upstream echoes
it), stop sequences of tens of KiB, a captured prompt of 100 KiB went into the span whole, and Jaeger dropped the call
from the traces. Each is now cut between two characters, with a marker saying how many characters were left out; an
array's items together to 8 KiB (Jaeger stores an array as its JSON, where a character may take six bytes)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from proxy.detectors import CAPTURE_MAX_CHARS, NOT_CAPTURED_PAST_BOUND
from tests.harness import ProxyHandle
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import VllmLike

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: u, url: "${UPSTREAM}", protocol: openai, checkpoint: org/w}]
routes: [{model: "*", upstream: u, purposes: [assistant]}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: otlp, endpoint: "http://127.0.0.1:${OTLP}", capture_content: true}
lineage: {store: null}
"""
VALUE_MAX = 16 * 1024
JAEGER_KEY_MAX = 65_000
HI = [{"role": "user", "content": "hi"}]
MARK = re.compile(r"\.\.\.\[([\d,]+) characters cut\]$")


def _left_out(value: str) -> int:
    found = MARK.search(value)
    assert found is not None, value[-80:]
    return int(found.group(1).replace(",", ""))


def _post(proxy: ProxyHandle, otlp: OtlpReceiver, body: dict[str, Any]) -> dict[str, Any]:
    sent = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=30)
    assert sent.status_code == 200, sent.text
    span = otlp.by_trace(sent.headers["x-trace-id"])
    assert "lineage.span.cut" not in span.attributes  # far under 1 MiB: cut value by value, not as a span over it
    for key, value in span.attributes.items():
        if isinstance(value, str):
            assert len(value.encode()) <= VALUE_MAX, key
        elif isinstance(value, list):
            assert len(json.dumps(value).encode()) < JAEGER_KEY_MAX, key
    return span.attributes


@pytest.mark.parametrize("name", ["m" * 100_000, "\u00e9" * 30_000, "\U0001f600" * 5_000])
def test_a_long_model_name_is_cut_in_the_request_and_response_model(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver, name: str
) -> None:
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=str(otlp.port))
    a = _post(proxy, otlp, {"model": name, "messages": HI})
    for key in ("gen_ai.request.model", "gen_ai.response.model"):  # the caller's, and the upstream's echo of it
        value = a[key]
        kept = MARK.sub("", value)
        assert name.startswith(kept) and len(kept) > 1000, key  # its start, whole characters
        assert len(kept) + _left_out(value) == len(name), key
    plain = _post(proxy, otlp, {"model": "m" * 4000, "messages": HI})  # within the bound: whole
    assert plain["gen_ai.request.model"] == "m" * 4000


def test_long_stop_sequences_are_cut_together(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=str(otlp.port))
    # 40 KiB of control characters: 240 KB as the JSON Jaeger makes of an array
    stops = ["\x01" * 10_000, "<" * 10_000, "s" * 10_000, "t" * 10_000]
    a = _post(proxy, otlp, {"model": "m", "messages": HI, "stop": stops})
    kept = a["gen_ai.request.stop_sequences"]
    assert len(kept) == 4 and sum(len(item.encode()) for item in kept) <= VALUE_MAX // 2
    for item, stop in zip(kept, stops, strict=True):
        assert stop.startswith(MARK.sub("", item)) and len(MARK.sub("", item)) + _left_out(item) == len(stop)
    many = _post(proxy, otlp, {"model": "m", "messages": HI, "stop": [str(i) for i in range(5000)]})
    assert many["gen_ai.request.stop_sequences"][-1] == f"[{5000 - 64:,} more items cut]"
    short = _post(proxy, otlp, {"model": "m", "messages": HI, "stop": ["###", "\n\n"]})
    assert short["gen_ai.request.stop_sequences"] == ["###", "\n\n"]  # as sent


def test_captured_content_is_cut_to_the_bound_and_stays_the_schemas_json(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=str(otlp.port))
    messages = [{"role": "user", "content": "a" * 60_000}, {"role": "user", "content": "\u00e9" * 40_000}]
    a = _post(proxy, otlp, {"model": "m", "messages": messages})
    captured = json.loads(a["gen_ai.input.messages"])  # JSON still, cut as texts
    texts = [part["content"] for part in captured[0]["parts"]]
    assert len(texts) == 1 and texts[0].startswith("a" * 10_000)
    # the call's first CAPTURE_MAX_CHARS characters are masked, the text they run out in cut 320 characters before
    # (where a value may have been cut in two) and marked, nothing after it masked; what the span cuts of that is
    # counted from the call's characters, 100,000: before 2026-12-04 it said 65,262, what was captured
    captured_chars = 60_000 + (CAPTURE_MAX_CHARS - 60_000 - 320) + len(NOT_CAPTURED_PAST_BOUND)
    assert len(MARK.sub("", texts[0])) + _left_out(texts[0]) == 100_000 > captured_chars
    # so is the output's: the reply echoes a prompt of 100,000 characters after its six words
    b = _post(proxy, otlp, {"model": "m", "messages": [{"role": "user", "content": "a" * 100_000}]})
    (reply,) = json.loads(b["gen_ai.output.messages"])[0]["parts"]
    assert reply["content"].startswith("w0 w1 w2 w3 w4 w5 echo: aaa")
    assert (
        len(MARK.sub("", reply["content"])) + _left_out(reply["content"]) == len("w0 w1 w2 w3 w4 w5 echo: ") + 100_000
    )


def test_a_streamed_output_s_cut_counts_from_all_its_characters(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    """A streamed reply past the capture bound, a word an event: what the span says it cut counts from every
    character of the output. Before 2026-12-04 the count stopped at the event the bound fell in (65,539 of a
    93,898-character reply), the events after it not counted."""
    server, upstream = vllm
    server.reply_words = 15_000
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=str(otlp.port))
    body = {"model": "m", "messages": HI, "stream": True}
    with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body, timeout=30) as sent:
        assert sent.status_code == 200
        events = sent.read().count(b"data: ")
        trace = sent.headers["x-trace-id"]
    assert events > 15_000
    reply = " ".join([f"w{i}" for i in range(15_000)] + ["echo:", "hi"])
    assert len(reply) > CAPTURE_MAX_CHARS
    (part,) = json.loads(otlp.by_trace(trace).attributes["gen_ai.output.messages"])[0]["parts"]
    assert reply.startswith(MARK.sub("", part["content"]))
    assert len(MARK.sub("", part["content"])) + _left_out(part["content"]) == len(reply)
