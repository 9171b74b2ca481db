"""What a client sends after a request that closes its connection (`Connection: close`, or HTTP/1.0 without
keep-alive) is not read, as RFC 9112 §9.6 says: that request is answered and the connection closes. It is no
malformed request (llhttp's "Data after `Connection: close`"): it was logged and counted as one, and the
connection stopped reading, so a client leaving while its request waited on the upstream went unnoticed and the
upstream call ran on."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_wire import (
    Origin,
    Replies,
    _until,
    connect,
    get,
    on_loop,
    only_connection,
    origin,
    proxy,
    read_all,
)

__all__ = ["origin", "proxy"]  # the fixtures, imported


@pytest.mark.parametrize(
    "first", [get("/a", "Connection: close"), b"GET /a HTTP/1.0\r\n\r\n"], ids=["close", "http/1.0"]
)
def test_a_request_sent_after_one_that_closes_is_not_read_nor_called_malformed(  # type: ignore[no-untyped-def]
    proxy, origin, first: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = origin
    caplog.set_level(logging.WARNING, "lineage_proxy")
    with connect(proxy) as sock:
        sock.sendall(first + get("/b", "X-Test: after"))
        status, fields, body = Replies(sock).next()
        assert status == 200 and body == b"ok:/a:" and fields.get("connection") == "close"
        assert read_all(sock) == b""  # nothing more: /b is not answered
    assert not server.marked()  # nor forwarded
    assert sum(s.framing_errors for s in proxy.process._servers) == 0
    assert not [r for r in caplog.records if "malformed" in r.getMessage()]


def test_a_client_leaving_after_sending_more_cancels_its_call(  # type: ignore[no-untyped-def]
    proxy: ProxyHandle, origin: tuple[Origin, str], loop_thread: LoopThread
) -> None:
    server, _ = origin
    assert server.arrived is not None and server.cancelled is not None
    with connect(proxy) as sock:
        sock.sendall(get("/never", "Connection: close"))
        loop_thread.run(asyncio.wait_for(server.arrived.wait(), 5))
        conn = on_loop(loop_thread, lambda: only_connection(proxy))
        sock.sendall(get("/b"))  # a pipelined request the proxy will not serve
        _until(lambda: on_loop(loop_thread, lambda: conn._broken), "the bytes after the close are taken")
    # the client is gone: the proxy hears of it and cancels the upstream call
    loop_thread.run(asyncio.wait_for(server.cancelled.wait(), 5))
