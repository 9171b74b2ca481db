"""An error the upstream sends in band that only the reply's end lets be read (its last line without a line end, a
pretty-printed event the reply ends in) is recorded as `upstream_error` (the observer reads it at `finish`), and is
counted as one in `lineage_proxy_errors_total` as every other failed call is: it was recorded, but not counted."""

from __future__ import annotations

import orjson
import pytest

from proxy.config import parse
from proxy.exchange import Exchange
from proxy.protocols.openai import Adapter as OpenAI
from tests.harness import offline_pipeline
from tests.test_exchange import Counting

CONFIG = """
listen: {http: 127.0.0.1:8080}
upstreams: [{name: u, url: http://127.0.0.1:1, protocol: openai, checkpoint: org/weights-7b}]
routes: [{model: "*", upstream: u}]
policy: {anonymous: allow, default_purpose: assistant}
"""
BODY = orjson.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
CHUNK = (b'data: {"id": "c1", "object": "chat.completion.chunk", "model": "m", '
         b'"choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": null}]}\n\n')  # fmt: skip


@pytest.mark.parametrize(
    "end",
    [
        b'data: {"error": {"message": "overloaded", "type": "InternalServerError", "code": 500}}\n\n',  # (as before)
        b'data: {"error": {"message": "overloaded", "type": "InternalServerError", "code": 500}}',
        b'data: {"error":\ndata: {"message": "overloaded"}}',
    ],
    ids=["ended", "no-line-end", "event-the-reply-ends"],
)
def test_an_error_in_band_at_the_replys_end_is_counted_as_recorded(end: bytes) -> None:
    pipe = offline_pipeline(parse(CONFIG))
    sink = Counting()
    pipe.runtime.sinks.swap(sink.name, sink)
    adapter = OpenAI()
    target = adapter.match("POST", "/v1/chat/completions")
    assert target is not None
    ex = Exchange(pipe, adapter, target, pipe.trace({}.get))
    ex.admit(BODY, {}.get, (), deferred=True)
    ex.forwarded()
    ex.head(200, {"content-type": "text/event-stream"}.get)
    ex.chunk(CHUNK + end)
    ex.finish()
    assert sink.ended == [("allow", "upstream_error", "m")]
    failed = {name: series.value for name, series in pipe.runtime.stats._failed.items()}
    assert failed == {"upstream_error": 1}
