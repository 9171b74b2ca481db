"""A reload applies `limits` to new connections (README), and the gRPC listener's take `limits.idle_timeout_s` (a
connection with no call closed, a silent one pinged) and `limits.header_timeout_s` (its handshake, a ping's answer)
from the server they reach: a reload that changes either starts a new server for them, as one that changes
`limits.max_body_bytes` does. The server the listener started with kept them for good, the reload said nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.certs import Authority
from tests.harness import LoopThread
from tests.ingress.test_grpc_handshake_bounded import HELLO_START, PREFACE, closed_within
from tests.servers.h2_wire import frame
from tests.test_reload import reload

SETTINGS = 4
CONFIG = """
listen:
  http: 127.0.0.1:0
  grpc: 127.0.0.1:0
TLS
upstreams: [{name: u, url: "http://127.0.0.1:9", protocol: openai, checkpoint: ck}]
routes: [{model: "*", upstream: u}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: null}
limits: {idle_timeout_s: IDLE, header_timeout_s: HEADER}
"""


def reloaded(
    make_proxy: Any, loop_thread: LoopThread, tmp_path: Path, idle: float, header: float, tls: bool = False
) -> int:
    """A proxy started with 60 s for both, reloaded with `idle` and `header` (its TLS files as they were): its gRPC
    port once the reload is in place."""
    settings = ""
    if tls:
        pair = Authority(tmp_path).issue("proxy", common_name="proxy", server=True)
        settings = f'  tls: {{cert: "{pair.cert}", key: "{pair.key}"}}'
    text = CONFIG.replace("TLS", settings)
    proxy = make_proxy(text.replace("IDLE", "60").replace("HEADER", "60"), wait="none")
    path = tmp_path / "reloaded.yaml"
    path.write_text(text.replace("IDLE", str(idle)).replace("HEADER", str(header)))
    assert reload(proxy, loop_thread, path)

    async def settled() -> None:
        await asyncio.wait_for(proxy.process.settled(), 10)

    loop_thread.run(settled())
    return int(proxy.bound.grpc.port)


def test_a_reload_shortening_idle_timeout_closes_a_grpc_connection_with_no_call_by_it(
    make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    port = reloaded(make_proxy, loop_thread, tmp_path, 0.5, 60)
    assert closed_within(port, PREFACE + frame(SETTINGS, 0, 0, b""), 10.0) < 5.0


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
def test_a_reload_shortening_header_timeout_bounds_a_grpc_handshake_by_it(
    make_proxy: Any, loop_thread: LoopThread, tmp_path: Path, tls: bool
) -> None:
    """With TLS, its files unchanged: a new certificate alone is taken by the server serving; these are not."""
    port = reloaded(make_proxy, loop_thread, tmp_path, 60, 0.5, tls)
    # a handshake begun and never finished: the preface and no SETTINGS frame, a ClientHello's first bytes
    assert closed_within(port, HELLO_START if tls else PREFACE, 10.0) < 5.0
