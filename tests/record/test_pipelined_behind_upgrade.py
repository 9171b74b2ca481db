"""A request pipelined behind one asking to upgrade its connection (`Connection: Upgrade`, `Upgrade: h2c`): the proxy
does not switch protocols, serves that one as it is (RFC 9110 §7.8) and closes the connection with its answer, so the
one behind it is never served. It is recorded as a request refused unserved (`invalid_request`, `deny`, no status), as
one pipelined behind a reply framed by its close is. Before 2026-12-05 nothing after the upgrade request was read: it
was dropped with no span, no access line and no metric."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.held import until
from tests.ingress.test_bodies_budget import held
from tests.ingress.test_wire import _until, on_loop, only_connection
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_drain_stop_records import Upstream, _post, upstream
from tests.test_refusals_recorded import AccessLines, access

__all__ = ["access", "upstream"]  # the fixtures, imported

UPGRADE = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"


def _until_one(loop_thread: LoopThread, proxy: ProxyHandle) -> Any:
    """The proxy's one connection, once it has one."""
    _until(lambda: on_loop(loop_thread, lambda: bool(proxy.process._http.connections)), "the connection accepted")
    return on_loop(loop_thread, lambda: only_connection(proxy))


@pytest.mark.parametrize("pieces", [1, 2], ids=["one-read", "behind-its-body-later"])
def test_a_request_pipelined_behind_an_upgrade_request_is_recorded_unserved(
    upstream: tuple[Upstream, str],
    otlp: OtlpReceiver,
    make_proxy: Any,
    access: AccessLines,
    loop_thread: LoopThread,
    pieces: int,
) -> None:
    _, url = upstream
    proxy = make_proxy(f"""
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llm, url: "{url}"}}]
routes: [{{model: "*", upstream: llm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{otlp.port}"}}
lineage: {{store: null}}
logging: {{access: true}}
""")
    first, second = f"{0x5FA + pieces * 2:032x}", f"{0x5FB + pieces * 2:032x}"
    asking = _post(first, "hi").replace(b"Host: x\r\n", b"Host: x\r\n" + UPGRADE, 1)
    wire = asking + _post(second, "hi")
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        if pieces == 1:
            sock.sendall(wire)
        else:  # the upgrade request's head and part of its body, then the rest of it with the request behind it
            cut = len(asking) - 5
            sock.sendall(wire[:cut])
            conn = _until_one(loop_thread, proxy)
            _until(lambda: on_loop(loop_thread, lambda: conn._upgrade_body is not None), "its body read in part")
            sock.sendall(wire[cut:])
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    head = got.partition(b"\r\n\r\n")[0].lower()
    assert got.startswith(b"HTTP/1.1 200") and b"connection: close" in head, got
    assert got.count(b"HTTP/1.1 ") == 1, got  # the upgrade request's answer alone
    span = otlp.by_trace(second)
    a = span.attributes
    assert (a["lineage.decision"], a["error.type"]) == ("deny", "invalid_request"), a
    assert "http.response.status_code" not in a, a  # never answered
    line = access.of(second)
    assert (line.decision, line.code, line.status) == ("deny", "invalid_request", 0)  # type: ignore[attr-defined]
    assert otlp.by_trace(first).attributes["lineage.decision"] == "allow"
    assert until(lambda: not proxy.process._http.connections)
    assert held(proxy) == 0  # the body read of the one never served is given back


def test_one_behind_an_upgrade_request_the_proxy_refuses_is_recorded_unserved_as_behind_the_upgrade(
    upstream: tuple[Upstream, str], otlp: OtlpReceiver, make_proxy: Any, access: AccessLines
) -> None:
    """The request asking to upgrade refused by the proxy itself (its model routed nowhere, 404): the connection closes
    for the upgrade asked, not for that refusal, and the one behind it, which is not refused for anything of its own,
    is recorded as behind an upgrade request (`invalid_request`). Before 2026-12-05 the refusal's answer, closing the
    connection, was taken as what closed it (`HttpConnection.closed_by`): the one behind was recorded refused with the
    first one's code (`model_not_found`), the reason 'behind one answered 404'."""
    _, url = upstream
    proxy = make_proxy(f"""
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llm, url: "{url}"}}]
routes: [{{model: "m", upstream: llm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{otlp.port}"}}
lineage: {{store: null}}
logging: {{access: true}}
""")
    first, second = f"{0x5FE:032x}", f"{0x5FF:032x}"
    asking = _post(first, "hi").replace(b"Host: x\r\n", b"Host: x\r\n" + UPGRADE, 1).replace(b'"m"', b'"z"', 1)
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(asking + _post(second, "hi"))
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    assert got.startswith(b"HTTP/1.1 404") and b"connection: close" in got.lower(), got
    refused = otlp.by_trace(first).attributes
    assert refused["lineage.decision"] == "deny" and refused["error.type"] != "invalid_request", refused
    a = otlp.by_trace(second).attributes
    assert (a["lineage.decision"], a["error.type"]) == ("deny", "invalid_request"), a  # before: model_not_found
    assert "upgrade" in a["lineage.reason"], a
    line = access.of(second)
    assert (line.decision, line.code, line.status) == ("deny", "invalid_request", 0)  # type: ignore[attr-defined]
