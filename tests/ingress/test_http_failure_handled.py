"""A call's failure is answered outside the `except` block that caught it, so no other call meets it.

The handler used to await the failure's record (a new flow's first edge is durable before the reply) inside
`except ProxyError:`. A compiled coroutine suspended there leaves its exception as the thread's handled one:
every other call that ran meanwhile saw it in `sys.exc_info()`, and any exception it raised took it as its
`__context__` (a traceback logged for it told of another caller's refusal)."""

from __future__ import annotations

import concurrent.futures
import sys
import threading

import httpx

from proxy.flow import Call, Decision, Outcome
from tests.configs import ONE_UPSTREAM_STORED
from tests.servers.vllm_like import SERVED


class Holding:
    """A durable record sink that holds the first refused call's reply until released, and notes, for every
    call after it, the exception being handled as its record is made and what one raised then chains to."""

    name = "holding"
    durable = True

    def __init__(self) -> None:
        self.held: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.holding = threading.Event()
        self.seen: list[tuple[BaseException | None, BaseException | None]] = []

    def start(self) -> None:
        pass

    def on_end(
        self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]
    ) -> concurrent.futures.Future[None] | None:
        if not self.holding.is_set():
            self.holding.set()
            return self.held  # the refused call's reply waits for this "write"
        handled = sys.exc_info()[1]  # none here, outside any `except`: unless another call's is left over
        try:
            raise LookupError("raised while recording another call")
        except LookupError as raised:
            context = raised.__context__
        self.seen.append((handled, context))
        return None

    async def flush(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def metrics(self) -> tuple[str, ...]:
        return ()


def test_a_failure_being_answered_is_not_the_exception_other_calls_handle(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM_STORED, UPSTREAM=upstream)
    holding = Holding()
    proxy.process.runtime.sinks.swap(holding.name, holding)
    refused: concurrent.futures.Future[httpx.Response] = concurrent.futures.Future()

    def refused_call() -> None:
        try:
            refused.set_result(httpx.post(f"{proxy.url}/v1/chat/completions", content=b"{not json", timeout=30,
                                          headers={"Content-Type": "application/json"}))  # fmt: skip
        except BaseException as exc:
            refused.set_exception(exc)

    threading.Thread(target=refused_call, daemon=True).start()
    try:
        assert holding.holding.wait(30)  # the refusal is recorded and its reply waits for the record
        for _ in range(2):
            reply = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=30,
                               json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
            assert reply.status_code == 200, reply.text
    finally:
        holding.held.set_result(None)
    assert refused.result(30).status_code == 400
    assert holding.seen == [(None, None), (None, None)], [(repr(h), repr(c)) for h, c in holding.seen]
