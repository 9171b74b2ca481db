"""One count event the OpenLineage backend refuses for what it is, not for being down, held back every other
flow's counts for as long as the process ran: refused counts are sent again first, and while the first of them
fails nothing later is sent. A caller chooses such an event: a flow of many long labels (up to 64 of 128
characters each, in and out) makes an event larger than a backend behind a tight request bound takes (nginx's
client_max_body_size, aiohttp's client_max_size: the stand-in here), which answers 413 to it every time. Such an
event is dropped, logged and counted, and the other flows' counts go out."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from aiohttp import web

from tests.harness import LoopThread, start_app
from tests.record.test_openlineage import Marquez, config, metric, sink
from tests.servers.vllm_like import SERVED

LABELS = ",".join(f"l{n:02d}-" + "x" * 120 for n in range(60))  # ~7 KiB of labels, in and out
BOUND = 8192  # the backend's request bound: an event of LABELS is over it, a plain flow's far under


class Bounded(Marquez):
    """Marquez's stand-in behind a request bound of BOUND bytes (413 past it)."""

    def app(self) -> web.Application:
        app = web.Application(client_max_size=BOUND)
        app.router.add_post("/api/v1/lineage", self._lineage)
        return app


@pytest.fixture
def bounded(loop_thread: LoopThread) -> Iterator[tuple[Marquez, str]]:
    server = Bounded()
    runner, port = loop_thread.run(start_app(server.app()))
    yield server, f"http://127.0.0.1:{port}"
    loop_thread.run(runner.cleanup())


def raw_chat(url: str, model: str) -> bytes:
    """One chat call, its reply's head as it came (a client such as httpx refuses a head this long)."""
    address = urlsplit(url)
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head + body)
        reply = b"".join(iter(lambda: sock.recv(1 << 16), b""))
    return reply.split(b"\r\n\r\n", 1)[0]


def test_an_event_the_backend_refuses_holds_back_no_other_flows_counts(
    vllm: Any, bounded: tuple[Marquez, str], make_proxy: Any, loop_thread: LoopThread
) -> None:
    _, upstream = vllm
    backend, url = bounded
    proxy = make_proxy(config(f'{{url: "{url}", snapshot_interval_s: 600}}').replace(
        "callers:", "policy: {anonymous: allow, default_purpose: assistant}\ncallers:"), UPSTREAM=upstream)  # fmt: skip
    wide = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"x-data-labels": LABELS}, timeout=30,
                      json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert wide.status_code == 200
    loop_thread.run(sink(proxy).flush())  # its count event: refused (413)
    plain = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=30,
                       json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert plain.status_code == 200
    assert "l00-" not in str(backend.wait_for(1)[0])  # the plain flow's event
    loop_thread.run(sink(proxy).flush())
    counted = backend.wait_for(2)[1]
    assert counted["run"]["facets"]["lineageProxy_count"]["count"] == 1
    assert "l00-" not in str(counted)
    # the wide flow's two events (its first, its count), each refused once
    assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="dropped"}') == 2
