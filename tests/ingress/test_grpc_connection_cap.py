"""`limits.max_connections` bounds the gRPC listener's connections too (README: past it, UNAVAILABLE): its server
was started without a bound, so one client opening connection after connection held a file descriptor (and grpc's
memory for each) per connection, past any cap, until the process could accept nothing, on either listener, nor open
an upstream's socket or its store."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

from tests.harness import LoopThread
from tests.ingress.test_grpc_handshake_bounded import PREFACE
from tests.servers.h2_wire import frame
from tests.test_reload import reload

SETTINGS = 4
CONFIG = """
listen:
  http: 127.0.0.1:0
  grpc: 127.0.0.1:0
upstreams: [{name: u, url: "http://127.0.0.1:9", protocol: openai, checkpoint: ck}]
routes: [{model: "*", upstream: u}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: null}
limits: {idle_timeout_s: 60, header_timeout_s: 60, max_connections: CAP}
"""


def connect(port: int) -> tuple[socket.socket, bool]:
    """A connection that sent the HTTP/2 preface and its SETTINGS, and whether the listener took it: answered with
    its own SETTINGS (True), or closed at once (False)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(10.0)
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0, b""))
    head = b""
    while len(head) < 9:
        try:
            data = sock.recv(9 - len(head))
        except ConnectionResetError:
            data = b""
        if not data:
            return sock, False
        head += data
    assert head[3] == SETTINGS, head
    return sock, True


def test_grpc_connections_past_max_connections_are_refused(make_proxy: Any) -> None:
    proxy = make_proxy(CONFIG.replace("CAP", "2"), wait="none")
    port = proxy.bound.grpc.port
    held = []
    try:
        for _ in range(2):
            sock, taken = connect(port)
            held.append(sock)
            assert taken
        for _ in range(3):
            sock, taken = connect(port)
            held.append(sock)
            assert not taken, "the gRPC listener took a connection past limits.max_connections"
        held.pop(0).close()  # one of the two it took goes: a new one is taken again
        deadline = time.monotonic() + 10.0
        while True:
            sock, taken = connect(port)
            held.append(sock)
            if taken:
                break
            assert time.monotonic() < deadline, "a connection that closed still counted against limits.max_connections"
    finally:
        for sock in held:
            sock.close()


def test_a_reload_lowering_max_connections_bounds_new_grpc_connections(
    make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    proxy = make_proxy(CONFIG.replace("CAP", "4096"), wait="none")
    path = tmp_path / "reloaded.yaml"
    path.write_text(CONFIG.replace("CAP", "1"))
    assert reload(proxy, loop_thread, path)

    async def settled() -> None:
        await asyncio.wait_for(proxy.process.settled(), 10)

    loop_thread.run(settled())
    port = proxy.bound.grpc.port
    first, taken = connect(port)
    try:
        assert taken
        second, taken = connect(port)
        second.close()
        assert not taken, "the gRPC listener took a connection past the reloaded limits.max_connections"
    finally:
        first.close()
