"""A relayed stream's writer that raises SystemExit or KeyboardInterrupt (`_stop`): asyncio gives either to the loop's
runner as the writer's task raises it (the loop stops: the process is ending), and a relay's `_stop` that awaits the
writer then raises it on as it is, the same exception with its traceback (where it was raised, which a process's
last words print), not as the new RuntimeError a writer's defect of another type becomes (whose traceback is dropped:
a reference cycle with the call's frames; one left by an ending process costs nothing)."""

from __future__ import annotations

import asyncio
import traceback

import pytest

from proxy.ingress.grpc import _stop


class Rpc:
    """An upstream's call as `_stop` sees it: one it cancels."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> bool:
        self.cancelled = True
        return True


@pytest.mark.parametrize("kind", [SystemExit, KeyboardInterrupt])
def test_a_writers_system_exit_or_keyboard_interrupt_goes_on_through_stop_as_it_is(
    kind: type[BaseException],
) -> None:
    raised = kind("the writer's")

    async def pump() -> None:
        raise raised

    loop = asyncio.new_event_loop()
    try:
        writer = loop.create_task(pump())
        with pytest.raises(kind) as ran:  # the writer's step: asyncio raises it out of the loop
            loop.run_until_complete(asyncio.sleep(0))
        assert ran.value is raised
        rpc = Rpc()
        with pytest.raises(kind) as stopped:
            loop.run_until_complete(_stop(rpc, writer, complete=False))
    finally:
        loop.close()
    assert stopped.value is raised and rpc.cancelled
    assert [frame.name for frame in traceback.extract_tb(raised.__traceback__)][-1] == "pump"
