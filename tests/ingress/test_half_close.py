"""A client that sends its whole request, then shuts its writing side (`shutdown(SHUT_WR)`: `nc -N`, some load testers),
is taken as gone, as nginx takes it by default (1.22: nothing sent, logged 499): its FIN looks the same as a close's (an
SDK's timeout), which must cancel the upstream's call. Answering it (an `eof_received` that keeps the transport) left
every call whose client closed running upstream to its end and recorded as answered. README: "A client's FIN is its
leaving". On uvloop, as the proxy runs (`LoopThread`)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator

import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread, ProxyHandle, serving
from tests.ingress.test_wire import CONFIG, Origin, connect, get, read_all


@pytest.fixture
def origin(loop_thread: LoopThread) -> Iterator[tuple[Origin, str]]:
    server = Origin()
    with serving(loop_thread, server.app()) as url:
        yield server, url


@pytest.mark.parametrize("path", ["/never", "/gated"], ids=["before-its-head", "mid-stream"])
def test_a_client_that_half_closes_after_its_request_is_gone(  # type: ignore[no-untyped-def]
    origin, make_proxy, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    server, url = origin
    proxy: ProxyHandle = make_proxy(CONFIG + "logging: {access: true}\n", UPSTREAM=url)
    assert server.arrived is not None and server.cancelled is not None and server.gate is not None
    with connect(proxy) as sock:
        sock.sendall(get(path, "X-Test: 1") + get("/pipelined", "X-Test: 2"))
        loop_thread.run(asyncio.wait_for(server.arrived.wait(), 5))  # forwarded: the request was whole
        if path == "/gated":  # the reply's head and first piece are out
            loop_thread.run(server.gate.put(None))
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        sock.shutdown(socket.SHUT_WR)
        loop_thread.run(asyncio.wait_for(server.cancelled.wait(), 5))  # the upstream's call is cancelled
        rest = read_all(sock)
    assert b"HTTP/1.1" not in rest  # no reply (nor the pipelined request's)
    assert [r[1] for r in server.marked()] == [path]
    loop_thread.run(proxy.process.runtime.sinks.flush())
    lines = [r for r in caplog.records if r.name == ACCESS]
    # the pipelined request, read and never served, is recorded too: its client left (no record before 2026-12-05)
    assert [(line.code, line.status) for line in lines] == [
        ("client_disconnected", 200 if path == "/gated" else 0),
        ("client_disconnected", 0),
    ]
