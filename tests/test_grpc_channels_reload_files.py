"""A reload's gRPC upstream TLS files are read with its config, off the event loop (`read_tls`), and handed to
`GrpcChannels.use`: it read them again on the loop, so a CA or client certificate on a hung mount (a FIFO nobody
writes stands in for one) held every call. The contents read decide whether the upstream's channel is replaced,
and the next channel is made with them. The files the start read make the first channel (the first call read them
again, on the loop), and files the start could not read refuse their calls (the next call read them on the loop); a
reload that cannot read them is refused whole (tests/test_reload_upstream_tls_files_unusable.py)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from proxy.config import Upstream, UpstreamTls
from proxy.errors import UpstreamUnavailable
from proxy.transport.grpc_channels import GrpcChannels, read_tls
from tests.certs import Authority
from tests.harness import LoopThread
from tests.test_reload_tls import Hung


def test_a_reloads_grpc_upstream_files_are_taken_as_read_off_the_loop(loop_thread: LoopThread, tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    ca_file = tmp_path / "upstream-ca.pem"
    ca_file.write_bytes(Path(ca.pair.cert).read_bytes())
    upstream = Upstream(name="triton", protocol="oip", grpc="127.0.0.1:1", tls=UpstreamTls(ca=str(ca_file)))

    async def run() -> None:
        channels = GrpcChannels()
        channels.use([upstream])
        first = channels.channel(upstream)
        renewed = tmp_path / "renewed"
        renewed.mkdir()
        read = read_tls([upstream])  # (off the loop, in a reload) the file as renewed in place
        assert read == {"triton": (ca_file.read_bytes(), None, None)}
        read = {"triton": (Authority(renewed).pair.cert.read_bytes(), None, None)}
        ca_file.unlink()
        os.mkfifo(ca_file)  # its mount hangs from now on: a read on the loop would wait for good
        channels.use([upstream], read=read)
        assert not channels.in_use(first)  # renewed: replaced
        second = channels.channel(upstream)  # made with the files as read
        assert second is not first and channels.opened["triton"].files == read["triton"]
        await channels.close()

    loop_thread.run(run())


def test_the_first_channel_is_made_with_the_files_read_at_start(loop_thread: LoopThread, tmp_path: Path) -> None:
    """The start read them (`use`, before serving), and the first call's channel read them again, on the loop."""
    ca = Authority(tmp_path)
    ca_file = tmp_path / "upstream-ca.pem"
    ca_file.write_bytes(Path(ca.pair.cert).read_bytes())
    upstream = Upstream(name="triton", protocol="oip", grpc="127.0.0.1:1", tls=UpstreamTls(ca=str(ca_file)))

    async def run() -> None:
        channels = GrpcChannels()
        channels.use([upstream])  # the start
        Hung(ca_file)  # the mount hangs from the first call on
        try:
            channels.channel(upstream)
            assert channels.opened["triton"].files == (ca.pair.cert.read_bytes(), None, None)
        finally:
            await channels.close()

    try:
        loop_thread.run(run(), timeout=20)
    except TimeoutError:
        Hung(ca_file, made=True).release(loop_thread)
        pytest.fail("the first call's channel read the upstream's TLS files on the event loop, and waits on them")


def test_a_reload_whose_new_tls_files_cannot_be_read_refuses_their_calls(
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    """TLS settings whose files could not be read when `use` took them (the start's read, gone since the loader checked
    them): the next call read them on the loop (a hung mount held every call and the stop for good). Its calls are
    refused UNAVAILABLE, saying why, until a reload reads them."""
    ca = Authority(tmp_path)
    upstream = Upstream(name="triton", protocol="oip", grpc="127.0.0.1:1", tls=UpstreamTls(ca=str(ca.pair.cert)))
    renewed = tmp_path / "renewed-ca.pem"
    renewed.write_bytes(b"")
    moved = Upstream(name="triton", protocol="oip", grpc="127.0.0.1:1", tls=UpstreamTls(ca=str(renewed)))

    async def run() -> None:
        channels = GrpcChannels()
        channels.use([upstream])
        first = channels.channel(upstream)
        Hung(renewed)
        try:
            channels.use([moved], read={"triton": OSError(errno.EIO, "Input/output error")})
            assert not channels.in_use(first)  # made for the settings replaced
            with pytest.raises(UpstreamUnavailable, match=r"'triton': cannot read its TLS files \(Input/output error"):
                channels.channel(moved)
            assert channels.channel(upstream) is not first  # a call decided before: the files read for it
            channels.use([moved], read={"triton": (ca.pair.cert.read_bytes(), None, None)})  # readable again
            assert channels.opened.get("triton") is None
            assert channels.channel(moved) is channels.opened["triton"].channel
        finally:
            await channels.close()

    try:
        loop_thread.run(run(), timeout=20)
    except TimeoutError:
        Hung(renewed, made=True).release(loop_thread)
        pytest.fail("a call's channel read the upstream's TLS files on the event loop, and waits on them")
