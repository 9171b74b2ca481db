"""An error the upstream sends in band is recorded as `upstream_error` and counted as one in
`lineage_proxy_errors_total` as every other failed call is (it was recorded, but not counted). One in an event the
reply ends in, before the blank line that would end it (its last line without a line end, a pretty-printed event), is
none since 2026-12-05: the SDK's decoder never dispatches that event (`test_sse_events_as_the_sdk_reads_them`)."""

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
    ("end", "error"),
    [
        (b'data: {"error": {"message": "overloaded", "type": "InternalServerError", "code": 500}}\n\n', True),
        (b'data: {"error": {"message": "overloaded", "type": "InternalServerError", "code": 500}}', False),
        (b'data: {"error":\ndata: {"message": "overloaded"}}', False),
    ],
    ids=["ended", "no-line-end", "event-the-reply-ends"],
)
def test_an_error_in_band_at_the_replys_end_is_counted_as_recorded(end: bytes, error: bool) -> None:
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
    assert sink.ended == [("allow", "upstream_error" if error else None, "m")]
    failed = {name: series.value for name, series in pipe.runtime.stats._failed.items()}
    assert failed == ({"upstream_error": 1} if error else {})
