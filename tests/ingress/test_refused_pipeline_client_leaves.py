"""A request refused at the wire (malformed, a head over the limits) pipelined behind a call in flight: the
connection reads no more requests, but it still hears its client leave, so the call in flight is cancelled
upstream, as any call whose client leaves is. Reading was paused at the refusal: the client's close went unseen
and the upstream call (a generation) ran on to its end or to timeout_s, for nobody."""

from __future__ import annotations

import asyncio

import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_wire import Origin, _until, connect, get, on_loop, only_connection, origin, proxy

__all__ = ["origin", "proxy"]  # the fixtures, imported


@pytest.mark.parametrize(
    "refused",
    [b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", get("/b", "X-Long: " + "a" * 70_000)],
    ids=["malformed", "head-over-limit"],
)
def test_a_client_leaving_after_a_refused_pipelined_request_cancels_the_call_in_flight(  # type: ignore[no-untyped-def]
    proxy: ProxyHandle, origin: tuple[Origin, str], loop_thread: LoopThread, refused: bytes
) -> None:
    server, _ = origin
    assert server.arrived is not None and server.cancelled is not None
    with connect(proxy) as sock:
        sock.sendall(get("/never"))
        loop_thread.run(asyncio.wait_for(server.arrived.wait(), 5))
        conn = on_loop(loop_thread, lambda: only_connection(proxy))
        sock.sendall(refused)
        _until(lambda: on_loop(loop_thread, lambda: conn._broken), "the refused request is read")
    loop_thread.run(asyncio.wait_for(server.cancelled.wait(), 5))  # the upstream hears of it
