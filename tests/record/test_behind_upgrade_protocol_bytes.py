"""The bytes of the protocol a request asked to upgrade to (`Connection: Upgrade`), sent behind it before its answer:
never recorded as a request. Found by a review of 2026-12-05 (helper revrecords3): a head only partly read when the
upgrade request is answered is recorded (`HttpConnection._head_cut`), and the HTTP/2 connection preface
("PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n", RFC 9113 §3.4) is one to llhttp until its last line: a preface cut by the
read's end (a client writing it in pieces) was recorded as a call, `deny` `invalid_request`, method PRI, path "*"; a
piece of its method alone ("PR") as one with no method or path. The whole preface fails llhttp: dropped, as before.
Also: one pipelined behind an upgrade request whose reply is forwarded (it says `Connection: close`, `closing`) is
recorded as behind one asking to upgrade, not as behind an HTTP/1.0 stream (so since 54c5f52).
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.harness import LoopThread
from tests.record.test_behind_upgrade_follow_ups import _asking, _config, _read_all
from tests.record.test_pipelined_behind_upgrade import UPGRADE
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_drain_stop_records import HOLD, Upstream, _post, upstream
from tests.test_refusals_recorded import AccessLines, access

__all__ = ["access", "upstream"]  # the fixtures, imported

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.mark.parametrize("cut", [16, 18, 20, 5, 2], ids=["line", "blank-line", "sm", "target", "method-piece"])
def test_an_h2c_preface_cut_behind_an_upgrade_request_is_not_recorded(
    upstream: tuple[Upstream, str], otlp: OtlpReceiver, make_proxy: Any, loop_thread: LoopThread,
    access: AccessLines, cut: int,
) -> None:  # fmt: skip
    """An upgrade request (`Upgrade: h2c`), then the first `cut` bytes of the HTTP/2 preface in the same write: the
    upgrade request is answered alone, and nothing else is recorded (a call on a new connection after it, its access
    line waited for, is the next one recorded). Before 2026-12-05 (helper revrecords3) the preface's piece was recorded
    as a request cut behind the upgrade request."""
    server, url = upstream
    loop_thread.loop.call_soon_threadsafe(server.gate.set)
    proxy = make_proxy(_config(url, otlp))
    first, marker = f"{0x940 + cut:032x}", f"{0x9A0 + cut:032x}"
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(_asking(first, "hi") + PREFACE[:cut])
        got = _read_all(sock)
    assert got.count(b"HTTP/1.1 ") == 1 and b"connection: close" in got.lower(), got  # the upgrade request's alone
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(_post(marker, "hi").replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n", 1))
        assert _read_all(sock).startswith(b"HTTP/1.1 200")
    access.of(marker)  # recorded after whatever the first connection's end recorded
    traces = [getattr(r, "trace_id", None) for r in access.records]
    assert len(traces) == 2 and set(traces) == {first, marker}, [r.__dict__ for r in access.records]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_behind_an_upgrade_request_whose_reply_is_forwarded_the_record_says_upgrade(
    upstream: tuple[Upstream, str], otlp: OtlpReceiver, make_proxy: Any, loop_thread: LoopThread,
    access: AccessLines, stream: bool,
) -> None:  # fmt: skip
    """An HTTP/1.1 request asking to upgrade, answered with its upstream's reply (forwarded as it comes, a stream, or a
    listing), and one pipelined behind it: that one is recorded as behind one asking to upgrade. The forwarded reply
    to the upgrade request says `Connection: close` (`closing`), which `record_unserved` reads first since 54c5f52 (for
    an HTTP/1.0 stream): it was recorded as behind a reply to an HTTP/1.0 client (helper revrecords3)."""
    server, url = upstream
    loop_thread.loop.call_soon_threadsafe(server.gate.set)
    proxy = make_proxy(_config(url, otlp))
    first, second = f"{0x960 + stream:032x}", f"{0x968 + stream:032x}"
    asking = (
        _asking(first, HOLD)
        if stream
        else b"GET /v1/models HTTP/1.1\r\nHost: x\r\n"
        + UPGRADE
        + b"traceparent: 00-%s-00000000000000a1-01\r\n\r\n" % first.encode()
    )
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(asking + _post(second, "hi"))
        got = _read_all(sock)
    assert got.count(b"HTTP/1.1 ") == 1, got
    a = otlp.by_trace(second).attributes
    assert (a["lineage.decision"], a["error.type"]) == ("deny", "invalid_request"), a
    assert "upgrade" in a["lineage.reason"] and "HTTP/1.0" not in a["lineage.reason"], a
