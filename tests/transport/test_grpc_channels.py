"""The gRPC upstream channels (`proxy.transport.grpc_channels`) across reloads, against a real grpc.aio
server: a channel is reused only while everything that shapes it (address, TLS settings, the TLS files'
contents) is the same; a replaced one closes once its calls in flight have ended."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import grpc.aio
import pytest

from proxy.config import Upstream, UpstreamTls
from proxy.transport.grpc_channels import GrpcChannels
from tests.certs import Authority
from tests.harness import LoopThread

ECHO, GATE = "/t.T/Echo", "/t.T/Gate"


class Upstreams(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Echo answers at once; Gate answers once the test opens the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.arrived = asyncio.Event()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == ECHO:
            return grpc.unary_unary_rpc_method_handler(self.echo)
        if details.method == GATE:
            return grpc.unary_unary_rpc_method_handler(self.gated)
        return None

    async def echo(self, request: bytes, context: object) -> bytes:
        return request

    async def gated(self, request: bytes, context: object) -> bytes:
        self.arrived.set()
        await self.gate.wait()
        return request


async def serve(handler: Upstreams, tls: tuple[Path, Path] | None = None) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    if tls is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        cert, key = tls
        credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return server, f"localhost:{port}"


async def echo(channel: grpc.aio.Channel) -> bytes | grpc.StatusCode:
    try:
        reply: bytes = await channel.unary_unary(ECHO)(b"hello", timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return reply


async def shut_down(channel: grpc.aio.Channel) -> None:
    """Until the channel is closed (bounded by the caller). Polled: grpc cannot watch a closing channel."""
    while channel.get_state() != grpc.ChannelConnectivity.SHUTDOWN:
        await asyncio.sleep(0.01)


@pytest.fixture
def pki(tmp_path: Path) -> Authority:
    return Authority(tmp_path)


def test_a_reload_that_adds_tls_makes_a_new_channel_that_speaks_tls(loop_thread: LoopThread, pki: Authority) -> None:
    """The review's case: the same upstream, now with `tls: {ca}`. The channel made in plaintext must not
    be reused: the call goes over TLS (here to a plaintext server, so it fails the handshake)."""

    async def main() -> None:
        server, address = await serve(Upstreams())
        channels = GrpcChannels()
        try:
            plain = Upstream(name="triton", protocol="oip", grpc=address)
            channels.use([plain])
            before = channels.channel(plain)
            assert await echo(before) == b"hello"
            over_tls = Upstream(name="triton", protocol="oip", grpc=address, tls=UpstreamTls(ca=str(pki.pair.cert)))
            channels.use([over_tls])
            after = channels.channel(over_tls)
            assert after is not before
            assert await echo(after) == grpc.StatusCode.UNAVAILABLE  # a TLS handshake with a plaintext server
            await asyncio.wait_for(shut_down(before), 5)  # nothing was in flight on the old one
        finally:
            await channels.close()
            await server.stop(None)

    loop_thread.run(main())


def test_a_replaced_channel_closes_once_its_call_in_flight_has_ended(
    loop_thread: LoopThread, pki: Authority, tmp_path: Path
) -> None:
    """Same settings but new contents in the CA file (a renewed bundle, then SIGHUP): a new channel for
    new calls; the call already on the old one finishes normally, then the old one closes."""
    server_cert = pki.issue("upstream", common_name="model.internal", server=True)
    (tmp_path / "other").mkdir()
    other = Authority(tmp_path / "other", "another CA")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pki.pair.cert.read_bytes())

    async def main() -> None:
        handler = Upstreams()
        server, address = await serve(handler, (server_cert.cert, server_cert.key))
        channels = GrpcChannels()
        try:
            upstream = Upstream(name="triton", protocol="oip", grpc=address, tls=UpstreamTls(ca=str(bundle)))
            channels.use([upstream])
            old = channels.channel(upstream)
            in_flight = old.unary_unary(GATE)(b"in flight", timeout=10)
            await asyncio.wait_for(handler.arrived.wait(), 5)

            channels.use([upstream])  # the same files, unchanged: the same channel
            assert channels.channel(upstream) is old
            bundle.write_bytes(pki.pair.cert.read_bytes() + other.pair.cert.read_bytes())
            channels.use([upstream])
            new = channels.channel(upstream)
            assert new is not old
            assert await echo(new) == b"hello"
            assert old.get_state() != grpc.ChannelConnectivity.SHUTDOWN  # its call is still running

            handler.gate.set()
            assert await in_flight == b"in flight"
            await asyncio.wait_for(shut_down(old), 5)
            assert channels.channel(upstream) is new
        finally:
            await channels.close()
            await server.stop(None)

    loop_thread.run(main())


def test_a_call_decided_before_a_reload_goes_the_old_way_without_replacing_the_new_channel(
    loop_thread: LoopThread, pki: Authority
) -> None:
    """A call admitted under the old config asks for the old upstream after the reload: it gets a channel
    of its own made that way, which closes after it; the config in force keeps its channel."""

    async def main() -> None:
        handler = Upstreams()
        server, address = await serve(handler)
        channels = GrpcChannels()
        try:
            plain = Upstream(name="triton", protocol="oip", grpc=address)
            over_tls = Upstream(name="triton", protocol="oip", grpc=address, tls=UpstreamTls(ca=str(pki.pair.cert)))
            channels.use([over_tls])
            current = channels.channel(over_tls)
            stale = channels.channel(plain)
            assert stale is not current
            assert await echo(stale) == b"hello"  # made the old way (plaintext), as that call was decided
            await asyncio.wait_for(shut_down(stale), 5)
            assert channels.channel(over_tls) is current
        finally:
            await channels.close()
            await server.stop(None)

    loop_thread.run(main())


def test_close_ends_retired_channels_too(loop_thread: LoopThread) -> None:
    async def main() -> None:
        handler = Upstreams()
        server, address = await serve(handler)
        channels = GrpcChannels()
        try:
            first = Upstream(name="triton", protocol="oip", grpc=address)
            channels.use([first])
            old = channels.channel(first)
            in_flight = old.unary_unary(GATE)(b"x", timeout=10)
            await asyncio.wait_for(handler.arrived.wait(), 5)
            channels.use([Upstream(name="triton", protocol="oip", grpc=address, timeout_s=5.0, region="eu")])
            assert channels.channel(first) is old  # timeouts and region do not shape a channel
            channels.use([])  # the upstream left the config: its channel is retired
            await channels.close()  # the proxy stops: the retired channel's call is cancelled, the channel closed
            assert old.get_state() == grpc.ChannelConnectivity.SHUTDOWN
            with pytest.raises(asyncio.CancelledError):
                await in_flight
        finally:
            await server.stop(None)

    loop_thread.run(main())


def test_a_reload_that_changes_the_stream_window_makes_new_channels(loop_thread: LoopThread) -> None:
    """limits.grpc_stream_window_bytes is a channel's from its making: a reload that changes it replaces every
    channel (the next call opens one with the new window); one that keeps it keeps them."""

    async def main() -> None:
        server, address = await serve(Upstreams())
        channels = GrpcChannels()
        try:
            upstream = Upstream(name="triton", protocol="oip", grpc=address)
            channels.use([upstream], 1 << 20)
            before = channels.channel(upstream)
            assert await echo(before) == b"hello"
            channels.use([upstream], 1 << 20)
            assert channels.channel(upstream) is before
            channels.use([upstream], 2 << 20)
            after = channels.channel(upstream)
            assert after is not before
            assert await echo(after) == b"hello"
            await asyncio.wait_for(shut_down(before), 5)  # nothing was in flight on the old one
        finally:
            await channels.close()
            await server.stop(None)

    loop_thread.run(main())
