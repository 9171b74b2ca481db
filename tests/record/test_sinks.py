"""The sinks' fan-out: a sink that may hold the reply (a new flow written through) runs as the call ends;
the others run on the loop's next turn, after the ingress has written the client's bytes, and a failing
sink never stops the others."""

from __future__ import annotations

import asyncio
import concurrent.futures

from proxy.flow import ALLOW, Call, Decision, Outcome, TraceContext
from proxy.record.sinks import Durable, FanOut


class Sink:
    def __init__(self, name: str, *, durable: bool, fails: bool = False) -> None:
        self.name = name
        self.durable = durable
        self.fails = fails
        self.seen: list[str] = []
        self.future: Durable | None = concurrent.futures.Future() if durable else None

    def start(self) -> None:
        pass

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> Durable | None:
        if self.fails:
            raise RuntimeError("broken sink")
        self.seen.append(call.model)
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
        assert spans.seen == ["a", "b"]  # both calls, in one turn, despite the broken sink before it
        _end(sinks, "c")
        await sinks.flush()  # flush (shutdown, tests) runs what is pending first
        assert spans.seen == ["a", "b", "c"]

    asyncio.run(scenario())


def test_without_an_event_loop_every_sink_runs_at_once() -> None:
    spans = Sink("spans", durable=False)
    _end(FanOut([spans]), "a")
    assert spans.seen == ["a"]
