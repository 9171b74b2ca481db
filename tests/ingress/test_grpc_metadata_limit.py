"""A call's metadata past grpc's default 8 KiB limit (`grpc.max_metadata_size`, a soft limit: past it grpc refuses
calls at random, RESOURCE_EXHAUSTED, up to its hard limit, 16 KiB) had no outcome a client could count on: 64 labels of
128 characters in `x-data-labels`, which the labels' grammar allows, were refused one call in five or so, by the
proxy's own server (before any handler: unrecorded), by the upstream's, or, in the reply's lineage, by the client's
channel (the record said OK). The proxy now takes a call's metadata up to `limits.max_header_bytes` every time, and
refuses, recorded and naming the limit, a call whose metadata as forwarded would pass the 8 KiB an upstream's gRPC
server takes by default, every time."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import INFER, Answering, proxied, recorded, traced
from tests.ingress.test_grpc import _request
from tests.ingress.test_grpc_streams import CONFIG
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_reload import reload

CALLS = 30
BASE = 0x3E7A_0000


def labels(n: int) -> str:
    """`n` labels of 128 characters each, as the grammar allows (at most 64)."""
    return ",".join(f"{i:02d}" + "x" * 126 for i in range(n))


Counting = Answering  # a model answering each ModelInfer with nothing, the requests that reached it counted


@pytest.fixture
def counting(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[grpc.Channel, Counting]]:
    upstream = Counting()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy, grpc.insecure_channel(proxy.grpc) as ch:
        yield ch, upstream


def outcomes(channel: grpc.Channel, metadata: list[tuple[str, str]], calls: int = CALLS) -> collections.Counter[str]:
    got: collections.Counter[str] = collections.Counter()
    for _ in range(calls):
        try:
            channel.unary_unary(INFER)(_request(), timeout=10, metadata=metadata)
            got["OK"] += 1
        except grpc.RpcError as exc:
            got[exc.code().name] += 1
    return got


def test_metadata_past_an_upstreams_limit_is_refused_every_time_and_recorded(
    counting: tuple[grpc.Channel, Counting], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    channel, upstream = counting
    caplog.set_level(logging.INFO, logger=ACCESS)
    assert outcomes(channel, [("x-data-labels", labels(64))]) == {"RESOURCE_EXHAUSTED": CALLS}
    assert upstream.reached == 0  # refused by the proxy, never by the upstream's grpc at random
    trace_id, traceparent = traced(1, BASE)
    with pytest.raises(grpc.RpcError) as refused:
        channel.unary_unary(INFER)(
            _request(), timeout=10, metadata=[("x-data-labels", labels(64)), ("traceparent", traceparent)]
        )
    assert "grpc.max_metadata_size" in (refused.value.details() or "")
    span, line = recorded(otlp, caplog, trace_id)
    assert span.attributes["error.type"] == "request_too_large"  # refused before it was read
    assert line.status == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


def test_metadata_under_the_limit_is_taken_every_time(counting: tuple[grpc.Channel, Counting]) -> None:
    channel, upstream = counting
    assert outcomes(channel, [("x-data-labels", labels(48))]) == {"OK": CALLS}
    assert upstream.reached == CALLS


def test_a_reload_lowering_max_header_bytes_bounds_grpc_metadata_every_time(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, tmp_path: Path
) -> None:
    upstream = Counting()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy:
        path = tmp_path / "reloaded.yaml"
        config = (
            CONFIG.replace("${UPSTREAM}", proxy.config.upstreams[0].grpc or "")
            .replace("${OTLP}", f"http://127.0.0.1:{otlp.port}")
            .replace("${STORE}", str(tmp_path / "lineage.db"))
        )
        path.write_text(config + "limits: {max_header_bytes: 2048}\n")
        assert reload(proxy, loop_thread, path)

        async def settled() -> None:
            await asyncio.wait_for(proxy.process.settled(), 10)

        loop_thread.run(settled())
        with grpc.insecure_channel(proxy.grpc) as channel:  # a new connection: the new server's
            assert outcomes(channel, [("x-data-labels", labels(24))], 5) == {"RESOURCE_EXHAUSTED": 5}
    assert upstream.reached == 0
