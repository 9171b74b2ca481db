"""A record held from the other sinks (`FanOut._hold`) is let go by the done callback of what it waits for
(`sinks._on_loop`), on the loop's thread. A durable write is done on the writer's thread: its callback is queued with
`call_soon_threadsafe`, which wakes the loop. A gRPC refusal's record is held for its status's send, which the ingress
marks done on the loop's own thread: queued through `call_soon_threadsafe` too, it woke the loop once more a refusal
for nothing (its self-pipe written, then read on the next turn). On the loop's thread it is queued with `call_soon`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

from proxy.flow import ALLOW, Call, Decision, Outcome, TraceContext
from proxy.record.sinks import Durable, FanOut
from tests.record.test_sinks import Sink


class CountingLoop(asyncio.SelectorEventLoop):
    """asyncio's loop, counting what is queued on it through `call_soon_threadsafe` (each a wake-up of the loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.woken = 0

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any, context: Any = None) -> asyncio.Handle:
        self.woken += 1
        return super().call_soon_threadsafe(callback, *args, context=context)


def _refused(sinks: FanOut, sent: Durable) -> Durable | None:
    """A refusal's record, held until its status's send is done (`until`), as the gRPC ingress ends one."""
    trace = TraceContext(trace_id=1, span_id=2)
    call = Call("oip", "infer", "simple", trace)
    return sinks.on_end(call, Decision(ALLOW, None), Outcome(started_ns=1), frozenset(), until=sent)


async def _turns_until(done: Callable[[], bool]) -> None:
    for _ in range(20):  # a few turns of the loop at most: the record goes on the next once released
        if done():
            return
        await asyncio.sleep(0)


def _run(done_on_loop: bool) -> tuple[int, list[str]]:
    """A refusal's record held for its send, the send done on the loop's thread or on another: (the wake-ups that
    took, what the other sink recorded)."""
    spans = Sink("spans", durable=False)
    sinks = FanOut([spans])
    loop = CountingLoop()

    async def scenario() -> None:
        sent: Durable = concurrent.futures.Future()
        assert _refused(sinks, sent) is None  # no durable write: nothing for the reply to wait for
        await _turns_until(lambda: False)
        assert spans.seen == []  # held while the status is being sent
        if done_on_loop:
            sent.set_result(None)  # the ingress, on the loop: the status is sent
        else:
            writer = threading.Thread(target=sent.set_result, args=(None,))  # a writer's thread
            writer.start()
            writer.join()
        await _turns_until(lambda: bool(spans.seen))

    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    return loop.woken, spans.seen


def test_a_send_done_on_the_loops_thread_lets_its_record_go_without_waking_the_loop() -> None:
    woken, seen = _run(done_on_loop=True)
    assert seen == ["simple"]
    assert woken == 0


def test_a_write_done_on_another_thread_wakes_the_loop_to_let_its_record_go() -> None:
    woken, seen = _run(done_on_loop=False)
    assert seen == ["simple"]
    assert woken == 1
