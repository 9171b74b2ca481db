"""A request head only partly read when the reply that closes its connection goes out: a refusal that closes it (a body
over `limits.max_body_bytes`, 413), or a reply framed by the connection's close (a stream to an HTTP/1.0 keep-alive
client), with or without a request asking to upgrade (`Upgrade: h2c`) between them. It is recorded as one cut behind an
upgrade request is (`HttpConnection._head_cut`): `deny`, no status, its path (its line came whole), none of its fields
read (anonymous, a new trace), the reason that of the reply that closed the connection: refused as the one refused
(`request_too_large`), or `invalid_request` behind the HTTP/1.0 stream. Before 2026-12-05 it was dropped with no record
behind the refusal and the stream, and behind the stream then an upgrade request its reason said the upgrade; behind the
refusal then an upgrade request it was dropped too. The bodies held are all given back
(`lineage_proxy_request_bodies_held_bytes` 0)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.harness import LoopThread
from tests.held import until
from tests.ingress.test_bodies_budget import held
from tests.record.test_behind_upgrade_follow_ups import _asking, _config, _read_all
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_drain_stop_records import HOLD, Upstream, _post, upstream
from tests.test_refusals_recorded import AccessLines, access

__all__ = ["access", "upstream"]  # the fixtures, imported

CUT = b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Ty"  # its line whole, a field open


@pytest.mark.parametrize("upgrade", [False, True], ids=["alone", "behind-upgrade"])
@pytest.mark.parametrize("before", ["refused-413", "http10-stream"])
def test_a_head_partly_read_behind_the_reply_closing_its_connection_is_recorded_with_its_cause(
    upstream: tuple[Upstream, str], otlp: OtlpReceiver, make_proxy: Any, loop_thread: LoopThread,
    access: AccessLines, before: str, upgrade: bool,
) -> None:  # fmt: skip
    server, url = upstream
    loop_thread.loop.call_soon_threadsafe(server.gate.set)
    proxy = make_proxy(_config(url, otlp, "limits: {max_body_bytes: 300}\n"))
    base = 0x940 + (0x10 if upgrade else 0) + (0x20 if before == "http10-stream" else 0)
    first, second = f"{base:032x}", f"{base + 1:032x}"
    if before == "refused-413":
        sent = _post(first, "x" * 400)
        status, code, cause = b"HTTP/1.1 413", "request_too_large", "answered request_too_large"
    else:
        sent = _post(first, HOLD).replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\nConnection: keep-alive\r\n", 1)
        status, code, cause = b"HTTP/1.", "invalid_request", "HTTP/1.0"
    if upgrade:
        sent += _asking(second, "hi")
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(sent + CUT)
        got = _read_all(sock)
    assert got.startswith(status) and got.count(b"HTTP/1.") == 1, got  # the first one's answer alone
    if upgrade:  # the upgrade request, whole, recorded as behind that answer (as before)
        line = access.of(second)
        assert (line.decision, line.code, line.status) == ("deny", code, 0)  # type: ignore[attr-defined]

    def cut(spans: list[Any]) -> list[Any]:
        return [s for s in spans if s.name == "embeddings"]  # its path read: its line came whole

    spans = cut(otlp.wait_for(lambda spans: len(cut(spans)) == 1))  # before 2026-12-05 none but behind-upgrade's
    a = spans[0].attributes
    assert (a["lineage.decision"], a["error.type"], a["lineage.caller"]) == ("deny", code, "anonymous"), a
    assert "http.response.status_code" not in a, a
    reason = a["lineage.reason"]
    assert cause in reason and "upgrade" not in reason and "arrived whole" in reason, reason
    assert spans[0].trace_id not in (first, second)
    assert until(lambda: not proxy.process._http.connections)
    assert held(proxy) == 0


def test_a_head_partly_read_behind_a_body_refused_over_the_bodies_budget_is_recorded_with_its_cause(
    upstream: tuple[Upstream, str], otlp: OtlpReceiver, make_proxy: Any, loop_thread: LoopThread,
) -> None:  # fmt: skip
    """The 503 variant (a body over `limits.bodies_max_bytes`, the one before it still held, in the same read): the head
    cut behind it is recorded `overloaded`, as the refused one is (helper revrecords4: covered, no change)."""
    server, url = upstream
    loop_thread.loop.call_soon_threadsafe(server.gate.set)
    proxy = make_proxy(_config(url, otlp, "limits: {max_body_bytes: 300, bodies_max_bytes: 300}\n"))
    first, second = f"{0x9A0:032x}", f"{0x9A1:032x}"
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(_post(first, "y" * 120) + _post(second, "x" * 200) + CUT)  # 2 bodies over 300 together
        got = _read_all(sock)
    assert got.count(b"HTTP/1.1 200") == 1 and b"HTTP/1.1 503" in got, got

    def cut(spans: list[Any]) -> list[Any]:
        return [s for s in spans if s.name == "embeddings"]

    spans = cut(otlp.wait_for(lambda spans: len(cut(spans)) == 1))
    a = spans[0].attributes
    assert (a["lineage.decision"], a["error.type"]) == ("deny", "overloaded"), a
    assert "http.response.status_code" not in a, a
    assert "answered overloaded" in a["lineage.reason"] and "arrived whole" in a["lineage.reason"], a
    assert until(lambda: not proxy.process._http.connections)
    assert held(proxy) == 0
