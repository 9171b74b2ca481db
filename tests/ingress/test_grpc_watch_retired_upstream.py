"""A health watch (`grpc.health.v1.Health/Watch`) relayed to an upstream that a reload moves to another address (or
removes): the reload retires that upstream's channel, which closes once its calls end, and a watch ends only when
its client leaves. So the watch went on relaying the old server's health for as long as the client's channel lived
(days), to a client whose calls now go to the new server, and the retired channel, with its connection to a server
the config no longer names, stayed open as long. Such a watch now ends at the reload, OK, as a drain ends it: the
client's channel watches again, through the proxy, and is answered by the upstream in force."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc_health_checked import CONFIG, SERVING
from tests.ingress.test_grpc_health_watched import NOT_SERVING, WATCH, Watched
from tests.servers.otlp_receiver import OtlpReceiver


async def _made(status: bytes) -> Watched:
    watched = Watched()  # its Events on the test loop
    watched.status = status
    return watched


async def _serve(handler: Watched) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@pytest.fixture
def moved(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any
) -> Iterator[tuple[ProxyHandle, Watched, Watched, int]]:
    """The proxy in front of one upstream, SERVING, and a second one, NOT_SERVING, which a reload moves it to."""
    old, new = loop_thread.run(_made(SERVING)), loop_thread.run(_made(NOT_SERVING))
    server, port = loop_thread.run(_serve(new))
    try:
        with proxied(loop_thread, otlp, make_proxy, CONFIG, old) as handle:
            yield handle, old, new, port
    finally:
        loop_thread.run(server.stop(None))


def test_a_reload_moving_the_upstream_ends_a_health_watch_relayed_to_the_old_one(
    moved: tuple[ProxyHandle, Watched, Watched, int], loop_thread: LoopThread, otlp: OtlpReceiver, tmp_path: Path
) -> None:
    handle, old, new, port = moved
    path = tmp_path / "moved.yaml"
    text = CONFIG.replace("${UPSTREAM}", f"127.0.0.1:{port}").replace("${OTLP}", f"http://127.0.0.1:{otlp.port}")
    path.write_text(text.replace("${STORE}", str(tmp_path / "lineage.db")))
    with grpc.insecure_channel(handle.grpc) as channel:
        call = channel.unary_stream(WATCH)(b"", timeout=30)
        assert next(call) == SERVING and old.watching == 1

        async def reload() -> bool:
            return bool(handle.process.reload(str(path)))

        assert loop_thread.run(reload())

        async def old_watch_ended() -> None:
            await asyncio.wait_for(old.cancelled.wait(), 5)

        try:
            loop_thread.run(old_watch_ended())
        except TimeoutError:
            pytest.fail("the watch still relays the old upstream's health after the reload moved it")
        assert list(call) == [] and call.code() == grpc.StatusCode.OK  # ended as a drain ends it: watch again
        again = channel.unary_stream(WATCH)(b"", timeout=30)
        assert next(again) == NOT_SERVING and new.watching == 1  # the upstream in force answers now
        again.cancel()
