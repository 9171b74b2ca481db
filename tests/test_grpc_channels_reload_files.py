"""A reload's gRPC upstream TLS files are read with its config, off the event loop (`read_tls`), and handed to
`GrpcChannels.use`: it read them again on the loop, so a CA or client certificate on a hung mount (a FIFO nobody
writes stands in for one) held every call. The contents read decide whether the upstream's channel is replaced,
and the next channel is made with them."""

from __future__ import annotations

import os
from pathlib import Path

from proxy.config import Upstream, UpstreamTls
from proxy.transport.grpc_channels import GrpcChannels, read_tls
from tests.certs import Authority
from tests.harness import LoopThread


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
        channels.use([upstream], read={"triton": OSError("unreadable")})  # cannot be read: replaced, as before
        assert not channels.in_use(second)
        await channels.close()

    loop_thread.run(run())
