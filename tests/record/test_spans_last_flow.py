"""A call of the same flow as the last one gets its flow's encoded block by comparing keys (`SpanRecorder._flow_block`
keeps the last one found): the span is what the table would have given, for flows interleaved, for keys equal but
made of other objects, and for an upstream built where the last one was freed (its key holds the upstream by id)."""

from __future__ import annotations

import sys

from opentelemetry.proto.trace.v1 import trace_pb2

from proxy.config.model import Telemetry, Upstream
from proxy.flow import ALLOW, Call, Decision, Outcome, TraceContext
from proxy.record import spans
from proxy.record.otlp import SPAN_KIND_SERVER, encode_span


class _Sink:
    def send(self, batch: list[bytes]) -> None: ...

    def close(self) -> None: ...


def _recorder() -> spans.SpanRecorder:
    return spans.SpanRecorder(Telemetry(exporter="otlp"), sink=_Sink())  # type: ignore[arg-type]


def _attributes(raw: bytes) -> dict[str, object]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in trace_pb2.Span.FromString(raw).attributes}


def test_interleaved_flows_with_keys_made_afresh_get_each_their_own_span() -> None:
    recorder = _recorder()
    upstream = Upstream(name="vllm", url="http://127.0.0.1:9")
    order = ["a", "a", "b", "a", "b", "b", "c", "a", "a"]
    for n, flow in enumerate(order, 1):
        # every string of the key made afresh each call, as a parsed request's are: equal, never the same object
        model, caller = "".join(("m-", flow)), "".join(("app-", flow))
        decision = Decision(ALLOW, upstream, caller=caller, purpose="".join(("p", flow)))
        call = Call("openai", "chat", model, TraceContext(n, n), params=(("temperature", float(n % 2)),))
        outcome = Outcome(started_ns=10, ended_ns=20 + n, status=200, response_model=model, finish_reasons=("stop",))
        raw = recorder.encode(call, decision, outcome, frozenset())
        attributes = recorder.attributes(call, decision, outcome, frozenset())
        name, status, message = spans._naming(call, decision, attributes)
        general = encode_span(trace_id=n, span_id=n, parent_span_id=None, trace_state=None, name=name,
                              kind=SPAN_KIND_SERVER, start_ns=10, end_ns=20 + n, attributes=attributes,
                              status_code=status, status_message=message)  # fmt: skip
        assert raw == general, n
        got = _attributes(raw)
        assert (got["lineage.caller"], got["gen_ai.request.model"]) == (caller, model), n
    recorder.shutdown()


def test_an_upstream_made_where_the_last_flows_was_freed_is_named_in_its_span() -> None:
    """The last flow's key holds its upstream by id: were that upstream freed while the key is kept, a new one made
    at its address (CPython reuses a freed object's memory; when is the allocator's business) would find the last
    block and be named as the freed one in its span. Whether a run reuses the address cannot be forced, so what is
    checked is what rules the reuse out: the upstream is not freed while the last entry's key holds its id."""
    recorder = _recorder()
    call = Call("openai", "chat", "m", TraceContext(1, 1))
    first = Upstream(name="u0", url="http://127.0.0.1:9")
    raw = recorder.encode(call, Decision(ALLOW, first, caller="app"), Outcome(started_ns=1, ended_ns=2), frozenset())
    assert _attributes(raw)["lineage.upstream"] == "u0"
    recorder._blocks.kept.clear()  # only the last flow's entry is left to hold (or not) the upstream
    spans._server.cache_clear()  # which holds upstreams too
    # nothing holds it in a cycle (a decision holds its upstream, an upstream nothing), and a weak reference cannot
    # see it freed (the class is compiled, and takes none): held by this test alone, it has the references an upstream
    # nothing else holds has, which it would be freed with once the test dropped it
    alone = Upstream(name="u0", url="http://127.0.0.1:9")
    held = sys.getrefcount(first) > sys.getrefcount(alone)
    assert held, "the last flow's key holds the id of an upstream it does not hold: a new one may be made at it"
    # and a new upstream, wherever it is made, is named as itself
    second = Upstream(name="u1", url="http://127.0.0.1:9")
    raw = recorder.encode(call, Decision(ALLOW, second, caller="app"), Outcome(started_ns=1, ended_ns=2), frozenset())
    assert _attributes(raw)["lineage.upstream"] == "u1"
    recorder.shutdown()
