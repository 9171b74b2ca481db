"""Calls in flight together, unary and streamed, on one connection and on several, are each let in, refused, forwarded
and recorded by their own metadata: their key, their purpose, their trace. A call's handler reads the metadata grpc.aio
gave `GrpcIngress.service` to look it up (`_ARRIVED`, kept in the context of the task grpc.aio makes for that call
alone, where it runs the look-up and then the handler): were that value ever another call's, a call would be let in
or refused by another caller's key or purpose, and recorded under another's trace. Not patched: this runs compiled too
(test_grpc_unary_metadata's identity test patches the handler, interpreted only)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

from tests.configs import ONE_GRPC_UPSTREAM
from tests.conftest import KEYS, sha
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, traced
from tests.ingress.test_grpc import SERVICE, _request
from tests.servers.otlp_receiver import OtlpReceiver

CONFIG = (
    ONE_GRPC_UPSTREAM
    + f"""
callers:
  - name: lab
    api_key_sha256: {sha(KEYS["ops"])}
    purposes: [assistant]
  - name: marketing
    api_key_sha256: {sha(KEYS["ads"])}
    purposes: [ads]
policy: {{anonymous: deny, default_purpose: assistant}}
telemetry:
  exporter: otlp
  endpoint: ${{OTLP}}
lineage:
  store: ${{STORE}}
"""
)
CALLS = 48  # 16 let in, 32 refused (by their purpose, or keyless)
CHANNELS = 4
# who sends the call, and with which purpose: (the key's name, its caller, the purpose, whether it is let in)
WHO = (("ops", "lab", "assistant", True), ("ads", "marketing", "assistant", False), (None, "anonymous", "ads", False),
       ("ads", "marketing", "ads", True), ("ops", "lab", "ads", False), (None, "anonymous", "assistant", False))  # fmt: skip
LET_IN = sum(CALLS // len(WHO) for *_, let_in in WHO if let_in)


class Noting(grpc.GenericRpcHandler):  # type: ignore[misc]
    """An OIP upstream that notes each call's `x-caller-note` and `traceparent`, and answers none of them until all
    LET_IN have arrived: every call let in is in flight at the proxy at once."""

    def __init__(self) -> None:
        self.notes: dict[str, str] = {}  # x-caller-note: the trace id of the traceparent that came with it
        self.arrived = 0
        self._lock = threading.Lock()
        self._all: asyncio.Event | None = None

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == SERVICE + "ModelInfer":
            return grpc.unary_unary_rpc_method_handler(self._infer)
        if details.method == SERVICE + "ModelStreamInfer":
            return grpc.stream_stream_rpc_method_handler(self._stream)
        return None

    async def _arrived(self, context: Any) -> None:
        metadata = dict(context.invocation_metadata())
        with self._lock:
            self.notes[metadata["x-caller-note"]] = metadata["traceparent"].split("-")[1]
            self.arrived += 1
            arrived = self.arrived
        if self._all is None:
            self._all = asyncio.Event()
        if arrived == LET_IN:
            self._all.set()
        await asyncio.wait_for(self._all.wait(), 20)

    async def _infer(self, request: bytes, context: Any) -> bytes:
        await self._arrived(context)
        return b"\x0a\x04held"

    async def _stream(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for _ in requests:
            await self._arrived(context)
            yield b""


@pytest.fixture
def channels(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[Noting, list[Any]]]:
    upstream = Noting()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy:
        opened = [grpc.insecure_channel(proxy.grpc) for _ in range(CHANNELS)]
        try:
            yield upstream, opened
        finally:
            for channel in opened:
                channel.close()


def _status(call: Any, stream: bool) -> grpc.StatusCode:
    try:
        list(call) if stream else call.result()
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        return code
    return grpc.StatusCode.OK


def _answer(caller: str, let_in: bool) -> grpc.StatusCode:
    """What a call's own key and purpose get it: a keyless call is refused for its key, a purpose its caller may not
    use for the purpose."""
    if let_in:
        return grpc.StatusCode.OK
    return grpc.StatusCode.UNAUTHENTICATED if caller == "anonymous" else grpc.StatusCode.PERMISSION_DENIED


def test_calls_in_flight_together_are_each_decided_and_recorded_by_their_own_metadata(
    channels: tuple[Noting, list[Any]], otlp: OtlpReceiver
) -> None:
    upstream, opened = channels
    calls = []
    for n in range(CALLS):
        key, caller, purpose, let_in = WHO[n % len(WHO)]
        trace_id, traceparent = traced(n, 0xC0DE0000)
        metadata = [("traceparent", traceparent), ("x-purpose", purpose), ("x-caller-note", f"n{n}")]
        if key is not None:
            metadata.append(("authorization", f"Bearer {KEYS[key]}"))
        channel, stream = opened[n % CHANNELS], n // len(WHO) % 2 == 1  # every kind of caller both ways, everywhere
        if stream:
            call = channel.stream_stream(SERVICE + "ModelStreamInfer")(
                iter([_request()]), metadata=metadata, timeout=30
            )
        else:
            call = channel.unary_unary(SERVICE + "ModelInfer").future(_request(), metadata=metadata, timeout=30)
        calls.append((call, stream, trace_id, caller, purpose, let_in))
    got = [(_status(call, stream), trace_id) for call, stream, trace_id, *_ in calls]
    assert got == [(_answer(caller, let_in), trace_id) for _, _, trace_id, caller, _, let_in in calls]
    # each call let in reached the upstream once, with its own trace
    assert upstream.notes == {f"n{n}": calls[n][2] for n in range(CALLS) if calls[n][5]}
    assert upstream.arrived == LET_IN
    spans = otlp.wait_for(lambda spans: len({s.trace_id for s in spans} & {c[2] for c in calls}) == CALLS)
    recorded: dict[str, list[tuple[str, str | None, str]]] = {}
    for span in spans:
        attributes = span.attributes
        recorded.setdefault(span.trace_id, []).append(
            (attributes["lineage.caller"], attributes.get("lineage.purpose"), attributes["lineage.decision"])
        )
    for _, _, trace_id, caller, purpose, let_in in calls:
        [(seen_caller, seen_purpose, decision)] = recorded[trace_id]  # one record a call, under its own trace
        assert (seen_caller, decision) == (caller, "allow" if let_in else "deny"), trace_id
        if let_in:
            assert seen_purpose == purpose, trace_id
