"""The sinks' fan-out: a sink that may hold the reply (a new flow written through) runs as the call ends;
the others run on the loop's next turn, after the ingress has written the client's bytes, and a failing
sink never stops the others. A sink a reload replaces hands its counters on to the new one."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

import proxy.record.sinks as sinks_module
from proxy.config.model import Telemetry
from proxy.flow import ALLOW, Call, Decision, Outcome, TraceContext
from proxy.record.sinks import Durable, FanOut
from proxy.record.spans import SpanRecorder


class Sink:
    """A sink that notes the calls it records (`seen`: their models; `ended`: what it was given). A durable one
    holds each reply on its `future` (never done) unless `holds` is False."""

    def __init__(self, name: str, *, durable: bool, fails: bool = False, holds: bool = True) -> None:
        self.name = name
        self.durable = durable
        self.fails = fails
        self.seen: list[str] = []
        self.ended: list[tuple[Call, Decision, Outcome]] = []
        self.future: Durable | None = concurrent.futures.Future() if durable and holds else None

    def start(self) -> None:
        pass

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> Durable | None:
        if self.fails:
            raise RuntimeError("broken sink")
        self.seen.append(call.model)
        self.ended.append((call, decision, outcome))
        return self.future

    async def flush(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def metrics(self) -> list[str]:
        return []


def _end(sinks: FanOut, model: str) -> Durable | None:
    trace = TraceContext(trace_id=1, span_id=2)
    return sinks.on_end(Call("openai", "chat", model, trace), Decision(ALLOW, None), Outcome(started_ns=1), frozenset())


def test_durable_sinks_run_at_once_and_the_others_on_the_next_turn() -> None:
    edges, spans, broken = (
        Sink("edges", durable=True),
        Sink("spans", durable=False),
        Sink("x", durable=False, fails=True),
    )
    sinks = FanOut([broken, edges, spans])

    async def scenario() -> None:
        durable = _end(sinks, "a")
        _end(sinks, "b")
        assert durable is edges.future  # the reply waits for this one only
        assert edges.seen == ["a", "b"] and spans.seen == []  # nothing else before the reply is written
        await asyncio.sleep(0)
        assert spans.seen == []  # held while the write the replies wait for is in flight: they may yet not go out
        assert sinks.holds(edges.ended[0][2])
        durable.set_result(None)
        await asyncio.sleep(0)  # (the write's end comes to the loop from the writer's thread: a turn)
        await asyncio.sleep(0)
        assert spans.seen == ["a", "b"]  # both calls, in one turn, despite the broken sink before it
        assert not sinks.holds(edges.ended[0][2])
        edges.future = None  # a flow seen before: nothing to wait for
        _end(sinks, "c")
        await asyncio.sleep(0)
        assert spans.seen == ["a", "b", "c"]
        edges.future = concurrent.futures.Future()
        _end(sinks, "d")
        await sinks.flush()  # flush (shutdown, tests) runs what is pending first, a held record too
        assert spans.seen == ["a", "b", "c", "d"]

    asyncio.run(scenario())


def test_a_record_held_for_its_answers_send_goes_once_it_is_done_and_is_said_as_it_ended_from_then() -> None:
    """`on_end`'s `until` (a gRPC status's send): the record is held for it as for its durable write, which alone the
    reply waits for (the write returned), and is let go by its end, not by the task that waited for the write
    (`let_go`). From the moment the send is done, what the client got is said: the record no longer `holds` (before,
    review revgrpc3: held till the loop's next turn, a stream's end took its denied message, answered, for one whose
    client left)."""
    edges, spans = Sink("edges", durable=True), Sink("spans", durable=False)
    sinks = FanOut([edges, spans])
    trace = TraceContext(trace_id=1, span_id=2)

    def end(model: str, until: Durable) -> tuple[Outcome, Durable | None]:
        outcome = Outcome(started_ns=1)
        call = Call("oip", "infer", model, trace)
        return outcome, sinks.on_end(call, Decision(ALLOW, None), outcome, frozenset(), None, until)

    async def turns() -> None:
        for _ in range(3):
            await asyncio.sleep(0)

    async def scenario() -> None:
        edges.future = None  # a flow seen before: no write to wait for
        sent: Durable = concurrent.futures.Future()
        outcome, durable = end("a", sent)
        assert durable is None  # the send is not the reply's to wait for
        await turns()
        assert spans.seen == [] and sinks.holds(outcome)
        sent.set_result(None)
        assert not sinks.holds(outcome)  # sent: said as it ended, though let go on the next turn
        await turns()
        assert spans.seen == ["a"] and sinks.pending() == 0
        edges.future = concurrent.futures.Future()  # a new flow: its write in flight
        sent = concurrent.futures.Future()
        outcome, durable = end("b", sent)
        assert durable is edges.future
        sinks.awaited(outcome)
        durable.set_result(None)
        sinks.let_go(outcome, True)  # the write done, the reply handed over: the send is still in flight
        await turns()
        assert spans.seen == ["a"] and sinks.holds(outcome)
        sent.set_result(None)
        await turns()
        assert spans.seen == ["a", "b"] and sinks.pending() == 0

    asyncio.run(scenario())


def test_without_an_event_loop_every_sink_runs_at_once() -> None:
    spans = Sink("spans", durable=False)
    _end(FanOut([spans]), "a")
    assert spans.seen == ["a"]


def test_a_fan_out_schedules_on_whichever_loop_runs_and_runs_at_once_with_none() -> None:
    spans = Sink("spans", durable=False)
    sinks = FanOut([spans])

    async def one_turn(model: str) -> None:
        _end(sinks, model)
        assert model not in spans.seen  # the next turn of this loop, not now
        await asyncio.sleep(0)
        assert spans.seen[-1] == model

    asyncio.run(one_turn("a"))
    asyncio.run(one_turn("b"))  # a new loop: the first one's is closed
    _end(sinks, "c")  # no loop running now
    assert spans.seen == ["a", "b", "c"]


@pytest.mark.interpreted  # patches what a compiled module calls directly (tests/conftest.py)
def test_the_running_loop_is_looked_up_once_a_loop_not_once_a_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """On Python 3.11 `asyncio.get_running_loop()` makes a getpid() system call each time (~0.5 us a call)."""
    looked_up: list[asyncio.AbstractEventLoop] = []

    def running_loop() -> asyncio.AbstractEventLoop:
        looked_up.append(asyncio.get_running_loop())
        return looked_up[-1]

    monkeypatch.setattr(sinks_module, "_running_loop", running_loop)
    spans = Sink("spans", durable=False)
    sinks = FanOut([spans])

    async def calls() -> None:
        for number in range(50):
            _end(sinks, str(number))
            await asyncio.sleep(0)

    asyncio.run(calls())
    asyncio.run(calls())
    assert len(spans.seen) == 100
    assert len(looked_up) == 2  # once for each loop


class Collector:
    """Where a SpanRecorder's batches go: kept."""

    def __init__(self) -> None:
        self.spans: list[bytes] = []

    def send(self, batch: list[bytes]) -> None:
        self.spans.extend(batch)

    def close(self) -> None:
        pass


def counters(recorder: SpanRecorder) -> tuple[int, int, int]:
    """(exported, dropped, export failed) as /metrics shows them."""
    values = dict(line.split(" ") for line in recorder.metrics() if not line.startswith("#"))
    return (int(values["lineage_proxy_spans_exported_total"]), int(values["lineage_proxy_spans_dropped_total"]),
            int(values["lineage_proxy_spans_export_failed_total"]))  # fmt: skip


def test_a_replaced_span_recorder_s_counts_go_on_in_the_new_one_what_it_exports_as_it_stops_included() -> None:
    """t2_reload.py: a SIGHUP that changed a telemetry key put a new SpanRecorder in place with its counters at 0,
    and what the old one exported as it stopped was counted nowhere: 3,000 spans received by the collector,
    2,706 in lineage_proxy_spans_exported_total (a counter going down, which Prometheus reads as a restart;
    with --workers 2 the shared counter missed 202 of 4,000). Now the new recorder counts on from the old one,
    and from the last one removed when spans come back after a reload turned them off."""
    first_collector, second_collector = Collector(), Collector()
    first = SpanRecorder(Telemetry(exporter="otlp", queue_size=3), first_collector)
    sinks = FanOut([first])
    for model in "ab":
        _end(sinks, model)  # no event loop: recorded at once
    first.queue.force_flush()
    for model in "cdefg":
        _end(sinks, model)  # 3 queued, 2 dropped: the queue holds 3
    second = SpanRecorder(Telemetry(exporter="otlp", resource_attributes=(("r", "1"),)), second_collector)
    old = sinks.swap("spans", second)
    assert old is first
    asyncio.run(first.stop())  # a reload stops the old one after the swap: it exports what it had queued
    assert len(first_collector.spans) == 5
    for model in "hijk":
        _end(sinks, model)
    second.queue.force_flush()
    assert len(second_collector.spans) == 4
    assert counters(second) == (9, 2, 0)

    assert sinks.swap("spans", None) is second  # a reload that turns spans off (exporter: none) ...
    asyncio.run(second.stop())
    third = SpanRecorder(Telemetry(exporter="otlp"), Collector())
    assert sinks.swap("spans", third) is None  # ... and one that turns them on again
    assert counters(third) == (9, 2, 0)
    asyncio.run(third.stop())


def test_calls_ended_on_a_loop_stopped_before_its_turn_end_are_recorded_on_the_next_loop() -> None:
    """A loop stopped (and closed) in the turn a call ended never runs the deferred sinks it scheduled: the next
    loop's first call schedules them again, and they record both."""
    spans = Sink("spans", durable=False)
    sinks = FanOut([spans])

    async def end_and_stop() -> None:
        _end(sinks, "a")
        asyncio.get_running_loop().stop()  # this turn is the loop's last
        await asyncio.Event().wait()

    loop = asyncio.new_event_loop()
    with pytest.raises(RuntimeError, match="stopped before Future completed"):
        loop.run_until_complete(end_and_stop())
    loop.close()
    assert spans.seen == []

    async def next_loop() -> None:
        _end(sinks, "b")
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(next_loop())
    assert spans.seen == ["a", "b"]
