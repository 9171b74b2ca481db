"""A unary call's upstream call (grpc.aio's call object, and grpc core's under it) is freed once the reply is on its
way, not kept: the ingress holds it only until the loop's next turn (`GrpcIngress._free_after_reply`), so that
freeing it does not delay the reply."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc.aio._channel import UnaryUnaryMultiCallable

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc import CONFIG, SERVICE, _request
from tests.ingress.test_grpc_unary_metadata import REPLY, Echoing
from tests.servers.otlp_receiver import OtlpReceiver


def test_the_upstream_calls_of_unary_calls_are_freed_once_their_replies_are_sent(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[weakref.ref[Any]] = []  # every unary call the proxy made upstream
    call = UnaryUnaryMultiCallable.__call__

    def kept(self: UnaryUnaryMultiCallable[Any, Any], *args: Any, **kwargs: Any) -> Any:
        rpc = call(self, *args, **kwargs)
        made.append(weakref.ref(rpc))
        return rpc

    monkeypatch.setattr(UnaryUnaryMultiCallable, "__call__", kept)
    with (
        proxied(loop_thread, otlp, make_proxy, CONFIG, Echoing()) as proxy,
        grpc.insecure_channel(proxy.grpc) as channel,
    ):
        infer = channel.unary_unary(SERVICE + "ModelInfer")
        for _ in range(5):
            assert infer(_request(), timeout=10) == REPLY

        async def alive() -> int:
            # a turn of the loop after every reply was sent: whatever the ingress held until then is let go
            gc.collect()
            return sum(ref() is not None for ref in made)

        assert len(made) >= 5 and loop_thread.run(alive()) == 0
