"""The lineage headers an HTTP reply's head carries (`Exchange.lineage_fields`, made at once as bytes) are those
`lineage_headers` gives gRPC metadata and the proxy's own error replies (`encode_fields` of them), byte for byte,
whatever way the call went: allowed, rerouted or denied, refused before it was read, its checkpoint named by its
upstream or by its reply, its output labelled, names past ASCII."""

from __future__ import annotations

from pathlib import Path

import orjson

from proxy.config import parse
from proxy.errors import InvalidRequest
from proxy.exchange import Exchange
from proxy.ingress.wire import encode_fields
from proxy.pipeline import Pipeline
from proxy.protocols.openai import Adapter as OpenAI
from tests.harness import offline_pipeline

CONFIG = """
listen: {{http: 127.0.0.1:8080}}
upstreams:
  - {{name: "u-1", url: "http://127.0.0.1:1", protocol: openai{checkpoint}}}
routes: [{{model: "*", upstream: "u-1"}}]
policy: {{anonymous: allow, default_purpose: assistant}}
zones: [{{name: no-ads, labels: [user-data], allow_purposes: [assistant]}}]
detectors: [email]
lineage: {{store: {store}}}
"""


def pipeline(tmp_path: Path, checkpoint: str = ", checkpoint: org/weights-7b") -> Pipeline:
    return offline_pipeline(parse(CONFIG.format(store=tmp_path / "lineage.db", checkpoint=checkpoint)))


def exchange(pipe: Pipeline) -> Exchange:
    adapter = OpenAI()
    target = adapter.match("POST", "/v1/chat/completions")
    assert target is not None
    return Exchange(pipe, adapter, target, pipe.trace({}.get))


def same(ex: Exchange) -> list[tuple[str, str]]:
    headers = ex.lineage_headers()
    assert ex.lineage_fields() == encode_fields(headers)
    return headers


def body(text: str, model: str = "m") -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": text}]})


def test_lineage_fields_are_the_lineage_headers_encoded(tmp_path: Path) -> None:
    pipe = pipeline(tmp_path)
    # before anything is read: the trace alone
    assert [name for name, _ in same(exchange(pipe))] == ["x-trace-id"]
    # allowed and forwarded: decision, labels, upstream, checkpoint
    ex = exchange(pipe)
    ex.admit(body("mail ana@example.org"), {"x-data-labels": "user-data"}.get)
    ex.forwarded()
    names = [name for name, _ in same(ex)]
    assert names == ["x-trace-id", "x-lineage-decision", "x-data-labels", "x-lineage-upstream", "x-lineage-checkpoint"]
    ex.outcome.output_detected = frozenset({"pii:email", "pii:phone"})  # the reply's labels too
    assert dict(same(ex))["x-data-labels"] == "pii:email,pii:phone,user-data"
    # denied by its zone: no upstream
    ex = exchange(pipe)
    try:
        ex.admit(body("hello"), {"x-data-labels": "user-data", "x-purpose": "ads"}.get)
    except Exception:
        pass
    assert ex.decision is not None and not ex.decision.forwards
    ex.finish()
    assert "x-lineage-upstream" not in dict(same(ex)) and dict(same(ex))["x-lineage-decision"] == "deny"
    # refused before it was read: it carries no data, and says it was denied
    ex = exchange(pipe)
    ex.finish(InvalidRequest("no"))
    assert dict(same(ex))["x-lineage-decision"] == "deny"
    # a checkpoint the reply names (no pin), not ASCII, with a byte a header decode kept as a surrogate
    pipe = pipeline(tmp_path, checkpoint="")
    ex = exchange(pipe)
    ex.admit(body("hi"), {}.get)
    ex.forwarded()
    assert "x-lineage-checkpoint" not in dict(same(ex))
    ex.outcome.checkpoint = "mod\u00e8le-\udce9"
    assert dict(same(ex))["x-lineage-checkpoint"] == "mod\u00e8le-\udce9"
