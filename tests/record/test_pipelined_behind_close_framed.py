"""A request pipelined behind a reply whose body ends with the connection (a stream to an HTTP/1.0 client asking
keep-alive: no length, no chunks, so its reply says `Connection: close`) can never be served on that connection: it is
recorded as a request refused unserved (`invalid_request`, `deny`, no status), as one pipelined behind a reply that
closed the connection for the drain is (`drain_timeout`). With no drain it was dropped with no span, no access line and
no metric."""

from __future__ import annotations

import socket
from typing import Any

from tests.harness import LoopThread
from tests.held import until
from tests.ingress.test_bodies_budget import held
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_drain_stop_records import HOLD, Upstream, _post, upstream
from tests.test_refusals_recorded import AccessLines, access

__all__ = ["access", "upstream"]  # the fixtures, imported


def test_a_request_pipelined_behind_a_reply_framed_by_its_close_is_recorded_unserved(
    upstream: tuple[Upstream, str], otlp: OtlpReceiver, make_proxy: Any, access: AccessLines, loop_thread: LoopThread
) -> None:
    server, url = upstream
    loop_thread.loop.call_soon_threadsafe(server.gate.set)  # the stream goes out whole at once
    proxy = make_proxy(f"""
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llm, url: "{url}"}}]
routes: [{{model: "*", upstream: llm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{otlp.port}"}}
lineage: {{store: null}}
logging: {{access: true}}
""")
    first, second = f"{0x5F8:032x}", f"{0x5F9:032x}"

    def http10(trace_id: str, content: str) -> bytes:
        return _post(trace_id, content).replace(b"HTTP/1.1\r\n", b"HTTP/1.0\r\nConnection: keep-alive\r\n", 1)

    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(http10(first, HOLD) + http10(second, "hi"))
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    head = got.partition(b"\r\n\r\n")[0].lower()
    assert b"connection: close" in head and b"content-length" not in head, got
    assert got.count(b" 200 OK") == 1 and got.endswith(b"data: [DONE]\n\n"), got  # the first reply alone, whole
    span = otlp.by_trace(second)
    a = span.attributes
    assert (a["lineage.decision"], a["error.type"]) == ("deny", "invalid_request"), a
    assert "http.response.status_code" not in a, a  # never answered
    line = access.of(second)
    assert (line.decision, line.code, line.status) == ("deny", "invalid_request", 0)  # type: ignore[attr-defined]
    assert otlp.by_trace(first).attributes["lineage.decision"] == "allow"
    assert until(lambda: not proxy.process._http.connections)
    assert held(proxy) == 0  # the body read of the one never served is given back (before 2026-12-05 kept counted)
