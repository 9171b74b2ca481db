"""What a request pipelined behind another, never served, holds of its body is given back to
`limits.bodies_max_bytes` (`lineage_proxy_request_bodies_held_bytes` back to 0), whatever closed the connection before
it was served: a refusal of the one before it, the connection cap, a request asking to upgrade the connection (its
body still coming, or not yet begun), its client leaving. Before 2026-12-05 (`HttpConnection._unserved` took them off
the queue before `connection_lost`, which gives back what the queue holds) each such body stayed counted for the
process's life, a budget shrinking toward 503 for every body."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.harness import LoopThread
from tests.held import until
from tests.ingress.test_bodies_budget import held
from tests.record.test_pipelined_behind_upgrade import UPGRADE
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_drain_stop_records import HOLD, Upstream, _post, upstream

__all__ = ["upstream"]  # the fixture, imported

# (the code the one behind says it was refused for, and what closed the connection before it)
PATHS = {
    "behind-a-refusal": "invalid_request",  # the one before it has no Host: refused 400, the connection closed
    "past-the-connection-cap": "overloaded",  # its connection is past limits.max_connections: 503
    "behind-an-upgrade-request": "invalid_request",  # the one before asks to upgrade: answered, then closed
    "its-client-left": "client_disconnected",  # the one before it is a stream its upstream holds; the client leaves
}


def _read_all(sock: socket.socket) -> bytes:
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("whole", [True, False], ids=["body-whole", "body-cut"])
def test_the_body_of_a_request_never_served_is_given_back(
    upstream: tuple[Upstream, str], otlp: OtlpReceiver, make_proxy: Any, loop_thread: LoopThread, path: str,
    whole: bool,
) -> None:  # fmt: skip
    server, url = upstream
    if path != "its-client-left":
        loop_thread.loop.call_soon_threadsafe(server.gate.set)
    cap = "limits: {max_connections: 1}\n" if path == "past-the-connection-cap" else ""
    proxy = make_proxy(f"""
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llm, url: "{url}"}}]
routes: [{{model: "*", upstream: llm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{otlp.port}"}}
lineage: {{store: null}}
{cap}""")
    seed = 0x7B0 + 8 * list(PATHS).index(path) + (2 if whole else 0)
    first, second = f"{seed:032x}", f"{seed + 1:032x}"
    before = _post(first, HOLD if path == "its-client-left" else "hi")
    if path == "behind-a-refusal":
        before = before.replace(b"Host: x\r\n", b"", 1)
    elif path == "behind-an-upgrade-request":
        before = before.replace(b"Host: x\r\n", b"Host: x\r\n" + UPGRADE, 1)
    behind = _post(second, "hi " * 100)
    wire = before + (behind if whole else behind[:-5])  # its body all in, or its last bytes still to come
    port = proxy.bound.http.port
    with socket.create_connection(("127.0.0.1", port), timeout=10):  # (the cap's one connection)
        if path == "past-the-connection-cap":  # the one connection the cap allows
            assert until(lambda: len(proxy.process._http.connections) == 1)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(wire)
            if path == "its-client-left":
                assert until(lambda: held(proxy) >= len(wire) - len(before) - len(behind.partition(b"\r\n\r\n")[0]))
                got = b""
            else:
                got = _read_all(sock)  # the answer to the one before it, then the connection's close
    if path != "its-client-left":
        answers = [line for line in got.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
        assert len(answers) == 1, got  # one answer, to the one before it
    span = otlp.by_trace(second)
    assert (span.attributes["lineage.decision"], span.attributes["error.type"]) == ("deny", PATHS[path]), span
    assert until(lambda: not proxy.process._http.connections)
    assert held(proxy) == 0  # before 2026-12-05: the body read of the one never served, for the process's life
