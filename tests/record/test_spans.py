"""Spans as Jaeger receives them: a real OTLP receiver decodes what the proxy exports."""

from __future__ import annotations

import hashlib
import time

import httpx
import openai
import orjson
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.conftest import KEYS, sha
from tests.harness import dead_port, start_app, start_proxy
from tests.record.test_export import StallingReceiver
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import ROOT, SERVED

CONFIG = f"""
listen:
  http: 127.0.0.1:0
upstreams:
  - name: vllm
    url: ${{UPSTREAM}}
    region: eu
routes:
  - model: "*"
    upstream: vllm
callers:
  - name: glasses-app
    api_key_sha256: {sha(KEYS["glasses"])}
    labels: [user-interaction]
    default_purpose: assistant
zones:
  - name: interaction-data
    labels: [user-interaction]
    allow_purposes: [assistant]
detectors: [email]
telemetry:
  exporter: otlp
  endpoint: ${{OTLP}}
  protocol: ${{PROTOCOL:-grpc}}
  service_name: proxy-under-test
  capture_content: ${{CAPTURE:-false}}
  queue_size: ${{QUEUE:-4096}}
  export_timeout_s: ${{EXPORT_TIMEOUT:-5}}
  resource_attributes:
    deployment.environment: test
lineage:
  store: ${{STORE}}
"""

SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_SERVER
STATUS_ERROR = 2


def sdk(proxy, **headers: str) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=KEYS["glasses"], max_retries=0, timeout=10,
                         default_headers=headers or None)  # fmt: skip


def digest(*texts: str) -> str:
    return "sha256:" + hashlib.sha256("".join(t + "\n" for t in texts).encode()).hexdigest()


def captured_text(messages: str) -> list[str]:
    """The text parts of captured messages (`gen_ai.input.messages`, `gen_ai.output.messages`: the GenAI
    conventions' JSON, tests/test_span_content_messages.py)."""
    return [part["content"] for message in orjson.loads(messages) for part in message["parts"]]


@pytest.fixture
def traced(vllm, otlp, make_proxy):  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    return server, proxy, otlp


def test_chat_span_joins_the_callers_trace_with_every_attribute(traced) -> None:  # type: ignore[no-untyped-def]
    server, proxy, otlp = traced
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    reply = sdk(proxy, traceparent=parent).chat.completions.with_raw_response.create(
        model=SERVED, messages=[{"role": "user", "content": "hello"}], max_tokens=20, temperature=0.5, top_p=0.9
    )
    assert reply.http_response.headers["x-trace-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    span = otlp.by_trace("4bf92f3577b34da6a3ce929d0e0e4736")
    assert span.name == f"chat {SERVED}"
    assert span.kind == SERVER_KIND
    assert span.parent_span_id == "00f067aa0ba902b7"
    upstream_parent = server.data_requests()[-1].headers["traceparent"].split("-")[2]
    assert span.span_id == upstream_parent  # the upstream's own spans hang under the proxy's
    a = span.attributes
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": SERVED,
        "gen_ai.response.model": SERVED,
        "gen_ai.provider.name": "vllm",
        "gen_ai.request.max_tokens": 20,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.usage.input_tokens": 6,
        "gen_ai.usage.output_tokens": 8,
        "gen_ai.response.finish_reasons": ["stop"],
        "server.address": "127.0.0.1",
        "lineage.checkpoint": ROOT,
        "lineage.checkpoint.source": "upstream",
        "lineage.caller": "glasses-app",
        "lineage.purpose": "assistant",
        "lineage.decision": "allow",
        "lineage.zones": ["interaction-data"],
        "lineage.input.labels": ["user-interaction"],
        "lineage.output.labels": ["user-interaction"],
        "lineage.input.digest": digest("hello"),
        "lineage.output.digest": digest("w0 w1 w2 w3 w4 w5 echo: hello"),
        "http.response.status_code": 200,
    }
    for key, value in expected.items():
        assert a.get(key) == value, key
    assert a["gen_ai.response.id"].startswith("chatcmpl-")
    assert isinstance(a["server.port"], int)
    assert "lineage.reason" not in a and "gen_ai.input.messages" not in a
    assert span.resource["service.name"] == "proxy-under-test"
    assert span.resource["deployment.environment"] == "test"
    assert span.end_ns >= span.start_ns > 0


def test_new_trace_without_traceparent(traced) -> None:  # type: ignore[no-untyped-def]
    _, proxy, otlp = traced
    reply = sdk(proxy).embeddings.with_raw_response.create(model=SERVED, input="hi")
    span = otlp.by_trace(reply.http_response.headers["x-trace-id"])
    assert span.parent_span_id == "" and span.name == f"embeddings {SERVED}"
    assert span.attributes["gen_ai.operation.name"] == "embeddings"


def test_streamed_span_has_time_to_first_token_and_the_same_digest(traced) -> None:  # type: ignore[no-untyped-def]
    _, proxy, otlp = traced
    stream = sdk(proxy).chat.completions.with_raw_response.create(
        model=SERVED, messages=[{"role": "user", "content": "hello"}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    stream.http_response.read()
    span = otlp.by_trace(stream.http_response.headers["x-trace-id"])
    a = span.attributes
    assert a["gen_ai.request.stream"] is True
    assert a["lineage.output.digest"] == digest("w0 w1 w2 w3 w4 w5 echo: hello")  # as if not streamed
    assert a["gen_ai.usage.output_tokens"] == 8
    assert 0 < a["gen_ai.response.time_to_first_chunk"] < 10
    assert [name for name, _ in span.events] == ["gen_ai.first_token"]


def test_denied_call_has_an_error_span(traced) -> None:  # type: ignore[no-untyped-def]
    server, proxy, otlp = traced
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(proxy, **{"x-purpose": "ads"}).chat.completions.create(
            model=SERVED, messages=[{"role": "user", "content": "x"}]
        )
    span = otlp.by_trace(caught.value.response.headers["x-trace-id"])
    a = span.attributes
    assert a["lineage.decision"] == "deny" and a["error.type"] == "purpose_denied"
    assert a["lineage.rule"] == "zone:interaction-data"
    assert "not allowed for data labelled 'user-interaction'" in a["lineage.reason"]
    assert span.status_code == STATUS_ERROR and "zone interaction-data" in span.status_message
    assert "lineage.checkpoint" not in a and a["lineage.output.labels"] == []
    assert server.data_requests() == []


def test_lora_adapter_checkpoint_and_parent(traced) -> None:  # type: ignore[no-untyped-def]
    _, proxy, otlp = traced
    reply = sdk(proxy).completions.with_raw_response.create(model="sql-lora", prompt="select")
    assert reply.http_response.headers["x-lineage-checkpoint"] == "/adapters/sql-lora"
    span = otlp.by_trace(reply.http_response.headers["x-trace-id"])
    assert span.attributes["lineage.checkpoint.parent"] == SERVED
    assert span.name == "text_completion sql-lora"


def test_captured_content_is_masked(vllm, otlp, make_proxy) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}", CAPTURE="true")
    reply = sdk(proxy).chat.completions.with_raw_response.create(
        model=SERVED, messages=[{"role": "user", "content": "mail ana@example.org"}]
    )
    a = otlp.by_trace(reply.http_response.headers["x-trace-id"]).attributes
    assert captured_text(a["gen_ai.input.messages"]) == ["mail [pii:email]"]
    output = "".join(captured_text(a["gen_ai.output.messages"]))
    assert "[pii:email]" in output and "ana@example.org" not in output
    assert a["lineage.output.labels"] == ["pii:email", "user-interaction"]


def test_a_value_split_across_content_parts_is_labelled_and_never_captured_half_masked(vllm, otlp, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """`alice@exa` + `mple.com`: the label comes from where the parts meet; no part holds the value to mask,
    so the call's content is withheld. A value inside one part is masked there as usual."""
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}", CAPTURE="true")
    for parts, captured in (
        (["mail ana@exa", "mple.org"], ["[withheld: a detected value is split across content parts]"]),
        (["mail ana@example.org", " thanks"], ["mail [pii:email]", " thanks"]),
    ):
        reply = sdk(proxy).chat.completions.with_raw_response.create(
            model=SERVED, messages=[{"role": "user", "content": [{"type": "text", "text": p} for p in parts]}]
        )
        a = otlp.by_trace(reply.http_response.headers["x-trace-id"]).attributes
        assert "pii:email" in a["lineage.input.labels"]
        assert captured_text(a["gen_ai.input.messages"]) == captured


def test_otlp_over_http_protobuf(vllm, loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """Jaeger's 4318: the proxy POSTs ExportTraceServiceRequest protobufs to /v1/traces."""
    received: list[trace_service_pb2.ExportTraceServiceRequest] = []
    arrived = []

    async def traces(request: web.Request) -> web.Response:
        message = trace_service_pb2.ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.append(message)
        arrived[0].set()
        return web.Response(body=trace_service_pb2.ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")  # fmt: skip

    import asyncio

    async def start():  # type: ignore[no-untyped-def]
        arrived.append(asyncio.Event())
        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        return await start_app(app)

    runner, port = loop_thread.run(start())
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{port}", PROTOCOL="http/protobuf")
    reply = sdk(proxy).chat.completions.with_raw_response.create(
        model=SERVED, messages=[{"role": "user", "content": "x"}]
    )
    loop_thread.run(asyncio.wait_for(arrived[0].wait(), 10))
    span = received[0].resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == reply.http_response.headers["x-trace-id"]
    assert span.name == f"chat {SERVED}"
    loop_thread.run(runner.cleanup())


@pytest.mark.parametrize("receiver", ["dead", "hanging"])
def test_a_dead_or_hanging_collector_drops_spans_and_never_fails_calls(vllm, make_proxy, receiver: str, caplog) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    hanging = OtlpReceiver(hang=True)
    port = hanging.start() if receiver == "hanging" else dead_port()
    try:
        proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{port}", QUEUE="4", EXPORT_TIMEOUT="0.5")
        client = sdk(proxy)
        for _ in range(40):
            assert client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "x"}]).choices
        queue = proxy.process.runtime.sinks.get("spans").queue
        assert queue.dropped > 0  # the queue (4) filled while the exporter was stuck or failing
        assert queue.exported == 0
        metrics = httpx.get(f"{proxy.url}/metrics").text
        assert f"lineage_proxy_spans_dropped_total {queue.dropped}" in metrics
        assert 'lineage_proxy_decisions_total{decision="allow"} 40' in metrics
        proxy.process.runtime.sinks.get("spans").queue.force_flush()  # at least one export attempt has failed now
        outage_logs = [r for r in caplog.records if "span export failed" in r.getMessage()]
        assert len(outage_logs) == 1  # once per outage, not per span or per batch
    finally:
        hanging.stop()


def test_at_stop_the_spans_a_stalled_collector_never_took_are_counted_and_told_once(
    vllm, loop_thread, tmp_path, caplog
) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM while the collector holds an export: the stop waits for it as long as one export may take
    (export_timeout_s), sends nothing more to a collector that just timed out, and one line counts what is
    lost. It used to say only "span export failed" (after trying the queued spans too), or, with an export
    timeout over 5 s, nothing at all."""
    _, upstream = vllm
    stalling = StallingReceiver()
    port = stalling.start()
    env = {"UPSTREAM": upstream, "OTLP": f"http://127.0.0.1:{port}", "EXPORT_TIMEOUT": "0.5",
           "STORE": str(tmp_path / "lineage.db")}  # fmt: skip
    proxy = loop_thread.run(start_proxy(CONFIG, env=env))
    try:
        client = sdk(proxy)
        queue = proxy.process.runtime.sinks.get("spans").queue

        def call() -> None:
            assert client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "x"}]).choices

        call()
        call()
        loop_thread.run(proxy.process.runtime.sinks.flush())
        assert len(stalling.spans) == 2
        stalling.stall.set()
        call()
        assert stalling.stalled.wait(10)  # its span's export is held by the collector
        for _ in range(3):
            call()
        caplog.set_level("INFO", "lineage_proxy.export")
        started = time.monotonic()
        loop_thread.run(proxy.process.stop())
        assert time.monotonic() - started < 2.0
        assert (queue.exported, queue.failed, queue.dropped) == (2, 1, 3)
        lines = [r.getMessage() for r in caplog.records if r.name == "lineage_proxy.export"]
        assert lines == [
            "4 spans not exported at shutdown: ExportRefused: OTLP export answered DEADLINE_EXCEEDED: Deadline Exceeded"
        ]
    finally:
        stalling.stop()


class FlakySink:
    """A sink whose collector is down until told otherwise; remembers what it delivered."""

    def __init__(self) -> None:
        self.down = True
        self.delivered: list[bytes] = []

    def send(self, batch: list[bytes]) -> None:
        if self.down:
            raise ConnectionRefusedError("collector down")
        self.delivered.extend(batch)

    def close(self) -> None:
        pass


def test_during_an_outage_spans_are_not_encoded_but_one_probe_per_interval_is() -> None:
    from proxy.record.export import BoundedExporter

    sink = FlakySink()
    queue = BoundedExporter(sink, interval_s=3600.0)  # the export thread sleeps; the test flushes
    try:
        assert queue.accepting()
        queue.submit(b"first")
        queue.force_flush()  # fails: the outage begins
        assert queue.failed == 1
        assert queue.accepting()  # the probe
        assert not queue.accepting() and not queue.accepting()  # the rest are dropped unencoded
        assert queue.dropped == 2
        sink.down = False
        queue.submit(b"probe")
        queue.force_flush()  # the probe gets through: the outage is over
        assert sink.delivered == [b"probe"]
        assert all(queue.accepting() for _ in range(10)) and queue.dropped == 2
    finally:
        queue.shutdown(0.1)


@pytest.mark.interpreted  # patches what a compiled module calls directly (tests/conftest.py)
def test_a_flows_attributes_are_encoded_once_and_every_call_keeps_its_own(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Calls of one flow share one encoded block of attributes; what is the call's own (digests, ids, tokens,
    timing) is encoded for each, and a call of another flow (another checkpoint, status, parameter) gets its own
    block: each span decodes to exactly `attributes()`."""
    from opentelemetry.proto.trace.v1 import trace_pb2

    from proxy.config.model import Telemetry, Upstream
    from proxy.flow import ALLOW, DENY, Call, Decision, Outcome, TraceContext
    from proxy.record import otlp, spans

    class Sink:
        def export(self, batch: list[bytes]) -> None: ...

        def close(self) -> None: ...

    recorder = spans.SpanRecorder(Telemetry(exporter="otlp"), sink=Sink())  # type: ignore[arg-type]
    upstream = Upstream(name="vllm", url="http://127.0.0.1:9")
    decision = Decision(ALLOW, upstream, caller="app", purpose="assistant", labels=frozenset({"pii"}), zones=("z",))
    encoded: list[int] = []
    real = otlp.key_values

    def counting(field: int, attributes):  # type: ignore[no-untyped-def]
        encoded.append(len(attributes))
        return real(field, attributes)

    monkeypatch.setattr(spans, "key_values", counting, raising=False)
    monkeypatch.setattr(otlp, "key_values", counting)

    def span(n: int, checkpoint: str = "m@1", status: int = 200, params=(("temperature", 0.2),)):  # type: ignore[no-untyped-def]
        call = Call("openai", "chat", "m", TraceContext(n, n), input_digest=f"in{n}", params=params)
        outcome = Outcome(started_ns=n, ended_ns=n + 5, status=status, checkpoint=checkpoint, checkpoint_source="config",
                          response_id=f"r{n}", input_tokens=n, output_tokens=2 * n, output_digest=f"out{n}")  # fmt: skip
        raw = recorder.encode(call, decision, outcome, frozenset({"pii"}))
        decoded = trace_pb2.Span.FromString(raw)
        got = {kv.key: kv.value for kv in decoded.attributes}
        want = recorder.attributes(call, decision, outcome, frozenset({"pii"}))
        assert set(got) == set(want)
        for key, value in want.items():
            kind = got[key].WhichOneof("value")
            text = getattr(got[key], kind)
            if kind == "array_value":
                text = tuple(v.string_value for v in text.values)
            assert text == value, key
        return decoded

    first = span(1)
    flow_attrs = len(encoded)
    assert encoded[0] > 10  # the flow's block; the call's own are written directly (`_call_block`), none
    span(2)
    assert encoded[flow_attrs:] == []  # the second call of the flow: nothing through the table (it was its own 5)
    other = span(3, checkpoint="m@2")  # another checkpoint: another flow
    assert {kv.value.string_value for kv in other.attributes if kv.key == "lineage.checkpoint"} == {"m@2"}
    span(4, status=500)
    span(5, params=(("stop", ["a"]),))  # a list parameter keys the table by its repr
    span(6, params=(("stop", ["a"]),))
    whole, point = span(10, params=(("temperature", 1),)), span(11, params=(("temperature", 1.0),))  # 1 == 1.0
    kinds = [{kv.key: kv.value.WhichOneof("value") for kv in one.attributes}["gen_ai.request.temperature"]
             for one in (whole, point)]  # fmt: skip
    assert kinds == ["int_value", "double_value"]
    assert first.name == "chat m"
    denied = Decision(DENY, None, caller="app", code="purpose_denied", reason="not for ads")
    for n in (7, 8):  # the status and its message come with the flow's block, kept or not
        raw = recorder.encode(
            Call("openai", "chat", "m", TraceContext(n, n)), denied, Outcome(started_ns=1), frozenset()
        )
        status = trace_pb2.Span.FromString(raw).status
        assert (status.code, status.message) == (STATUS_ERROR, "not for ads")
    recorder.shutdown()


def _flow_parts() -> tuple:  # type: ignore[type-arg]
    from proxy.config.model import Telemetry, Upstream
    from proxy.flow import ALLOW, Decision
    from proxy.record import spans

    class Sink:
        def send(self, batch: list[bytes]) -> None: ...

        def close(self) -> None: ...

    recorder = spans.SpanRecorder(Telemetry(exporter="otlp"), sink=Sink())  # type: ignore[arg-type]
    decision = Decision(ALLOW, Upstream(name="vllm", url="http://127.0.0.1:9"), caller="app", purpose="assistant")
    return recorder, decision


def test_a_calls_own_attributes_are_the_bytes_the_attribute_table_writes() -> None:
    """A call's own attributes (digests, reply id, tokens, content, timing) are written without the
    attributes' dict and otlp's table of encoded values: byte for byte what `key_values` writes for the
    dict `attributes()` reports, in its order, whichever of them a call has, long or not ASCII."""
    from proxy.flow import Call, Outcome, TraceContext
    from proxy.record import spans
    from proxy.record.otlp import key_values, span_event

    long = "é" * 200  # a multi-byte length, UTF-8
    calls = [
        (Call("openai", "chat", "m", TraceContext(1, 1)), Outcome(started_ns=5)),
        (Call("openai", "chat", "m", TraceContext(1, 1), input_digest="sha256:ab"), Outcome(started_ns=5, input_tokens=0)),
        (
            Call("openai", "chat", "m", TraceContext(1, 1), input_digest="sha256:" + "a" * 64, content=("hi", long)),
            Outcome(started_ns=5, ended_ns=9, first_token_ns=7, response_id="chatcmpl-1", input_tokens=300,
                    output_tokens=2**40, output_digest="sha256:cd", content=("a", long, "\u2028")),
        ),
        (Call("anthropic", "chat", "m", TraceContext(1, 1)), Outcome(started_ns=5, output_tokens=7, first_token_ns=10**9)),
    ]  # fmt: skip
    for call, outcome in calls:
        assert spans._call_block(call, outcome) == key_values(9, spans._call_attributes(call, outcome))
        events = spans._events(outcome, spans._call_attributes(call, outcome))
        assert spans._first_token(outcome) == b"".join(span_event(*event) for event in events)
    recorder, decision = _flow_parts()
    call, outcome = calls[2]
    encoded = recorder.encode(call, decision, outcome, frozenset())
    attributes = recorder.attributes(call, decision, outcome, frozenset())
    from opentelemetry.proto.trace.v1 import trace_pb2

    span = trace_pb2.Span.FromString(encoded)
    assert [kv.key for kv in span.attributes] == list(attributes)
    assert [(e.name, e.time_unix_nano) for e in span.events] == [("gen_ai.first_token", 7)]
    recorder.shutdown()


def test_parameters_equal_as_keys_but_encoded_otherwise_are_not_one_flow() -> None:
    """The flow's block is kept by a key holding the call's parameters: `1`, `1.0` and `True` are equal as
    keys, and so are `0.0` and `-0.0`, but each is its own OTLP value (an int, a double, a bool; the double's
    sign). Each call's span carries its own; a list (stop sequences) is kept by its repr."""
    import math

    from opentelemetry.proto.trace.v1 import trace_pb2

    from proxy.flow import Call, Outcome, TraceContext

    recorder, decision = _flow_parts()
    values = [1, 1.0, True, 0.0, -0.0, 0, False, "1", ["a"], ["a", "b"], None, -0.0, 0.0, 1, True, 1.0]
    for n, value in enumerate(values * 2):  # the second round meets every block kept
        call = Call("openai", "chat", "m", TraceContext(n + 1, n + 1), params=(("temperature", value), ("n", 2)))
        span = trace_pb2.Span.FromString(recorder.encode(call, decision, Outcome(started_ns=1), frozenset()))
        got = {kv.key: kv.value for kv in span.attributes}["gen_ai.request.temperature"]
        kind = got.WhichOneof("value")
        if isinstance(value, bool):
            assert (kind, got.bool_value) == ("bool_value", value)
        elif isinstance(value, int):
            assert (kind, got.int_value) == ("int_value", value)
        elif isinstance(value, float):
            assert kind == "double_value" and math.copysign(1.0, got.double_value) == math.copysign(1.0, value)
        elif isinstance(value, list):
            assert [v.string_value for v in got.array_value.values] == value
        else:
            assert (kind, got.string_value) == ("string_value", str(value))
    recorder.shutdown()


def _held(*roots: object) -> int:
    """The bytes of every string, bytes, tuple, list, frozenset and dict reachable from `roots`, each counted once
    (what a cache pins; the Decision and Upstream objects a flow's entry holds are shared, not followed)."""
    return _held_from(list(roots), set())


def _held_from(stack: list[object], seen: set[int]) -> int:
    """`_held`'s walk from `stack`, not counting again what `seen` holds the id of (it gets the ids of what is
    counted)."""
    import sys

    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, str | bytes | int | float):
            total += sys.getsizeof(item)
        elif isinstance(item, tuple | list | frozenset):
            total += sys.getsizeof(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += sys.getsizeof(item)
            stack.extend(item.keys())
            stack.extend(item.values())
    return total


def test_calls_with_long_values_leave_the_encoders_tables_small() -> None:
    """A client sending calls each with its own long value (stop sequences, a parameter of another shape, a
    model's name) gets its spans, each value cut to its bound (`spans.bounded`, `spans.bounded_items`), but neither the flow table nor otlp's table of encoded values keeps them:
    what both hold grows by less than one value's size over 120 calls of 64 KiB each (7.5 MiB of values). Short
    values are kept as before: a flow's second call is served from the table."""
    from opentelemetry.proto.trace.v1 import trace_pb2

    from proxy.flow import Call, Outcome, TraceContext
    from proxy.protocols.openai import read_request
    from proxy.record import otlp, spans

    recorder, decision = _flow_parts()
    tables = (recorder._blocks.kept, otlp._KV_CACHE)
    before = _held(*tables)
    long = 1 << 16
    for n in range(120):
        fill = f"{n:08d}" + "x" * long
        bodies = [
            {"stop": [fill, "###"]},  # a list parameter: keyed by its repr
            {"stop": fill},  # a string: one stop sequence
            {"seed": {"x": fill}},  # a parameter of an unexpected shape: its JSON text
            {"model": fill},  # the model's name
        ]
        body = bodies[n % len(bodies)]
        request = read_request("chat", orjson.dumps({"model": "m", "messages": [], **body}))
        call = Call("openai", "chat", request.model, TraceContext(n + 1, n + 1), params=request.params)
        span = trace_pb2.Span.FromString(recorder.encode(call, decision, Outcome(started_ns=1), frozenset()))
        got = {kv.key: kv.value for kv in span.attributes}
        if "model" in body:
            assert got["gen_ai.request.model"].string_value == spans.bounded(fill)
        elif "seed" in body:
            assert got["gen_ai.request.seed"].string_value == spans.bounded(orjson.dumps({"x": fill}).decode())
        else:
            stops = [v.string_value for v in got["gen_ai.request.stop_sequences"].array_value.values]
            sent = body["stop"] if isinstance(body["stop"], list) else [fill]
            assert stops == list(spans.bounded_items(tuple(sent)))
    grown = _held(*tables) - before
    assert grown < long
    kept = len(recorder._blocks)
    for _ in range(2):  # a short flow is still kept, once
        call = Call(
            "openai", "chat", "m", TraceContext(1, 1), params=(("stop_sequences", ["###"]), ("temperature", 0.5))
        )
        recorder.encode(call, decision, Outcome(started_ns=1), frozenset())
    assert len(recorder._blocks) == kept + 1
    recorder.shutdown()


def test_generated_spans_are_the_bytes_of_their_attributes_dict_and_of_protobuf() -> None:
    """Over calls drawn at random (token counts across every varint length, digests, ids, content, timing,
    statuses, checkpoints, parameters, a caller's parent span and trace state, denials): the span `encode`
    writes (the flow's kept name, status and attributes, the call's own attributes written without a dict) is
    byte for byte the span written from `attributes()` through the general encoder, and what protobuf writes
    when it decodes and serialises that span again."""
    import random

    from opentelemetry.proto.trace.v1 import trace_pb2

    from proxy.flow import DENY, Call, Decision, Outcome, TraceContext
    from proxy.record import spans
    from proxy.record.otlp import SPAN_KIND_SERVER, encode_span

    rng = random.Random(7)
    recorder, allowed = _flow_parts()
    denials = [Decision(DENY, None, caller="app", code="purpose_denied", reason=reason) for reason in ("no", None)]

    def tokens() -> int | None:
        return rng.choice([None, 0, rng.randrange(0x80), rng.randrange(0x80, 0x4000), rng.randrange(0x4000, 2**40)])

    for n in range(1, 400):
        trace = TraceContext(rng.choice([n, 2**128 - n]), rng.choice([n, 2**64 - n]),
                             rng.choice([None, rng.randrange(1, 2**64)]), tracestate=rng.choice([None, "", "k=v" * 50]))  # fmt: skip
        decision = rng.choice([allowed, allowed, *denials])
        call = Call("openai", "chat", rng.choice(["m", "n", ""]), trace, input_digest=rng.choice(["", f"in{n}"]),
                    params=rng.choice([(), (("temperature", 0.2),), (("max_tokens", rng.randrange(1, 9000)),)]),
                    content=rng.choice([(), ("hi", "é" * rng.randrange(300))]), stream=rng.random() < 0.3)  # fmt: skip
        started = 1_700_000_000_000_000_000 + n
        outcome = Outcome(started_ns=started, ended_ns=started + rng.randrange(1, 10**9),
                          first_token_ns=rng.choice([0, started + rng.randrange(1, 10**9)]),
                          status=rng.choice([200, 500]), checkpoint=rng.choice([None, "m@1"]),
                          response_id=rng.choice([None, f"chatcmpl-{n}"]), input_tokens=tokens(), output_tokens=tokens(),
                          output_digest=rng.choice([None, f"out{n}"]), content=rng.choice([(), ("a", "b" * 200)]),
                          error_type=rng.choice([None, None, "upstream_timeout"]))  # fmt: skip
        labels = rng.choice([frozenset(), frozenset({"pii"})])
        encoded = recorder.encode(call, decision, outcome, labels)
        attributes = recorder.attributes(call, decision, outcome, labels)
        name, status, message = spans._naming(call, decision, attributes)
        general = encode_span(trace_id=trace.trace_id, span_id=trace.span_id, parent_span_id=trace.parent_span_id,
                              trace_state=trace.tracestate, name=name,
                              kind=SPAN_KIND_SERVER, start_ns=outcome.started_ns, end_ns=outcome.ended_ns,
                              attributes=attributes, events=spans._events(outcome, attributes), status_code=status,
                              status_message=message)  # fmt: skip
        assert encoded == general, n
        assert trace_pb2.Span.FromString(encoded).SerializeToString() == encoded, n
    recorder.shutdown()
