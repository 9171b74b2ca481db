"""A gRPC call refused, or left by its client, leaves none of the proxy's frames in a reference cycle for the
collector. A refusal is answered by grpc's abort, whose error grpc keeps with the call's state (which the servicer
context, held by every handler frame, holds): it gathered a traceback through the proxy's frames (`grpc_entry`'s
`call` now drops it). A call its client left ended with the cancel kept in variables (the handler's `failure`, a
stream's `relayed` and `failed`, `_Ends.close`'s `error`) of the frames its traceback held. Before 2026-12-05 each
such call left its handler's frames (`call`, `unary` or `stream`, `close`, `_abort`) in cycles. Run interpreted,
where frames exist."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied, traced
from tests.ingress.test_grpc import _request
from tests.ingress.test_grpc_health_checked import CONFIG as HEALTH_CONFIG
from tests.ingress.test_grpc_health_watched import WATCH, Watched
from tests.ingress.test_grpc_metadata_limit import INFER, Counting, labels
from tests.ingress.test_grpc_streams import CONFIG, SERVICE
from tests.servers.otlp_receiver import OtlpReceiver

MANY = [("x-data-labels", "pii")] * 24  # over limits.max_headers: HeaderTooLarge
OVER = [("x-data-labels", labels(64))]  # over the 8 KiB an upstream's grpc takes: RequestTooLarge (`raise over`)


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[ProxyHandle]:
    with proxied(loop_thread, otlp, make_proxy, CONFIG + "limits: {max_headers: 20}\n", Counting()) as proxy:
        yield proxy


class Silent(grpc.GenericRpcHandler):  # type: ignore[misc]
    """An upstream that never answers: its client's deadline ends the call, and the proxy's handler is cancelled."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == INFER:
            return grpc.unary_unary_rpc_method_handler(self._never)
        if details.method == SERVICE + "ModelStreamInfer":
            return grpc.stream_stream_rpc_method_handler(self._never_streaming)
        return None

    async def _never(self, request: bytes, context: Any) -> bytes:
        await asyncio.Event().wait()
        return b""

    async def _never_streaming(self, requests: Any, context: Any) -> None:
        async for _ in requests:
            await asyncio.Event().wait()


@pytest.fixture
def silent(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[ProxyHandle]:
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Silent()) as proxy:
        yield proxy


def _unary(channel: grpc.Channel, metadata: list[tuple[str, str]], timeout: float) -> None:
    channel.unary_unary(INFER)(_request(), timeout=timeout, metadata=metadata)


def _stream(channel: grpc.Channel, metadata: list[tuple[str, str]], timeout: float) -> None:
    list(channel.stream_stream(SERVICE + "ModelStreamInfer")(iter([_request()]), timeout=timeout, metadata=metadata))


@pytest.mark.interpreted
@pytest.mark.parametrize(
    ("call", "metadata", "code"),
    [(_unary, MANY, grpc.StatusCode.INVALID_ARGUMENT), (_unary, OVER, grpc.StatusCode.RESOURCE_EXHAUSTED),
     (_stream, MANY, grpc.StatusCode.INVALID_ARGUMENT), (_stream, OVER, grpc.StatusCode.RESOURCE_EXHAUSTED)],
    ids=["unary-many-entries", "unary-over-upstream-bound", "stream-many-entries", "stream-over-upstream-bound"],
)  # fmt: skip
def test_a_refused_grpc_call_leaves_no_frame_in_a_reference_cycle(
    proxy: ProxyHandle,
    call: Callable[[grpc.Channel, list[tuple[str, str]], float], None],
    metadata: list[tuple[str, str]],
    code: grpc.StatusCode,
) -> None:
    assert _frames_left(proxy, call, metadata, code) == []


@pytest.mark.interpreted
@pytest.mark.parametrize("call", [_unary, _stream], ids=["unary", "stream"])
def test_a_grpc_call_its_client_leaves_leaves_no_frame_in_a_reference_cycle(
    silent: ProxyHandle, call: Callable[[grpc.Channel, list[tuple[str, str]], float], None]
) -> None:
    # the client's deadline passes while the upstream is silent: the proxy's handler is cancelled
    assert _frames_left(silent, call, [], grpc.StatusCode.DEADLINE_EXCEEDED, timeout=0.5) == []


class Failing(Watched):
    """A health watch the upstream ends with an error status after its first: an upstream's error (`_upstream_error`)."""

    async def _watch(self, request: bytes, context: Any) -> None:
        await context.write(self.status)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "going away")


@pytest.fixture(params=[Watched, Failing], ids=["client-leaves", "upstream-fails"])
def watched(
    request: pytest.FixtureRequest, loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any
) -> Iterator[tuple[ProxyHandle, grpc.StatusCode]]:
    async def made() -> Watched:
        made: Watched = request.param()  # its Events on the test loop
        return made

    code = grpc.StatusCode.DEADLINE_EXCEEDED if request.param is Watched else grpc.StatusCode.UNAVAILABLE
    with proxied(loop_thread, otlp, make_proxy, HEALTH_CONFIG, loop_thread.run(made())) as proxy:
        yield proxy, code


@pytest.mark.interpreted
def test_a_health_watch_ended_by_its_client_or_upstream_leaves_no_frame_in_a_reference_cycle(
    watched: tuple[ProxyHandle, grpc.StatusCode], otlp: OtlpReceiver
) -> None:
    # the upstream sends its status, then nothing (the client's deadline passes, the proxy's watch is cancelled) or an
    # error status: what ended the relay (`relayed`) was raised again by `watch`, which kept it. Each call's span is
    # waited for, so that its handler has ended
    proxy, code = watched
    calls = iter(range(3))

    def watch(channel: grpc.Channel, metadata: list[tuple[str, str]], timeout: float) -> None:
        trace_id, traceparent = traced(next(calls), 0x5A7D_0000)
        try:
            list(channel.unary_stream(WATCH)(b"", timeout=timeout, metadata=[("traceparent", traceparent)]))
        finally:
            otlp.by_trace(trace_id)

    assert _frames_left(proxy, watch, [], code, timeout=0.5 if code is grpc.StatusCode.DEADLINE_EXCEEDED else 10) == []


def _frames_left(
    proxy: ProxyHandle,
    call: Callable[[grpc.Channel, list[tuple[str, str]], float], None],
    metadata: list[tuple[str, str]],
    code: grpc.StatusCode,
    timeout: float = 10,
) -> list[str]:
    """What of the proxy's 3 calls ended with `code` left in reference cycles (`left`)."""

    def once(channel: grpc.Channel) -> None:
        with pytest.raises(grpc.RpcError) as refused:
            call(channel, metadata, timeout)
        assert refused.value.code() == code, refused.value

    return left(proxy, once)


def left(proxy: ProxyHandle, once: Callable[[grpc.Channel], None]) -> list[str]:
    """What 3 calls `once` makes left in reference cycles of the proxy's own: its frames (their functions' names) and
    its objects (their types' names: an Exchange, a Call, an observer), with the collector off while they ran."""
    with grpc.insecure_channel(proxy.grpc) as channel:
        gc.collect()
        gc.disable()
        try:
            for _ in range(3):
                once(channel)
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            found = [
                o.f_code.co_name if type(o).__name__ == "frame" else type(o).__qualname__
                for o in gc.garbage
                if (
                    type(o).__name__ == "frame"
                    and _proxys(o.f_code.co_filename)
                    and o.f_code.co_name not in _BACKGROUND
                )
                or type(o).__module__.startswith(_A_CALLS)
            ]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    return found


# a proxy's background tasks, not a call's: an earlier test's proxy (the loop is shared), stopped, may leave their
# frames for the same collection (`['_sweep', '_flush_loop']` seen run beside other gRPC test files)
_BACKGROUND = frozenset({
    "_sweep", "_flush_loop", "_snapshot_loop", "_publish_metrics", "_beat", "_keep_fresh", "_reload_queued",
})  # fmt: skip


# where the objects of a call are defined (its Exchange, Call, Outcome, observers, the listener's per-call state), not
# a process's (its pipeline, recorder, whose background tasks an earlier test's stopped proxy may still end)
_A_CALLS = ("proxy.exchange", "proxy.flow", "proxy.protocols.", "proxy.ingress.")


def _proxys(filename: str) -> bool:
    """Whether a frame's code is the proxy's own (not grpc's, asyncio's or the test's)."""
    return "/proxy/" in filename
