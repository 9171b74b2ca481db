"""`Replacing` (a span exporter a reload replaced, kept beside its successor for the calls in flight): its flush and
stop reach the successor too when the replaced one's raise, where a plain sequence of awaits left the successor's
export thread running and its spans unflushed past the proxy's stop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

from proxy.record.sinks import Replacing


class Sink:
    name = "spans"
    durable = False

    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.done: list[str] = []

    def start(self) -> None:
        pass

    def on_end(self, *_: object) -> None:
        return None

    async def flush(self) -> None:
        self.done.append("flush")
        if self.fails:
            raise OSError("replaced one's failed")

    async def stop(self) -> None:
        self.done.append("stop")
        if self.fails:
            raise OSError("replaced one's failed")

    def metrics(self) -> Iterable[str]:
        return ()


def test_the_successor_is_flushed_and_stopped_when_the_replaced_ones_raise() -> None:
    replaced, successor = Sink(fails=True), Sink()
    replacing = Replacing(replaced, successor, 0, 1, lambda _: None)  # type: ignore[arg-type]
    for step in (replacing.flush, replacing.stop):
        with pytest.raises(OSError):
            asyncio.run(step())
    assert replaced.done == successor.done == ["flush", "stop"]
