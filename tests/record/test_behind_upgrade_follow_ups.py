"""What is read behind a request asking to upgrade its connection (`Connection: Upgrade`), follow-ups of a review of
2026-12-05 (`HttpConnection.upgraded`, which reads what follows it, with a parser of its own, until it is answered):

- a refusal before it in the same read (a body over `limits.max_body_bytes`, 413, or over `limits.bodies_max_bytes`,
  503, read whole) still ends reading after that read (`_broken`), as with no upgrade request behind it; the upgrade
  request's body is not read on past that read (never served: its body counted again after it was given back);
- a head over the limits behind it is dropped, not counted malformed, whether it completes in the read or is still
  open at its end (it was counted, and warned of, in the second case alone: never answered either way);
- one pipelined behind a reply whose body ends with the connection (HTTP/1.0 keep-alive, a stream) is recorded behind
  that reply, the request asking to upgrade among them (it was recorded as pipelined behind one asking to upgrade);
- a head only partly read when it is answered is recorded, as the drain's cut head is (it was dropped, no record).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from proxy.config.model import Limits
from proxy.ingress.wire import HttpServer, Request
from tests.harness import FakeTransport, LoopThread
from tests.held import until
from tests.ingress.test_bodies_budget import held
from tests.record.test_pipelined_behind_upgrade import UPGRADE
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_drain_stop_records import HOLD, Upstream, _post, upstream
from tests.test_refusals_recorded import AccessLines, access

__all__ = ["access", "upstream"]  # the fixtures, imported


def _asking(trace_id: str, content: str) -> bytes:
    return _post(trace_id, content).replace(b"Host: x\r\n", b"Host: x\r\n" + UPGRADE, 1)


def _read_all(sock: socket.socket) -> bytes:
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got


def _config(url: str, otlp: OtlpReceiver, limits: str = "") -> str:
    return f"""
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llm, url: "{url}"}}]
routes: [{{model: "*", upstream: llm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{otlp.port}"}}
lineage: {{store: null}}
logging: {{access: true}}
{limits}"""


async def _never(request: object, conn: object) -> None:
    await asyncio.Event().wait()


@pytest.mark.parametrize("limit", ["max_body_bytes", "bodies_max_bytes"])
def test_a_refusal_before_an_upgrade_request_in_the_same_read_still_ends_reading(limit: str) -> None:
    """A body refused (413 over max_body_bytes, 503 over bodies_max_bytes), whole in the read, then a request asking
    to upgrade: the next read is not read (`_broken` holds), nothing of it counted against the budget. Before
    2026-12-05 the upgrade request cleared `_broken`: the next read was parsed, its request queued, its body held."""
    refused = _post(f"{0x900:032x}", "x" * 400)
    asking = _asking(f"{0x901:032x}", "hi")
    behind = _post(f"{0x902:032x}", "hi " * 20)

    async def main() -> tuple[bool, list[str], int]:
        server = HttpServer(_never, Limits(**{limit: 300}))
        conn = server()
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        conn.data_received(refused + asking)
        conn.data_received(behind)  # before the refusal is answered
        queued = [item.target for item in conn.queue if isinstance(item, Request)]
        broken, counted = conn._broken, server.held
        conn.connection_lost(None)
        return broken, queued, counted

    broken, queued, counted = asyncio.run(main())
    assert broken, queued
    assert len(queued) == 2, queued  # the refused one and the upgrade request; before 2026-12-05 the one behind too
    assert counted <= len(b'{"model":"m","stream":false,"messages":[{"role":"user","content":"hi"}]}'), counted


def test_the_body_of_an_upgrade_request_behind_a_refusal_is_not_counted_after_it_is_given_back(
    upstream: tuple[Upstream, str], otlp: OtlpReceiver, make_proxy: Any, loop_thread: LoopThread,
    access: AccessLines,
) -> None:  # fmt: skip
    """A body refused 413, then a request asking to upgrade, its body cut: the refusal answered, the upgrade request is
    recorded unserved (refused as the one before it), its body given back; the rest of its body, sent after the
    answer, is dropped. Before 2026-12-05 it was taken as that request's body again, after the request was given back:
    counted for the process's life."""
    server, url = upstream
    loop_thread.loop.call_soon_threadsafe(server.gate.set)
    proxy = make_proxy(_config(url, otlp, "limits: {max_body_bytes: 300}\n"))
    first, second = f"{0x910:032x}", f"{0x911:032x}"
    asking = _asking(second, "hi " * 50)
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(_post(first, "x" * 400) + asking[:-20])
        got = _read_all(sock)  # the refusal, then the proxy closes its side, reading on for a while
        sock.sendall(asking[-20:] + _post(f"{0x912:032x}", "hi"))
    assert got.startswith(b"HTTP/1.1 413") and got.count(b"HTTP/1.1 ") == 1, got
    line = access.of(second)
    assert (line.decision, line.code, line.status) == ("deny", "request_too_large", 0)  # type: ignore[attr-defined]
    assert until(lambda: not proxy.process._http.connections)
    assert held(proxy) == 0  # before 2026-12-05: the rest of the upgrade request's body, 20 bytes


def test_the_body_of_an_upgrade_request_behind_one_refused_when_served_is_not_counted_after_it_is_given_back(
    upstream: tuple[Upstream, str], otlp: OtlpReceiver, make_proxy: Any, loop_thread: LoopThread,
    access: AccessLines,
) -> None:  # fmt: skip
    """The one before refused as it is served (no Host: 400), not as it is read; the same: the rest of the upgrade
    request's body, sent after the answer, is dropped, not counted for a request already given back."""
    server, url = upstream
    loop_thread.loop.call_soon_threadsafe(server.gate.set)
    proxy = make_proxy(_config(url, otlp))
    first, second = f"{0x918:032x}", f"{0x919:032x}"
    asking = _asking(second, "hi " * 50)
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(_post(first, "hi").replace(b"Host: x\r\n", b"", 1) + asking[:-20])
        got = _read_all(sock)
        sock.sendall(asking[-20:])
    assert got.startswith(b"HTTP/1.1 400") and got.count(b"\r\n\r\n") == 1, got  # (its message says HTTP/1.1)
    line = access.of(second)
    assert (line.decision, line.code, line.status) == ("deny", "invalid_request", 0)  # type: ignore[attr-defined]
    assert until(lambda: not proxy.process._http.connections)
    assert held(proxy) == 0  # before 2026-12-05: the rest of the upgrade request's body, 20 bytes


@pytest.mark.parametrize("whole", [True, False], ids=["head-complete", "head-open"])
def test_a_head_over_the_limits_behind_an_upgrade_request_is_dropped_uncounted_either_way(whole: bool) -> None:
    """Behind a request asking to upgrade nothing is refused (what follows it is read for the records alone, the
    connection closing once it is answered): a head over limits.max_header_bytes is dropped, reading ends, not counted
    in `framing_errors` (nor warned of), whether it completes in the read or is still open at its end. Before
    2026-12-05 counted (a warning) when still open, not when complete: never answered or recorded either way."""
    limit = 1024
    asking = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + UPGRADE + b"\r\n"
    big = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (limit + 9000) + (b"\r\n\r\n" if whole else b"")

    async def main() -> tuple[list[str], int, bool]:
        server = HttpServer(_never, Limits(max_header_bytes=limit))
        conn = server()
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        conn.data_received(asking + big)
        queued = [type(item).__name__ for item in conn.queue]
        broken = conn._broken
        conn.connection_lost(None)
        return queued, server.framing_errors, broken

    queued, errors, broken = asyncio.run(main())
    assert (queued, errors, broken) == (["Request"], 0, True)


def test_an_upgrade_request_behind_an_http10_stream_is_recorded_behind_that_reply(
    upstream: tuple[Upstream, str], otlp: OtlpReceiver, make_proxy: Any, loop_thread: LoopThread,
    access: AccessLines,
) -> None:  # fmt: skip
    """HTTP/1.0 keep-alive, a stream: its reply ends with the connection. The request asking to upgrade pipelined
    behind it, and the one behind that, are recorded as behind that reply. Before 2026-12-05 both were recorded as
    pipelined behind one asking to upgrade (the upgrade request itself among them)."""
    server, url = upstream
    loop_thread.loop.call_soon_threadsafe(server.gate.set)
    proxy = make_proxy(_config(url, otlp))
    first, second, third = f"{0x920:032x}", f"{0x921:032x}", f"{0x922:032x}"
    stream = _post(first, HOLD).replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\nConnection: keep-alive\r\n", 1)
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(stream + _asking(second, "hi") + _post(third, "hi"))
        got = _read_all(sock)
    assert got.startswith(b"HTTP/1.0 200") or got.startswith(b"HTTP/1.1 200"), got
    for trace in (second, third):
        a = otlp.by_trace(trace).attributes
        assert (a["lineage.decision"], a["error.type"]) == ("deny", "invalid_request"), a
        assert "HTTP/1.0" in a["lineage.reason"] and "upgrade" not in a["lineage.reason"], a


@pytest.mark.parametrize("body", [False, True], ids=["no-body", "with-body"])
def test_a_head_partly_read_behind_an_upgrade_request_is_recorded_when_it_is_answered(
    upstream: tuple[Upstream, str], otlp: OtlpReceiver, make_proxy: Any, loop_thread: LoopThread,
    access: AccessLines, body: bool,
) -> None:  # fmt: skip
    """A request head only partly read when the upgrade request before it is answered (the connection then closes) is
    recorded, as the drain's cut head is: `deny` `invalid_request`, no status, its path (its line whole),
    none of its fields read (anonymous, a new trace). Before 2026-12-05 it was dropped with no record."""
    server, url = upstream
    loop_thread.loop.call_soon_threadsafe(server.gate.set)
    proxy = make_proxy(_config(url, otlp))
    first = f"{0x930 + body:032x}"
    asking = (
        _asking(first, "hi")
        if body
        else b"GET /v1/models HTTP/1.1\r\nHost: x\r\n"
        + UPGRADE
        + b"traceparent: 00-%s-00000000000000a1-01\r\n\r\n" % first.encode()
    )
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(asking + b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Ty")
        got = _read_all(sock)
    assert got.count(b"HTTP/1.1 ") == 1 and b"connection: close" in got.lower(), got  # the upgrade request's alone

    def cut(spans: list[Any]) -> list[Any]:
        return [s for s in spans if s.name == "embeddings"]  # its path read: its line came whole

    spans = cut(otlp.wait_for(lambda spans: len(cut(spans)) == 1))
    a = spans[0].attributes
    assert (a["lineage.decision"], a["error.type"], a["lineage.caller"]) == ("deny", "invalid_request", "anonymous"), a
    assert "http.response.status_code" not in a and "upgrade" in a["lineage.reason"], a
    assert spans[0].trace_id != first
