"""A new flow's reply waits for its first edge's durable write; its record is held from the other sinks meanwhile
(`FanOut._hold`), so a client that leaves before the reply goes out is recorded so (`Exchange._unanswered`). The record
was let go when the write completed (`FanOut._release`, on the write's done callback), two turns of the loop before the
waiting handler woke to write the reply: a client that left in those turns was recorded as answered (200, no error)
though nothing was sent to it. The record is now let go by the handler as it hands the reply to the transport
(`FanOut.awaited`). The client here leaves by its FIN (`shutdown(SHUT_WR)`), which the proxy takes as its leaving."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.logs import ACCESS
from proxy.record import sinks as sinks_module
from tests.record.test_reply_waiting_for_record_unanswered import HTTP_CONFIG, access_line, write_locked
from tests.record.test_store_waits import until
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import SERVED

pytestmark = pytest.mark.interpreted  # it patches `sinks._on_loop`, which compiled callers call directly


def chat(trace_id: str) -> bytes:
    body = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nx-data-labels: fresh\r\n"
            f"traceparent: 00-{trace_id}-00000000000000a1-01\r\n\r\n")  # fmt: skip
    return head.encode() + body


def test_a_client_that_leaves_as_the_write_completes_is_recorded_as_gone(
    tmp_path: Path, vllm: Any, make_proxy: Any, otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger=ACCESS)
    _, upstream = vllm
    store = tmp_path / "lineage.db"
    proxy = make_proxy(HTTP_CONFIG, UPSTREAM=upstream, STORE=str(store), OTLP=f"http://127.0.0.1:{otlp.port}")
    sinks = proxy.process.runtime.sinks
    trace_id = f"{0x5EED7A15:032x}"
    sock = socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10)
    left: list[bool] = []
    on_loop = sinks_module._on_loop

    def leaving(loop: asyncio.AbstractEventLoop, callback: Callable[[], None], durable: Any) -> None:
        """The write is done (its done callback, on the writer's thread): the client leaves on the loop's turn that
        takes the record's release, before the waiting handler writes the reply."""
        on_loop(loop, callback, durable)
        if not left:
            left.append(True)
            loop.call_soon_threadsafe(sock.shutdown, socket.SHUT_WR)  # its FIN: the proxy hears it gone

    monkeypatch.setattr(sinks_module, "_on_loop", leaving)
    with sock:
        with write_locked(store):  # the new flow's write waits: its record is held
            sock.sendall(chat(trace_id))
            until(lambda: bool(sinks._held))
        until(lambda: not proxy.process._http.connections)
        assert left, "the record was never held for its write"
        assert sock.recv(65536) == b""  # nothing was sent (its end of the reply is still open)
    span = otlp.by_trace(trace_id)
    assert span.attributes.get("error.type") == "client_disconnected"
    assert "http.response.status_code" not in span.attributes  # no reply went out
    line = access_line(caplog, trace_id)
    assert (line.code, line.status) == ("client_disconnected", 0)
