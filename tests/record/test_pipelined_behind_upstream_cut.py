"""A request pipelined behind a reply the upstream broke off mid-way (its head out, its body cut: the proxy aborts the
client's connection, as a direct client's would be) is never served. Its client did not leave: the proxy cut the
connection, for the upstream's reset, and the request is recorded so (`upstream_unavailable`, the contract's code for an
upstream's reset, `deny`, no status). It was recorded `client_disconnected`, "the client left"."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.harness import LoopThread, start_app
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_refusals_recorded import AccessLines, access

__all__ = ["access"]  # the fixture, imported


async def _chat(request: web.Request) -> web.StreamResponse:
    reply = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await reply.prepare(request)
    chunk = {"id": "c", "object": "chat.completion.chunk", "model": "m",
             "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}  # fmt: skip
    await reply.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
    assert request.transport is not None
    request.transport.abort()  # mid-body: no last chunk, no [DONE]
    return reply


async def _models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]})


@pytest.fixture
def cutting(loop_thread: LoopThread) -> Iterator[str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/v1/models", _models)
    runner, port = loop_thread.run(start_app(app))
    yield f"http://127.0.0.1:{port}"
    loop_thread.run(runner.cleanup())


def _post(trace_id: str, stream: bool) -> bytes:
    body = orjson.dumps({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"traceparent: 00-%s-00000000000000a1-01\r\nContent-Length: %d\r\n\r\n%s"
            % (trace_id.encode(), len(body), body))  # fmt: skip


def _config(cutting: str, otlp: OtlpReceiver) -> str:
    return f"""
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llm, url: "{cutting}"}}]
routes: [{{model: "*", upstream: llm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{otlp.port}"}}
lineage: {{store: null}}
"""


def _sent_on_one_connection(port: int, data: bytes) -> bytes:
    """`data` sent on one connection to the proxy, and all it wrote back before closing or resetting it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass
    return got


def test_a_request_pipelined_behind_a_reply_the_upstream_broke_off_is_not_recorded_as_its_client_leaving(
    cutting: str, otlp: OtlpReceiver, make_proxy: Any, access: AccessLines
) -> None:
    proxy = make_proxy(_config(cutting, otlp) + "logging: {access: true}\n")
    first, second = f"{0x5FA:032x}", f"{0x5FB:032x}"
    got = _sent_on_one_connection(proxy.bound.http.port, _post(first, True) + _post(second, False))
    assert got.count(b" 200 OK") == 1, got
    assert otlp.by_trace(first).attributes["error.type"] == "upstream_reset"
    a = otlp.by_trace(second).attributes
    assert (a["lineage.decision"], a["error.type"]) == ("deny", "upstream_unavailable"), a
    assert "http.response.status_code" not in a, a  # never answered
    assert "pipelined behind a call that ended upstream_unavailable" in a["lineage.reason"], a
    line = access.of(second)
    assert (line.decision, line.code, line.status) == ("deny", "upstream_unavailable", 0)  # type: ignore[attr-defined]


@pytest.mark.parametrize("cut", [b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Ty", b"POST /v1/embedd"],
                         ids=["in-fields", "in-line"])  # fmt: skip
def test_a_head_partly_read_behind_a_reply_the_upstream_broke_off_is_recorded_so(
    cutting: str, otlp: OtlpReceiver, make_proxy: Any, cut: bytes
) -> None:
    """A head only partly read when the proxy aborts the connection for the upstream's break is recorded as a whole one
    behind it is (`upstream_unavailable`, `deny`, no status), its path when its line came whole; before 2026-12-05
    (helper revrecords4) dropped with no record, `_head_cut` taking the abort for its client's leaving."""
    proxy = make_proxy(_config(cutting, otlp))
    line_whole = b"\n" in cut
    first = f"{0x5FC + (0 if line_whole else 1):032x}"
    got = _sent_on_one_connection(proxy.bound.http.port, _post(first, True) + cut)
    assert got.count(b" 200 OK") == 1, got
    assert otlp.by_trace(first).attributes["error.type"] == "upstream_reset"

    def others(spans: list[Any]) -> list[Any]:
        return [s for s in spans if s.trace_id != first]

    spans = others(otlp.wait_for(lambda spans: len(others(spans)) == 1))  # before 2026-12-05 none
    a = spans[0].attributes
    assert (a["lineage.decision"], a["error.type"], a["lineage.caller"]) == ("deny", "upstream_unavailable",
                                                                             "anonymous"), a  # fmt: skip
    assert "http.response.status_code" not in a, a  # never answered
    assert spans[0].name == ("embeddings" if line_whole else "passthrough"), spans[0].name  # its path: its line whole
    reason = a["lineage.reason"]
    assert "arrived whole" in reason and "broke off" in reason and "answered" not in reason, reason
