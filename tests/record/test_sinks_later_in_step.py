"""The calls a loop turn ended reach each deferred sink whole and in order: every sink is given each call's own
call, decision, outcome and output labels together (`FanOut` keeps them for the turn's end), whichever sink before
it fails, and the next turn's calls are not the last turn's again."""

from __future__ import annotations

import asyncio

from proxy.flow import ALLOW, DENY, Call, Decision, Outcome, TraceContext
from proxy.record.sinks import FanOut


class Given:
    """A deferred sink that keeps what it is given; `fails`: raises on every call instead."""

    durable = False

    def __init__(self, name: str, fails: bool = False) -> None:
        self.name = name
        self.fails = fails
        self.given: list[tuple[Call, Decision, Outcome, frozenset[str]]] = []

    def start(self) -> None:
        pass

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> None:
        if self.fails:
            raise RuntimeError("broken sink")
        self.given.append((call, decision, outcome, output_labels))

    async def flush(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def metrics(self) -> list[str]:
        return []


def record(n: int) -> tuple[Call, Decision, Outcome, frozenset[str]]:
    call = Call("openai", "chat", f"m{n}", TraceContext(trace_id=n + 1, span_id=n + 2))
    return call, Decision(ALLOW if n % 2 else DENY, None), Outcome(started_ns=n + 1), frozenset({f"l:{n}"})


def test_each_deferred_sink_gets_each_calls_own_record_in_order() -> None:
    broken, first, second = Given("a", fails=True), Given("b"), Given("c")
    sinks = FanOut([broken, first, second])
    records = [record(n) for n in range(5)]

    async def scenario() -> None:
        for one in records[:3]:
            assert sinks.on_end(*one) is None
        await asyncio.sleep(0)  # the turn's end
        assert first.given == second.given == records[:3]
        for one in records[3:]:
            sinks.on_end(*one)
        await asyncio.sleep(0)
        assert first.given == second.given == records  # the last turn's calls not again
        for got, sent in zip(first.given, records, strict=True):
            assert all(a is b for a, b in zip(got, sent, strict=True))  # the very objects, each with its own

    asyncio.run(scenario())
