"""A gRPC call leaves none of the proxy's objects (its Exchange, Call, Outcome, observer; the listener's per-call
state; its frames) in a reference cycle for the collector, however it ends: answered, cancelled or left by its client,
denied, or failed by its upstream, unary, ModelStreamInfer or passthrough. grpc's own objects are not the proxy's.
Until 2026-12-06 a stream whose upstream ended it while the proxy wrote it a message (grpc/grpc#36066's race, INTERNAL
to the client: every stream of 50 messages whose upstream ended it after its first) left its relay's frames with its
Exchange in a cycle: the writer's error, raised through `_stop`, held `_stop`'s frame, which held the writer. Run
interpreted, where frames exist."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import pytest

from proxy.ingress import grpc as grpc_ingress
from tests.harness import LoopThread, ProxyHandle, dead_port
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc import CONFIG, SERVICE, _request
from tests.ingress.test_grpc_refusal_frees_its_call import left
from tests.servers.otlp_receiver import OtlpReceiver

INFER, STREAM, ECHO = SERVICE + "ModelInfer", SERVICE + "ModelStreamInfer", "/test.Streams/Echo"
ZONED = (
    CONFIG.replace("default_purpose: assistant}", "default_purpose: assistant, passthrough: forward}")
    + "zones: [{name: health, labels: [health], allow_purposes: [research]}]\n"
)
HEALTH, FAIL, HOLD = ("x-data-labels", "health"), ("x-how", "fail"), ("x-how", "hold")
HOLDING = threading.Event()  # the upstream holds a call (`hold`): the proxy has it, relayed


class Upstream(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Answers ModelInfer, and each message of ModelStreamInfer or a passthrough stream (`Echo`), with an empty message;
    as its call's `x-how` says, ends the call UNAVAILABLE (`fail`: a stream's after its first reply) or holds it until
    cancelled (`hold`)."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == INFER:
            return grpc.unary_unary_rpc_method_handler(self._infer)
        if details.method in (STREAM, ECHO):
            return grpc.stream_stream_rpc_method_handler(self._stream)
        return None

    async def _infer(self, request: bytes, context: Any) -> bytes:
        await self._how(context)
        return b""

    async def _stream(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for _ in requests:
            yield b""
            await self._how(context)

    async def _how(self, context: Any) -> None:
        how = dict(context.invocation_metadata()).get("x-how")
        if how == "fail":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "going away")
        if how == "hold":
            HOLDING.set()
            await asyncio.Event().wait()


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[ProxyHandle]:
    with proxied(loop_thread, otlp, make_proxy, ZONED, Upstream()) as proxy:
        yield proxy


def _unary(channel: grpc.Channel, *metadata: tuple[str, str]) -> None:
    channel.unary_unary(INFER)(_request(), timeout=10, metadata=metadata)


def _stream(channel: grpc.Channel, *metadata: tuple[str, str], method: str = STREAM, messages: int = 2) -> None:
    message = _request() if method == STREAM else b"x"
    list(channel.stream_stream(method)(iter([message] * messages), timeout=10, metadata=metadata))


def _ends(
    code: grpc.StatusCode, call: Callable[[grpc.Channel], None], racing: bool = False
) -> Callable[[grpc.Channel], None]:
    """`call`, which must end with `code` (or, `racing`, INTERNAL, for a write that met the upstream's end:
    grpc/grpc#36066; a call that writes no upstream after its end cannot meet it)."""
    codes = (code, grpc.StatusCode.INTERNAL) if racing else (code,)

    def ended(channel: grpc.Channel) -> None:
        with pytest.raises(grpc.RpcError) as failed:
            call(channel)
        assert failed.value.code() in codes, failed.value

    return ended


def _cancelled(channel: grpc.Channel) -> None:
    HOLDING.clear()
    future = channel.unary_unary(INFER).future(_request(), metadata=[HOLD])
    assert HOLDING.wait(10)  # cancelled once the proxy has relayed it, not before it saw the call (the reread's find)
    future.cancel()
    with pytest.raises(grpc.FutureCancelledError):
        future.result(timeout=10)


def _left_mid_stream(channel: grpc.Channel) -> None:
    stream = channel.stream_stream(STREAM)(iter([_request()]), metadata=[HOLD])
    next(stream)  # its first reply; then the client leaves
    stream.cancel()


UNAVAILABLE, DENIED = grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.PERMISSION_DENIED
WAYS: dict[str, Callable[[grpc.Channel], None]] = {
    "unary-answered": _unary,
    "stream-answered": _stream,
    "passthrough-answered": lambda channel: _stream(channel, method=ECHO),
    "unary-cancelled": _cancelled,
    "stream-left": _left_mid_stream,
    "unary-denied": _ends(DENIED, lambda channel: _unary(channel, HEALTH)),
    "stream-denied": _ends(DENIED, lambda channel: _stream(channel, HEALTH)),
    "unary-upstream-fails": _ends(UNAVAILABLE, lambda channel: _unary(channel, FAIL)),
    # the client's 50 messages are written to the upstream's call as it ends: a write meets its end
    "stream-upstream-fails": _ends(UNAVAILABLE, lambda channel: _stream(channel, FAIL, messages=50), racing=True),
    "passthrough-upstream-fails": _ends(
        UNAVAILABLE, lambda channel: _stream(channel, FAIL, method=ECHO, messages=50), racing=True
    ),
}


@pytest.mark.interpreted
@pytest.mark.parametrize("way", list(WAYS))
def test_a_grpc_call_leaves_none_of_the_proxys_objects_in_a_reference_cycle(proxy: ProxyHandle, way: str) -> None:
    assert left(proxy, WAYS[way]) == []


@pytest.mark.interpreted
@pytest.mark.parametrize("call", [_unary, _stream], ids=["unary", "stream"])
def test_a_grpc_call_whose_upstream_is_unreachable_leaves_none_of_the_proxys_objects_in_a_reference_cycle(
    make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver, call: Callable[[grpc.Channel], None]
) -> None:
    proxy = make_proxy(ZONED, wait="none", UPSTREAM=f"127.0.0.1:{dead_port()}", OTLP=f"http://127.0.0.1:{otlp.port}")
    assert left(proxy, _ends(UNAVAILABLE, call)) == []


class WriteFailed(RuntimeError):
    """What a writer raises that `_stop` does not expect (neither a cancel, nor grpc's error, nor a ProxyError)."""


@pytest.mark.interpreted
@pytest.mark.parametrize("method", [STREAM, ECHO], ids=["stream", "passthrough"])
@pytest.mark.parametrize("upstream", ["half_closed", "cancelled"])
def test_a_stream_whose_writer_fails_with_an_error_of_another_type_leaves_none_of_the_proxys_objects_in_a_cycle(
    proxy: ProxyHandle, monkeypatch: pytest.MonkeyPatch, method: str, upstream: str
) -> None:
    # each stream's second write fails with what `_stop` did not catch (`WriteFailed`), its upstream's call half-closed
    # first, which the upstream then ends OK: the error went on through `_stop`, whose frame its traceback held, with
    # the writer, which held it: until 2026-12-06 a cycle (only the types `_stop` catches had their traceback dropped).
    # Or the upstream's call cancelled first: the relay's read failed too (CANCELLED, kept in the relay's frame, which
    # its traceback held) and `_stop` raised before the relay let it go: a cycle until 2026-12-06 (the lead's)
    writes = itertools.count()
    write = grpc_ingress._write

    async def failing(rpc: Any, message: bytes) -> bool:
        if next(writes) % 2 == 0:  # (each stream's first; the streams run one after the other)
            return await write(rpc, message)
        if upstream == "cancelled":
            rpc.cancel()
        else:
            await rpc.done_writing()
        raise WriteFailed("injected")

    monkeypatch.setattr(grpc_ingress, "_write", failing)
    # its log line (the error, logged as internal) kept by no handler: pytest's keep their records, and with them the
    # error, which kept the cycle from the collector's garbage
    monkeypatch.setattr(grpc_ingress.log, "propagate", False)
    monkeypatch.setattr(grpc_ingress.log, "handlers", [logging.NullHandler()])
    assert left(proxy, _ends(grpc.StatusCode.INTERNAL, lambda channel: _stream(channel, method=method))) == []
